/* Admin console (/admin) for county unions and facility staff. The token is kept in
   sessionStorage (this tab only) and sent as a Bearer header; never in a URL.
   Needs util.js; every URL comes from sc.config().urls.admin. */
(function () {
  "use strict";
  var el = sc.el, add = sc.add;
  var KEY = "skillcircle-token", SHOWN = 50;
  var TABLES = { courses: "课程", evaluations: "技能评价" };
  var ACTIONS = { create: "新增", update: "修改", delete: "删除", upload: "导入", remove: "移除", withdraw: "撤回", attend: "签到" };
  var ENTITIES = { facility: "设施", course: "课程", evaluation: "技能评价", registration: "报名" };
  var urls, who = null, facilities = [], current = null, items = {}, regItem = null, uploadReady = null;

  function $(id) { return document.getElementById(id); }
  function token() { return sessionStorage.getItem(KEY) || ""; }
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return encodeURIComponent(values[k]); });
  }
  function say(text, bad) { var m = $("msg"); m.textContent = text || ""; m.classList.toggle("bad", !!bad); }

  /* An admin call; a 401 logs out (the token is unknown or revoked). */
  function call(url, options) {
    options = options || {};
    options.token = token();
    return sc.api(url, options).then(function (res) {
      if (res.status === 401) { logout("令牌无效或已撤销，请重新登录。"); }
      return res;
    });
  }

  // ---------------------------------------------------------------- login

  function login() {
    $("who").textContent = "正在验证……";
    return call(urls.whoami).then(function (res) {
      if (!res.ok) {
        if (res.status !== 401) { $("who").textContent = "登录失败：" + sc.problem(res); }
        return;
      }
      who = res.data;
      var scope = who.facility_id ? "本机构 " + (who.facility_name || who.facility_id) : (who.county || "全市");
      $("who").textContent = "已登录：" + who.name + "（" + scope + "）";
      $("console").hidden = false;
      $("logout").hidden = false;
      $("login").hidden = true;
      $("token").value = "";
      loadFacilities();
    });
  }

  function logout(text) {
    sessionStorage.removeItem(KEY);
    who = null; current = null;
    $("console").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("facility").hidden = true;
    $("who").textContent = text || "未登录";
  }

  // ---------------------------------------------------------------- facilities

  function loadFacilities() {
    $("fac-count").textContent = "正在加载设施……";
    return call(urls.facilities).then(function (res) {
      if (!res.ok) { $("fac-count").textContent = "设施加载失败：" + sc.problem(res); return; }
      facilities = res.data.facilities || [];
      if (who && who.facility_id) {
        facilities = facilities.filter(function (f) { return f.id === who.facility_id; });
      }
      showFacilities();
      if (facilities.length === 1) { selectFacility(facilities[0]); }
    });
  }

  function showFacilities() {
    var words = $("fac-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var hits = facilities.filter(function (f) {
      var text = [f.name, f.id, f.county, f.town, f.layer_name, (f.trades || []).join(" ")].join(" ").toLowerCase();
      return words.every(function (w) { return text.indexOf(w) >= 0; });
    });
    var list = sc.clear($("fac-list"));
    hits.slice(0, SHOWN).forEach(function (f) {
      var b = el("button", null, "pick", { type: "button", "data-id": f.id });
      add(b, el("strong", f.name), f.is_sample ? el("span", "样例", "badge") : null,
        el("span", f.id + " · " + f.county + f.town + " · " + f.layer_name, "muted"));
      b.addEventListener("click", function () { selectFacility(f); });
      list.appendChild(add(el("li"), b));
    });
    $("fac-count").textContent = "可编辑 " + facilities.length + " 个设施" +
      (words.length ? "，匹配 " + hits.length + " 个" : "") + (hits.length > SHOWN ? "，显示前 " + SHOWN + " 个" : "") + "。";
  }

  function selectFacility(f) {
    current = f;
    regItem = null;
    $("facility").hidden = false;
    $("registrants").hidden = true;
    $("fac-title").textContent = f.name;
    $("fac-meta").textContent = f.id + " · " + f.layer_name + " · " + f.county + f.town + (f.phone ? " · 电话 " + f.phone : "");
    document.querySelectorAll("#fac-list .pick").forEach(function (b) { b.classList.toggle("active", b.dataset.id === f.id); });
    Object.keys(TABLES).forEach(function (t) { closeForm(t); loadItems(t); });
    $("facility").scrollIntoView({ block: "start" });
  }

  // ---------------------------------------------------------------- courses, sessions

  function loadItems(table) {
    var body = sc.clear($(table + "-table").tBodies[0]);
    body.appendChild(add(el("tr"), el("td", "正在加载……", "muted")));
    return call(fill(urls.items[table], { fid: current.id })).then(function (res) {
      sc.clear(body);
      if (!res.ok) { body.appendChild(add(el("tr"), el("td", "加载失败：" + sc.problem(res), "bad"))); return; }
      items[table] = res.data.items || [];
      if (!items[table].length) { body.appendChild(add(el("tr"), el("td", "暂无" + TABLES[table], "muted"))); return; }
      items[table].forEach(function (it) { body.appendChild(itemRow(table, it)); });
    });
  }

  function seatsText(it) {
    var text = it.seats === null || it.seats === undefined ? "不限" : String(it.seats);
    if (it.seats_left !== undefined && it.seats_left !== null) { text += "，余 " + it.seats_left; }
    if (it.registered !== undefined && it.registered !== null) { text += "，已报 " + it.registered; }
    return text;
  }

  function itemRow(table, it) {
    var tr = el("tr", null, null, { "data-id": it.id });
    if (table === "courses") {
      add(tr, add(el("td"), el("strong", it.title), el("div", it.trade, "muted")),
        el("td", it.start_date + (it.end_date ? " 至 " + it.end_date : ""), "date"));
    } else {
      add(tr, add(el("td"), el("strong", it.trade + "（" + it.level + "）"), it.place ? el("div", it.place, "muted") : null),
        el("td", it.date, "date"));
    }
    tr.appendChild(el("td", "名额 " + seatsText(it)));
    var actions = el("td", null, "actions");
    var edit = el("button", "编辑", "small", { type: "button" });
    var del = el("button", "删除", "small danger", { type: "button" });
    var regs = el("button", "报名名单", "small", { type: "button" });
    edit.addEventListener("click", function () { openForm(table, it); });
    regs.addEventListener("click", function () { loadRegistrants(table, it); });
    confirmClick(del, "确认删除？", function () {
      return call(fill(urls.item[table], { fid: current.id, id: it.id }), { method: "DELETE" }).then(function (res) {
        if (!res.ok) { say("删除失败：" + sc.problem(res), true); return; }
        say("已删除" + TABLES[table] + " #" + it.id + "。");
        loadItems(table);
      });
    });
    tr.appendChild(add(actions, edit, " ", regs, " ", del));
    return tr;
  }

  /* A destructive button asks once more in place (no browser dialog). */
  function confirmClick(button, question, action) {
    var label = button.textContent, armed = false;
    button.addEventListener("click", function () {
      if (!armed) {
        armed = true;
        button.textContent = question;
        setTimeout(function () { armed = false; button.textContent = label; }, 4000);
        return;
      }
      armed = false;
      button.disabled = true;
      Promise.resolve(action()).then(function () { button.disabled = false; button.textContent = label; });
    });
  }

  function formOf(table) { return $(table + "-form"); }

  function openForm(table, it) {
    var f = formOf(table);
    f.reset();
    f.dataset.id = it ? it.id : "";
    f.querySelector(".form-title").textContent = (it ? "编辑" : "新增") + TABLES[table] + (it ? " #" + it.id : "");
    Array.prototype.forEach.call(f.elements, function (input) {
      if (!input.name) { return; }
      var v = it ? it[input.name] : null;
      input.value = v === null || v === undefined ? "" : v;
    });
    showErrors(f, {});
    echoDates(f);
    f.hidden = false;
    f.elements[0].focus();
  }

  function closeForm(table) { var f = formOf(table); f.hidden = true; f.reset(); showErrors(f, {}); }

  function echoDates(f) {
    f.querySelectorAll("output[data-iso]").forEach(function (o) {
      var v = f.elements[o.dataset.iso].value; // always ISO: YYYY-MM-DD
      o.textContent = v || "未填";
    });
  }

  function showErrors(f, errors) {
    f.querySelectorAll("[data-err]").forEach(function (small) {
      var text = errors[small.getAttribute("data-err")] || "";
      small.textContent = text;
      var input = f.elements[small.getAttribute("data-err")];
      if (input && input.setAttribute) { input.setAttribute("aria-invalid", text ? "true" : "false"); }
    });
    var other = Object.keys(errors).filter(function (k) { return !f.querySelector('[data-err="' + k + '"]'); });
    if (other.length) {
      f.querySelector('[data-err="_"]').textContent = other.map(function (k) { return k + "：" + errors[k]; }).join("；");
    }
  }

  /* The body of a form: numbers as numbers; an empty optional field is left out of a new
     item and cleared (null) on an edit. Empty required fields and numbers out of range
     are refused here, in Chinese, before the server sees them. */
  function formBody(f, editing) {
    var body = {}, errors = {};
    Array.prototype.forEach.call(f.elements, function (input) {
      if (!input.name) { return; }
      var raw = input.value.trim();
      if (raw === "") {
        if (input.required) { errors[input.name] = "必填"; } else if (editing) { body[input.name] = null; }
        return;
      }
      if (input.type === "number") {
        var n = Number(raw);
        if (!isFinite(n) || (input.min !== "" && n < Number(input.min)) || (input.max !== "" && n > Number(input.max))) {
          errors[input.name] = "请输入 " + input.min + " 到 " + input.max + " 之间的数";
          return;
        }
        body[input.name] = n;
      } else {
        body[input.name] = raw;
      }
    });
    return { body: body, errors: errors };
  }

  function submitForm(ev) {
    ev.preventDefault();
    var f = ev.target, table = f.dataset.table, id = f.dataset.id;
    var built = formBody(f, !!id);
    showErrors(f, built.errors);
    if (Object.keys(built.errors).length) { return; }
    var url = id ? fill(urls.item[table], { fid: current.id, id: id }) : fill(urls.items[table], { fid: current.id });
    var button = f.querySelector("button[type=submit]");
    button.disabled = true;
    call(url, { method: id ? "PATCH" : "POST", json: built.body }).then(function (res) {
      button.disabled = false;
      if (!res.ok) {
        var d = res.data || {};
        showErrors(f, d.fields || { _: sc.problem(res) });
        if (d.fields && !d.fields._ && d.message) { f.querySelector('[data-err="_"]').textContent = d.message; }
        return;
      }
      say((id ? "已保存" : "已新增") + TABLES[table] + " #" + (res.data.id || id) + "。");
      closeForm(table);
      loadItems(table);
    });
  }

  // ---------------------------------------------------------------- registrants

  function loadRegistrants(table, it) {
    regItem = { table: table, item: it };
    var kind = table === "courses" ? "course" : "evaluation";
    $("registrants").hidden = false;
    $("reg-title").textContent = "报名名单：" + (it.title || it.trade + "（" + it.level + "）") + " · " + (it.start_date || it.date);
    $("export").hidden = !(who && who.facility_id && who.facility_id === current.id);
    var body = sc.clear($("reg-table").tBodies[0]);
    body.appendChild(add(el("tr"), el("td", "正在加载……", "muted")));
    var url = fill(urls.registrations, { fid: current.id }) + sc.query({ item: kind + ":" + it.id });
    return call(url).then(function (res) {
      sc.clear(body);
      if (!res.ok) { body.appendChild(add(el("tr"), el("td", "加载失败：" + sc.problem(res), "bad"))); return; }
      var rows = res.data.items || [];
      if (!rows.length) { body.appendChild(add(el("tr"), el("td", "暂无报名", "muted"))); return; }
      body.appendChild(add(el("tr"), el("th", "姓名"), el("th", "手机"), el("th", "报名时间"), el("th", "到场"), el("th", "")));
      rows.forEach(function (r) { body.appendChild(registrantRow(r)); });
      $("registrants").scrollIntoView({ block: "nearest" });
    });
  }

  function registrantRow(r) {
    var tr = el("tr", null, null, { "data-id": r.id });
    var box = el("input", null, null, { type: "checkbox", "aria-label": "到场" });
    box.checked = !!r.attended;
    box.addEventListener("change", function () {
      box.disabled = true;
      call(fill(urls.registration, { id: r.id }), { method: "PATCH", json: { attended: box.checked } }).then(function (res) {
        box.disabled = false;
        if (!res.ok) { box.checked = !box.checked; say("签到未保存：" + sc.problem(res), true); return; }
        say((box.checked ? "已标记到场：" : "已取消到场：") + r.name);
      });
    });
    var del = el("button", "删除", "small danger", { type: "button" });
    confirmClick(del, "确认删除？", function () {
      return call(fill(urls.registration, { id: r.id }), { method: "DELETE" }).then(function (res) {
        if (!res.ok) { say("删除失败：" + sc.problem(res), true); return; }
        say("已删除报名（个人信息已删除）。");
        loadRegistrants(regItem.table, regItem.item);
        loadItems(regItem.table);
      });
    });
    return add(tr, el("td", r.name), el("td", r.phone_masked, "phone"), el("td", (r.created_at || "").replace("T", " ").slice(0, 16)),
      add(el("td"), box), add(el("td"), del));
  }

  function exportXlsx() {
    var button = $("export");
    button.disabled = true;
    var url = fill(urls.export, { fid: current.id });
    fetch(url, { headers: { Authorization: "Bearer " + token() } }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (d) {
          say("导出失败：" + sc.problem({ status: r.status, data: d }), true);
        });
      }
      return r.blob().then(function (blob) {
        var a = el("a", null, null, { download: "报名名单-" + current.id + ".xlsx" });
        a.href = URL.createObjectURL(blob);
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
        say("已导出。");
      });
    }, function () { say("导出失败：网络错误。", true); }).then(function () { button.disabled = false; });
  }

  // ---------------------------------------------------------------- audit

  function loadAudit() {
    var body = sc.clear($("audit-table").tBodies[0]);
    body.appendChild(add(el("tr"), el("td", "正在加载……", "muted")));
    return call(urls.audit + sc.query({ limit: sc.config().limits.audit })).then(function (res) {
      sc.clear(body);
      if (!res.ok) { body.appendChild(add(el("tr"), el("td", "加载失败：" + sc.problem(res), "bad"))); return; }
      var entries = res.data.entries || [];
      if (!entries.length) { body.appendChild(add(el("tr"), el("td", "暂无记录", "muted"))); return; }
      body.appendChild(add(el("tr"), el("th", "时间"), el("th", "操作人"), el("th", "操作"), el("th", "对象"), el("th", "区县")));
      entries.forEach(function (e) {
        body.appendChild(add(el("tr"), el("td", (e.at || "").replace("T", " ").slice(0, 19), "date"), el("td", e.who),
          el("td", ACTIONS[e.action] || e.action), el("td", (ENTITIES[e.entity] || e.entity) + " " + e.entity_id),
          el("td", e.county || "全市")));
      });
    });
  }

  // ---------------------------------------------------------------- upload

  function resetUpload() {
    uploadReady = null;
    $("commit").disabled = true;
    $("upload-summary").textContent = "";
    sc.clear($("upload-problems"));
    sc.clear($("upload-table").tBodies[0]);
  }

  function previewUpload(ev) {
    ev.preventDefault();
    var f = ev.target;
    resetUpload();
    if (!f.file.files.length) { $("upload-summary").textContent = "请先选择文件。"; return; }
    if (f.file.files[0].size > sc.config().limits.upload_bytes) {
      $("upload-summary").textContent = "文件太大：最多 " + Math.floor(sc.config().limits.upload_bytes / 1048576) + " MB。";
      return;
    }
    $("upload-summary").textContent = "正在校验……（不写入）";
    call(urls.upload + sc.query({ dry_run: 1 }), { method: "POST", form: new FormData(f) }).then(function (res) {
      var d = res.data || {};
      if (res.ok && d.committed !== false) {
        $("upload-summary").textContent = "服务器没有按预览处理（committed 不为 false），请联系管理员。";
        return;
      }
      showPreview(res, d);
      if (res.ok && !(d.problems || []).length && (d.preview || []).length) {
        uploadReady = f;
        $("commit").disabled = false;
      }
    });
  }

  function showPreview(res, d) {
    var problems = d.problems || [], rows = d.preview || [];
    var summary = $("upload-summary");
    if (!res.ok && !problems.length) { summary.textContent = "无法预览：" + sc.problem(res); return; }
    summary.textContent = (rows.length ? "共 " + rows.length + " 行：将新增 " + (d.would_add || 0) + "，更新 " + (d.would_update || 0) + "。" : "") +
      (problems.length ? "发现 " + problems.length + " 个问题，修正文件后重新预览；现在不会导入任何行。" : rows.length ? "没有发现问题，可以确认导入。" : "");
    summary.classList.toggle("bad", problems.length > 0);
    var byRow = {};
    problems.forEach(function (p) {
      (byRow[String(p.row)] = byRow[String(p.row)] || []).push(p.message);
      $("upload-problems").appendChild(add(el("li"), el("strong", String(p.row)), "：" + p.message));
    });
    if (!rows.length) { return; }
    var body = $("upload-table").tBodies[0];
    body.appendChild(add(el("tr"), el("th", "行"), el("th", "编号"), el("th", "名称"), el("th", "图层"), el("th", "区县乡镇"),
      el("th", "经纬度"), el("th", "定位"), el("th", "问题")));
    rows.forEach(function (r) {
      var found = (byRow[String(r.row)] || []).concat(r.id && byRow[r.id] ? byRow[r.id] : []);
      var layer = sc.config().layers[r.layer] || r.layer || "";
      var point = r.lon === null || r.lon === undefined ? "" : Number(r.lon).toFixed(5) + ", " + Number(r.lat).toFixed(5);
      body.appendChild(add(el("tr", null, found.length ? "bad" : null), el("td", r.row), el("td", r.id || "（自动）"), el("td", r.name),
        el("td", layer), el("td", (r.county || "") + (r.town || "")), el("td", point), el("td", r.location_quality || ""),
        el("td", found.join("；"))));
    });
  }

  function commitUpload() {
    if (!uploadReady) { return; }
    var f = uploadReady;
    $("commit").disabled = true;
    $("upload-summary").textContent = "正在导入……";
    call(urls.upload, { method: "POST", form: new FormData(f) }).then(function (res) {
      var d = res.data || {};
      if (!res.ok) { showPreview(res, d); return; }
      uploadReady = null;
      $("upload-summary").textContent = "已导入：新增 " + (d.added || 0) + "，更新 " + (d.updated || 0) + "。地图与技能码页重新计算后更新。";
      loadFacilities();
    });
  }

  // ---------------------------------------------------------------- set-up

  function showTab(name) {
    document.querySelectorAll(".tabs button").forEach(function (b) { b.classList.toggle("active", b.dataset.tab === name); });
    document.querySelectorAll(".tab").forEach(function (s) { s.hidden = s.id !== "tab-" + name; });
    if (name === "audit") { loadAudit(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    urls = sc.config().urls.admin;
    $("login").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = $("token").value.trim();
      if (!value) { return; }
      sessionStorage.setItem(KEY, value);
      login();
    });
    $("logout").addEventListener("click", function () { logout("已退出。"); });
    $("fac-filter").addEventListener("input", showFacilities);
    document.querySelectorAll(".tabs button").forEach(function (b) {
      b.addEventListener("click", function () { showTab(b.dataset.tab); });
    });
    document.querySelectorAll("[data-action=add]").forEach(function (b) {
      b.addEventListener("click", function () { openForm(b.dataset.table, null); });
    });
    Object.keys(TABLES).forEach(function (t) {
      var f = formOf(t);
      f.addEventListener("submit", submitForm);
      f.addEventListener("input", function () { echoDates(f); });
      f.querySelector("[data-action=cancel]").addEventListener("click", function () { closeForm(t); });
    });
    $("export").addEventListener("click", exportXlsx);
    $("audit-refresh").addEventListener("click", loadAudit);
    $("upload").addEventListener("submit", previewUpload);
    $("upload").addEventListener("change", resetUpload);
    $("commit").addEventListener("click", commitUpload);
    if (token()) { login(); }
  });
})();
