// Admin page: calls /api/admin/* with the token kept in sessionStorage (never in the URL).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem("skillcircle-token") || "";
  const show = (status, body) => {
    $("result").textContent = `HTTP ${status}\n` + JSON.stringify(body, null, 2);
  };
  async function call(method, path, body, isForm) {
    const headers = { Authorization: "Bearer " + token() };
    if (body && !isForm) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method, headers, body: isForm ? body : body ? JSON.stringify(body) : undefined,
    });
    const text = await resp.text();
    let data = text;
    try { data = JSON.parse(text); } catch (e) { /* not JSON */ }
    show(resp.status, data);
    return { ok: resp.ok, data };
  }
  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("skillcircle-token", $("token").value.trim());
      const r = await call("GET", "/api/admin/whoami");
      $("who").textContent = r.ok ? `已登录：${r.data.name}（${r.data.county || "全市"}）` : "令牌无效";
    });
    $("course").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = new FormData(ev.target);
      const body = {};
      for (const [k, v] of form.entries()) {
        if (k === "facility" || v === "") continue;
        body[k] = k === "seats" ? parseInt(v, 10) : k === "fee" ? parseFloat(v) : v;
      }
      const fid = encodeURIComponent(form.get("facility"));
      await call("POST", `/api/admin/facilities/${fid}/courses`, body);
    });
    $("upload").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      await call("POST", "/api/admin/facilities/upload", new FormData(ev.target), true);
    });
  });
})();
