/* 技能码 pages for workers: search courses and evaluation sessions near the village, the
   facility or the phone (urls.search), 报名 with consent and a challenge (urls.register),
   "notify me" for a trade with no course nearby (urls.demand), and 撤回报名 (/q/withdraw).
   Needs util.js (sc.*); every setting and URL comes from sc.config(). */
var scFinder = (function () {
  "use strict";
  var el = sc.el, add = sc.add;
  var cfg, root, form, list, status, more, notify;
  var origin = null, mode = null, limit = null, lastQuery = null, openKey = null, searched = 0;

  /* What the worker reads for each refusal of a registration (POST urls.register). */
  var REFUSALS = {
    full: "名额已满，不能再报名。可选其他班次，或点“有课时提醒我”。",
    duplicate: "这个手机号已报名此项，无需重复报名。如需撤回，请用报名时的确认码。",
    past: "该项已开始或已结束，不能再报名。",
    "invalid phone": "手机号格式不对：请输入 11 位大陆手机号，如 13812345678。",
    "consent required": "请先阅读个人信息处理说明，并勾选“同意”。",
    challenge: "验证题答案不对或已过期，请回答新的验证题。",
    "bad challenge": "验证题答案不对或已过期，请回答新的验证题。",
    closed: "该项目不接受在线报名，请按下方电话或网址报名。",
    "not found": "该项已取消或不存在，请刷新页面后再试。",
    "too many requests": "提交太频繁，请稍后再试。",
    404: "该项已取消或不存在，请刷新页面后再试。",
    409: "名额已满或已报名。",
    410: "该项已开始或已结束，不能再报名。",
    429: "提交太频繁，请稍后再试。"
  };
  /* The same, per field of a 400 answer's `fields`. */
  var FIELD_TEXT = {
    name: "请填写姓名。",
    phone: REFUSALS["invalid phone"],
    consent: REFUSALS["consent required"],
    challenge: REFUSALS["bad challenge"]
  };
  var PHONE = /^1[3-9][0-9]{9}$/;

  /* A mobile number as typed ("138 1234 5678", "+86-138...") as its 11 digits, as the
     server normalises it; anything else is returned as typed (and refused). */
  function phoneDigits(text) {
    var s = text.replace(/[\s\-()]/g, "").replace(/^(\+|00)?86(?=1\d{10}$)/, "");
    return PHONE.test(s) ? s : text.trim();
  }

  function itemKey(it) { return it.kind + ":" + it.id; }

  function minuteChoices() {
    var m = cfg.minutes, max = cfg.max_minutes, seen = {};
    return [m / 2, m, m * 2, max].filter(function (x) {
      if (x > max || x < 1 || seen[x]) { return false; }
      seen[x] = true;
      return true;
    }).sort(function (a, b) { return a - b; });
  }

  function setStatus(text) { status.textContent = text; }

  function params() {
    var p = {
      q: form.q.value.trim(), trade: form.trade.value, level: form.level.value,
      kind: form.kind.value, mode: mode, minutes: form.minutes.value, limit: limit
    };
    if (origin.village) { p.village = origin.village; } else { p.lon = origin.lon; p.lat = origin.lat; }
    return p;
  }

  function search(submitted) {
    if (!origin) { return; }
    var p = params();
    lastQuery = p;
    setStatus("正在查询……");
    more.hidden = true;
    notify.hidden = true;
    if (submitted && p.trade) {
      // a demand signal per search the worker submits with a trade (anonymous)
      sc.api(cfg.urls.demand, { method: "POST", json: demandBody("search", p.trade) });
    }
    sc.api(cfg.urls.search + sc.query(p)).then(function (res) {
      if (lastQuery !== p) { return; } // a newer search was started
      sc.clear(list);
      openKey = null;
      if (!res.ok) { setStatus("查询失败：" + sc.problem(res)); return; }
      show(res.data, p);
    });
  }

  function show(data, p) {
    var items = data.items || [];
    var within = p.minutes + " 分钟内（" + cfg.modes[p.mode] + "）";
    if (!items.length) {
      setStatus(within + "暂无符合条件的课程或技能评价。");
      if (p.trade) {
        notify.hidden = false;
        document.getElementById("notify-text").textContent = "附近暂无“" + p.trade + "”的培训。";
        var button = document.getElementById("notify-button");
        button.disabled = false;
        button.textContent = "有课时提醒我（登记需求）";
      }
      return;
    }
    setStatus(within + "共 " + (data.total || items.length) + " 项，按开始日期和出行时间排序：");
    items.forEach(function (it) { list.appendChild(renderItem(it, p.mode)); });
    more.hidden = !(data.total > items.length && limit < cfg.limits.search_max);
  }

  function seatsText(it) {
    if (it.seats === null || it.seats === undefined) { return "名额不限"; }
    if (it.seats_left === 0) { return "已满"; }
    var left = it.seats_left === null || it.seats_left === undefined ? it.seats : it.seats_left;
    return "余 " + left + " 个名额（共 " + it.seats + "）";
  }

  function renderItem(it, itemMode) {
    var li = el("li", null, "item");
    li.dataset.key = itemKey(it);
    var isCourse = it.kind === "course";
    var head = add(el("p", null, "item-title"),
      el("strong", isCourse ? it.title : "技能评价：" + it.trade + "（" + it.level + "）"),
      el("span", isCourse ? "培训" : "评价", "tag " + it.kind),
      it.is_sample ? el("span", "样例", "badge") : null);
    var when = isCourse ? it.start_date + (it.end_date ? " 至 " + it.end_date : "") : it.date;
    var facility = sc.link(it.facility_name, cfg.urls.facility_page.replace("{fid}", encodeURIComponent(it.facility_id)));
    var trip = cfg.modes[itemMode] + " " + sc.minutesText(it.minutes) + (it.distance_m !== null && it.distance_m !== undefined ? " · " + sc.kmText(it.distance_m) : "");
    var money = [sc.feeText(it.fee), it.subsidy_note ? "补贴：" + it.subsidy_note : ""].filter(Boolean).join(" · ");
    add(li, head,
      el("p", when + (isCourse ? " · 工种 " + it.trade : "")),
      add(el("p"), facility, it.place ? " · " + it.place : ""),
      el("p", trip, "muted"),
      el("p", seatsText(it), "seats" + (it.seats_left === 0 ? " full" : "")),
      money ? el("p", money) : null,
      howToRegister(it),
      el("div", null, "reg"));
    return li;
  }

  function howToRegister(it) {
    var reg = it.register || {}, p = el("p", null, "how");
    add(p, "报名：");
    if (reg.online) {
      var full = it.seats_left === 0;
      var b = el("button", full ? "已满" : "在线报名", "primary small", { type: "button" });
      b.disabled = full;
      b.addEventListener("click", function () { openForm(it, b); });
      add(p, b, " ");
    }
    if (reg.url) {
      var a = sc.link("报名网址", reg.url);
      a.rel = "noopener nofollow";
      add(p, a, " ");
    }
    if (reg.phone) { add(p, sc.link(reg.phone, "tel:" + reg.phone), " "); }
    if (!reg.online && !reg.url && !reg.phone) { add(p, "电话咨询或到场报名"); }
    return p;
  }

  function markFull(li) {
    var seats = li.querySelector(".seats");
    seats.textContent = "已满";
    seats.classList.add("full");
    var b = li.querySelector(".how button");
    if (b) { b.disabled = true; b.textContent = "已满"; }
  }

  function demandBody(kind, trade) {
    var body = { kind: kind, trade: trade };
    if (origin && origin.village) { body.village = origin.village; }
    return body;
  }

  // ---------------------------------------------------------------- 报名 form

  function consentNode(consent) {
    var box = el("div", null, "consent");
    if (consent && consent.text) {
      consent.text.split(/\n+/).forEach(function (line) { if (line.trim()) { box.appendChild(el("p", line)); } });
      return box;
    }
    consent = consent || {};
    add(box,
      el("p", "个人信息处理说明"),
      el("p", "用途：" + (consent.purpose || "仅用于本次培训或评价的报名、通知和签到。")),
      el("p", "保存内容：" + (consent.kept || "姓名、手机号、报名项目和时间。")),
      el("p", "保存期限：" + (consent.retention_days ? "项目结束后 " + consent.retention_days + " 天内删除。" : "项目结束后按规定期限删除。")),
      el("p", "撤回：" + (consent.withdrawal || "凭确认码和手机号随时撤回，撤回后立即删除。")));
    return box;
  }

  function field(label, input, name) {
    return [add(el("label"), label, input), el("small", null, "err", { "data-err": name })];
  }

  function openForm(it, button) {
    var li = button.closest("li"), slot = li.querySelector(".reg");
    list.querySelectorAll(".reg").forEach(function (other) { if (other !== slot) { sc.clear(other); } });
    if (openKey === itemKey(it) && slot.firstChild) { sc.clear(slot); openKey = null; return; }
    openKey = itemKey(it);
    sc.clear(slot);
    var f = el("form", null, "reg-form stack", { novalidate: "" });
    var name = el("input", null, null, { name: "name", autocomplete: "name", maxlength: "50", required: "" });
    var phone = el("input", null, null, { name: "phone", type: "tel", inputmode: "numeric", autocomplete: "tel", maxlength: "20", required: "" });
    var consent = el("input", null, null, { name: "consent", type: "checkbox" });
    var answer = el("input", null, null, { name: "answer", inputmode: "numeric", autocomplete: "off", maxlength: "6", required: "" });
    var question = el("span", "正在获取……", "question");
    var consentBox = el("div", null, "consent-slot");
    var msg = el("p", null, "msg", { role: "alert" });
    var submit = el("button", "提交报名", "primary", { type: "submit" });
    var cancel = el("button", "取消", null, { type: "button" });
    var token = null;
    f.append.apply(f, [el("p", "报名：" + (it.kind === "course" ? it.title : it.trade + "（" + it.level + "）技能评价"), "reg-head")]
      .concat(field("姓名", name, "name"), field("手机号", phone, "phone"), [consentBox],
        [add(el("label", null, "check"), consent, "我已阅读并同意上述个人信息处理说明"), el("small", null, "err", { "data-err": "consent" })],
        field(add(el("span"), "验证题：", question), answer, "challenge"),
        [add(el("p", null, "actions"), submit, " ", cancel), msg]));
    slot.appendChild(f);
    name.focus();

    function challenge() {
      token = null;
      submit.disabled = true;
      question.textContent = "正在获取……";
      answer.value = "";
      return sc.api(cfg.urls.challenge).then(function (res) {
        if (!res.ok) { question.textContent = "获取失败"; msg.textContent = sc.problem(res, REFUSALS); return; }
        token = res.data.token;
        question.textContent = res.data.question;
        sc.clear(consentBox).appendChild(consentNode(res.data.consent));
        submit.disabled = false;
      });
    }
    challenge();

    cancel.addEventListener("click", function () { sc.clear(slot); openKey = null; });
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var errors = {};
      if (!name.value.trim()) { errors.name = FIELD_TEXT.name; }
      if (!PHONE.test(phoneDigits(phone.value))) { errors.phone = FIELD_TEXT.phone; }
      if (!consent.checked) { errors.consent = FIELD_TEXT.consent; }
      if (!answer.value.trim()) { errors.challenge = "请回答验证题。"; }
      showErrors(f, errors);
      msg.textContent = Object.keys(errors).length ? "请按提示修改后再提交。" : "";
      if (Object.keys(errors).length || !token) { return; }
      submit.disabled = true;
      msg.textContent = "正在提交……";
      sc.api(cfg.urls.register, { method: "POST", json: {
        kind: it.kind, item_id: it.id, name: name.value.trim(), phone: phoneDigits(phone.value), consent: true,
        challenge: { token: token, answer: answer.value.trim() }
      } }).then(function (res) {
        if (res.ok) { confirmed(slot, li, it, res.data); return; }
        var d = res.data || {}, fields = Object.keys(d.fields || {});
        if (fields.length) { // a field refused: the field's own Chinese text, beside it and here
          var shown = {};
          fields.forEach(function (k) { shown[k] = FIELD_TEXT[k] || d.fields[k]; });
          showErrors(f, shown);
          msg.textContent = fields.map(function (k) { return shown[k]; }).join(" ");
        } else {
          msg.textContent = sc.problem(res, REFUSALS);
        }
        if (d.error === "full") { markFull(li); submit.textContent = "已满"; return; }
        if (d.error === "past" || res.status === 410 || res.status === 404) { return; }
        if (res.status !== 0) { challenge(); } else { submit.disabled = false; }
      });
    });
  }

  function showErrors(f, errors) {
    f.querySelectorAll("[data-err]").forEach(function (small) {
      small.textContent = errors[small.getAttribute("data-err")] || "";
    });
    var unknown = Object.keys(errors).filter(function (k) { return !f.querySelector('[data-err="' + k + '"]'); });
    if (unknown.length) { f.querySelector(".msg").textContent = unknown.map(function (k) { return errors[k]; }).join(" "); }
  }

  function confirmed(slot, li, it, d) {
    sc.clear(slot);
    openKey = null; // the button opens a new form (another person), not closes this note
    var withdraw = d.withdraw_url || cfg.urls.withdraw_page;
    add(slot, add(el("div", null, "reg-ok", { role: "status" }),
      el("p", "报名成功", "ok-head"),
      add(el("p"), "确认码：", el("strong", d.code, "code")),
      el("p", "请截图或记下确认码。", "muted"),
      el("p", [d.title, d.facility_name, d.start_date].filter(Boolean).join(" · ")),
      d.retention_days ? el("p", "您的姓名和手机号在项目结束后 " + d.retention_days + " 天内删除。", "muted") : null,
      add(el("p"), "如需撤回：打开", sc.link("撤回报名", withdraw), "，输入确认码和手机号；撤回后个人信息立即删除，名额退回。")));
    if (d.seats_left !== undefined && d.seats_left !== null) {
      it.seats_left = d.seats_left;
      if (d.seats_left === 0) { markFull(li); } else { li.querySelector(".seats").textContent = seatsText(it); }
    }
  }

  // ---------------------------------------------------------------- set-up

  function setMode(m, run) {
    mode = m;
    root.querySelectorAll("#find-modes button").forEach(function (b) { b.classList.toggle("active", b.dataset.mode === m); });
    document.dispatchEvent(new CustomEvent("sc:mode", { detail: m }));
    if (run) { search(false); }
  }

  function setOrigin(o) {
    origin = o;
    root.hidden = false;
    search(false);
  }

  function loadTrades() {
    if (!cfg.urls.trades) { return; }
    sc.api(cfg.urls.trades).then(function (res) {
      if (!res.ok || !res.data.trades || form.trade.value) { return; }
      var select = form.trade;
      while (select.options.length > 1) { select.remove(1); }
      res.data.trades.forEach(function (t) { select.appendChild(el("option", t, null, { value: t })); });
    });
  }

  function init() {
    root = document.getElementById("finder");
    if (!root) { return; }
    cfg = sc.config();
    form = document.getElementById("find-form");
    list = document.getElementById("find-list");
    status = document.getElementById("find-status");
    more = document.getElementById("find-more");
    notify = document.getElementById("notify");
    limit = cfg.limits.search;
    cfg.levels.forEach(function (l) { form.level.appendChild(el("option", l, null, { value: l })); });
    minuteChoices().forEach(function (m) {
      var o = el("option", m + " 分钟内", null, { value: m });
      o.selected = m === cfg.minutes;
      form.minutes.appendChild(o);
    });
    root.querySelectorAll("#find-modes button").forEach(function (b) {
      b.addEventListener("click", function () { setMode(b.dataset.mode, true); });
    });
    setMode(cfg.mode, false);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); limit = cfg.limits.search; search(true); });
    ["trade", "level", "kind", "minutes"].forEach(function (n) {
      form[n].addEventListener("change", function () { limit = cfg.limits.search; search(n === "trade"); });
    });
    more.addEventListener("click", function () {
      limit = Math.min(limit * 2, cfg.limits.search_max);
      search(false);
    });
    document.getElementById("notify-button").addEventListener("click", function (ev) {
      var b = ev.target, trade = lastQuery && lastQuery.trade;
      if (!trade) { return; }
      b.disabled = true;
      sc.api(cfg.urls.demand, { method: "POST", json: demandBody("notify", trade) }).then(function (res) {
        b.textContent = res.ok ? "已登记“" + trade + "”需求，谢谢！" : "登记失败：" + sc.problem(res);
        if (!res.ok) { b.disabled = false; }
      });
    });
    loadTrades();
    if (root.dataset.village) { setOrigin({ village: root.dataset.village }); }
    else if (root.dataset.lon) { setOrigin({ lon: root.dataset.lon, lat: root.dataset.lat }); }
    // data-origin="here": here.js calls setOrigin with the phone's position
  }

  // ---------------------------------------------------------------- 撤回报名

  function initWithdraw() {
    var f = document.getElementById("withdraw-form");
    if (!f) { return; }
    var msg = f.querySelector(".msg");
    var given = new URLSearchParams(location.search).get("code");
    if (given) { f.code.value = given; }
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var code = f.code.value.trim().toUpperCase(), phone = phoneDigits(f.phone.value), errors = {};
      if (!/^[A-Za-z0-9]{8}$/.test(code)) { errors.code = "确认码是 8 位字母或数字。"; }
      if (!PHONE.test(phone)) { errors.phone = FIELD_TEXT.phone; }
      showErrors(f, errors);
      if (Object.keys(errors).length) { msg.textContent = "请按提示修改后再提交。"; return; }
      msg.textContent = "正在提交……";
      sc.api(sc.config().urls.withdraw, { method: "POST", json: { code: code, phone: phone } }).then(function (res) {
        msg.textContent = res.ok ? "已撤回。您的姓名和手机号已删除，名额已退回。"
          : sc.problem(res, { 404: "确认码与手机号不匹配，请核对后重试。", 429: REFUSALS[429] });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(); initWithdraw(); });

  return { setOrigin: setOrigin, search: search, mode: function () { return mode; } };
})();
