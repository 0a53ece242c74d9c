/* skillcircle: helpers shared by every page script (loaded first).
   sc.config(): the page's settings, rendered by the server into <script id="sc-config"
   type="application/json"> (minutes, limits, API URLs) -- never hard-coded here.
   sc.api(): fetch that always resolves to {ok, status, data}; a network failure is status 0.
   Text is always set with textContent (never innerHTML). */
var sc = (function () {
  "use strict";
  var settings = null;

  function config() {
    if (settings === null) {
      var node = document.getElementById("sc-config");
      settings = node ? JSON.parse(node.textContent) : {};
    }
    return settings;
  }

  function el(tag, text, cls, attrs) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (attrs[k] !== undefined && attrs[k] !== null && attrs[k] !== false) { e.setAttribute(k, attrs[k]); }
      });
    }
    return e;
  }

  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) { continue; }
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return parent;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } return node; }

  function link(text, href, cls) { var a = el("a", text, cls); a.href = href; return a; }

  /* "?a=1&b=2" from an object, leaving out empty values. */
  function query(params) {
    var q = new URLSearchParams();
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v !== undefined && v !== null && v !== "") { q.set(k, v); }
    });
    var s = q.toString();
    return s ? "?" + s : "";
  }

  /* fetch(url) resolving to {ok, status, data, response}; never rejects.
     options: method, json (a body sent as JSON), form (FormData), token (Bearer). */
  function api(url, options) {
    options = options || {};
    var init = { method: options.method || "GET", headers: {}, credentials: "same-origin" };
    if (options.token) { init.headers.Authorization = "Bearer " + options.token; }
    if (options.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    } else if (options.form) {
      init.body = options.form;
    }
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        var data = {};
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = { error: "not json", message: text.slice(0, 200) }; }
        }
        return { ok: response.ok, status: response.status, data: data, response: response };
      });
    }, function () {
      return { ok: false, status: 0, data: { error: "network", message: "network error" }, response: null };
    });
  }

  /* A Chinese sentence for a failed call: `messages` by error code or status first,
     then the usual cases, then the server's own message. */
  function problem(res, messages) {
    messages = messages || {};
    var d = res.data || {};
    if (d.error && messages[d.error]) { return messages[d.error]; }
    if (messages[res.status]) { return messages[res.status]; }
    if (res.status === 0) { return "网络错误：请检查网络后重试。"; }
    if (res.status === 429) { return "操作太频繁，请稍后再试。"; }
    if (res.status === 401) { return "令牌无效或已撤销，请重新登录。"; }
    if (res.status === 404) { return "未找到（HTTP 404）：" + (d.message || "请刷新页面后再试"); }
    if (res.status === 403) { return "无权操作：" + (d.message || "超出您的管辖范围"); }
    if (res.status >= 500) { return "服务器出错，请稍后再试" + (d.request_id ? "（编号 " + d.request_id + "）" : "") + "。"; }
    return d.message || ("请求失败（HTTP " + res.status + "）");
  }

  function minutesText(m) { return (m === null || m === undefined) ? "不可达" : Math.round(m) + " 分钟"; }
  function kmText(metres) { return (metres === null || metres === undefined) ? "" : (metres / 1000).toFixed(1) + " 公里"; }
  function feeText(fee) {
    if (fee === null || fee === undefined) { return ""; }
    return fee === 0 ? "免费" : "费用 " + fee + " 元";
  }

  return {
    config: config, el: el, add: add, clear: clear, link: link, query: query, api: api,
    problem: problem, minutesText: minutesText, kmText: kmText, feeText: feeText,
  };
})();
