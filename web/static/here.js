/* /q/here: ask for the browser's position, list nearby training by travel time. */
var skillcircleHere = (function () {
  "use strict";
  var api = "", facilityUrl = "", mode = "ebike", position = null;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function status(text) { document.getElementById("here-status").textContent = text; }

  function load() {
    if (!position) { return; }
    var url = api + "?lon=" + position.lon + "&lat=" + position.lat + "&mode=" + mode + "&minutes=30&limit=30";
    status("正在查询……");
    fetch(url).then(function (r) { return r.json().then(function (d) { return [r.ok, d]; }); })
      .then(function (res) {
        var ok = res[0], d = res[1], list = document.getElementById("here-list");
        list.textContent = "";
        if (!ok) { status(d.message || "查询失败"); return; }
        status(d.facilities.length ? "30分钟内可到达的培训（按时间排序）：" : "30分钟内没有找到培训设施。");
        d.facilities.forEach(function (f) {
          var li = el("li"), a = el("a", f.name);
          a.href = facilityUrl.replace("FID", encodeURIComponent(f.id));
          li.appendChild(a);
          if (f.is_sample) { li.appendChild(el("span", "样例", "badge")); }
          li.appendChild(el("div", f.layer_name + " · " + Math.round(f.minutes) + " 分钟 · " +
            (f.distance_m / 1000).toFixed(1) + " 公里", "muted"));
          if (f.phone) { li.appendChild(el("div", "电话：" + f.phone)); }
          (f.courses || []).forEach(function (c) {
            li.appendChild(el("div", "近期课程：" + c.title + "（" + c.trade + "）" + c.start_date +
              " · 名额 " + c.seats, "course"));
          });
          (f.evaluations || []).forEach(function (e) {
            li.appendChild(el("div", "技能评价：" + e.trade + "（" + e.level + "）" + e.date, "evaluation"));
          });
          list.appendChild(li);
        });
      })
      .catch(function () { status("网络错误，请稍后再试。"); });
  }

  function init(apiUrl, facilityTemplate) {
    api = apiUrl;
    facilityUrl = facilityTemplate;
    document.querySelectorAll("#here-modes button").forEach(function (b) {
      b.addEventListener("click", function () {
        mode = b.dataset.mode;
        document.querySelectorAll("#here-modes button").forEach(function (o) { o.classList.toggle("active", o === b); });
        load();
      });
    });
    if (!navigator.geolocation) { status("此浏览器不支持定位。"); return; }
    navigator.geolocation.getCurrentPosition(function (pos) {
      position = { lon: pos.coords.longitude, lat: pos.coords.latitude };
      load();
    }, function () { status("无法获取位置：请允许定位，或从地图页选择您的村。"); }, { timeout: 15000 });
  }

  return { init: init };
})();
