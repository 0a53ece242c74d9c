/* /q/here: ask for the phone's position, then list nearby training facilities by travel
   time (urls.nearby) and search courses around it (worker.js). Needs util.js. */
(function () {
  "use strict";
  var el = sc.el, position = null, mode = null, loading = 0;

  function status(text) { document.getElementById("here-status").textContent = text; }

  function load() {
    if (!position || !mode) { return; }
    var cfg = sc.config(), ticket = ++loading;
    var url = cfg.urls.nearby + sc.query({ lon: position.lon, lat: position.lat, mode: mode,
      minutes: cfg.minutes, limit: cfg.limits.here });
    status("正在查询附近的培训设施……");
    sc.api(url).then(function (res) {
      if (ticket !== loading) { return; }
      var list = sc.clear(document.getElementById("here-list")), within = cfg.minutes + "分钟内";
      document.getElementById("here-title").hidden = false;
      if (!res.ok) { status("查询失败：" + sc.problem(res)); return; }
      var found = res.data.facilities || [];
      status(found.length ? within + "可到达的培训设施（" + cfg.modes[mode] + "，按时间排序）：" : within + "没有找到培训设施。");
      found.forEach(function (f) {
        var li = el("li");
        li.appendChild(sc.link(f.name, cfg.urls.facility_page.replace("{fid}", encodeURIComponent(f.id))));
        if (f.is_sample) { li.appendChild(el("span", "样例", "badge")); }
        li.appendChild(el("div", f.layer_name + " · " + sc.minutesText(f.minutes) + " · " + sc.kmText(f.distance_m), "muted"));
        if (f.phone) { li.appendChild(el("div", "电话：" + f.phone)); }
        list.appendChild(li);
      });
    });
  }

  // the finder's mode switch (worker.js) also sets this list's mode
  document.addEventListener("sc:mode", function (ev) { mode = ev.detail; load(); });

  document.addEventListener("DOMContentLoaded", function () {
    if (!navigator.geolocation) { status("此浏览器不支持定位：请从地图页选择您的村。"); return; }
    navigator.geolocation.getCurrentPosition(function (pos) {
      position = { lon: pos.coords.longitude.toFixed(6), lat: pos.coords.latitude.toFixed(6) };
      scFinder.setOrigin(position);
      load();
    }, function () {
      status("无法获取位置：请允许定位，或从地图页选择您的村。");
    }, { timeout: 15000 });
  });
})();
