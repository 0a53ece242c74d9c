/* skillcircle map page: popups built with textContent (never innerHTML), so any
   facility or village name is shown as text. */
var skillcircle = (function () {
  "use strict";
  var map = null, mode = "ebike", urls = {}, selected = null, times = {};

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function minutesText(m) { return (m === null || m === undefined) ? "不可达" : Math.round(m) + " 分钟"; }
  function link(text, href) { var a = el("a", text); a.href = href; return a; }

  function bindVillage(feature, layer) {
    layer.bindPopup(function () {
      var p = feature.properties, box = el("div", null, "popup");
      box.appendChild(el("strong", p.village_name));
      box.appendChild(el("div", p.county + " " + p.town, "muted"));
      box.appendChild(el("div", "到最近设施：" + minutesText(p.minutes)));
      if (p.access !== undefined) { box.appendChild(el("div", "可达性（2SFCA）：" + p.access)); }
      if (p.location_quality === "town_seat") {
        box.appendChild(el("div", "位置为乡镇驻地近似（无精确坐标）", "muted"));
      }
      box.appendChild(link("打开技能码页面", urls.q + encodeURIComponent(p.village_code)));
      return box;
    });
    layer.on("click", function () { selectVillage(feature); });
  }

  function selectVillage(feature) {
    selected = feature.properties;
    times = {};
    var c = feature.geometry.coordinates;
    var url = urls.api + "?lon=" + c[0] + "&lat=" + c[1] + "&mode=" + mode + "&minutes=120&limit=200";
    fetch(url).then(function (r) { return r.json(); }).then(function (d) {
      (d.facilities || []).forEach(function (f) { times[f.id] = f.minutes; });
    });
  }

  function bindFacility(feature, layer) {
    layer.bindPopup(function () {
      var p = feature.properties, box = el("div", null, "popup");
      var title = el("strong", p.name);
      box.appendChild(title);
      if (p.is_sample) { box.appendChild(el("span", "样例", "badge")); }
      box.appendChild(el("div", p.layer_name, "muted"));
      if (p.address) { box.appendChild(el("div", "地址：" + p.address)); }
      box.appendChild(el("div", "电话：" + (p.phone || "暂无")));
      if (p.trades && p.trades.length) { box.appendChild(el("div", "工种：" + p.trades.join("、"))); }
      if (selected) {
        var t = times[p.id];
        box.appendChild(el("div", "从" + selected.village_name + "出发：" +
          (t === undefined || t === null ? "120分钟内不可达" : Math.round(t) + " 分钟")));
      } else {
        box.appendChild(el("div", "先点击一个村，可显示从该村出发的时间", "muted"));
      }
      box.appendChild(link("技能码页面", urls.q + "f/" + encodeURIComponent(p.id)));
      return box;
    });
  }

  var planLayer = null;

  function showPlan(d) {
    if (planLayer) { map.removeLayer(planLayer); }
    planLayer = L.layerGroup().addTo(map);
    var out = document.getElementById("plan-result");
    var unit = " 个村";
    out.textContent = d.county + "：" + (d.layer_name || "") + "覆盖 " + d.covered_before + " → " +
      d.covered_after + " / " + d.total + unit + "（" + (d.solver.optimal ? "最优解" : "近似解") +
      "，用时 " + d.solver.seconds + " 秒）";
    var bounds = [];
    d.sites.forEach(function (s) {
      s.villages.forEach(function (v) {
        L.polyline([[s.lat, s.lon], [v.lat, v.lon]], { color: "#6a1b9a", weight: 1, opacity: 0.7 }).addTo(planLayer);
        L.circleMarker([v.lat, v.lon], { radius: 6, color: "#6a1b9a", weight: 2, fill: false }).addTo(planLayer);
        bounds.push([v.lat, v.lon]);
      });
      var m = L.circleMarker([s.lat, s.lon], { radius: 11, color: "#fff", weight: 2, fillColor: "#6a1b9a", fillOpacity: 1 });
      m.bindTooltip(String(s.rank), { permanent: true, direction: "center", className: "plan-rank" });
      m.bindPopup(function () {
        var box = el("div", null, "popup");
        box.appendChild(el("strong", "建议站点 #" + s.rank + "：" + s.site_name));
        box.appendChild(el("div", "新增覆盖 " + s.newly_covered + " 个村：" + s.newly_covered_villages));
        box.appendChild(el("div", "覆盖 " + s.covered_before + " → " + s.covered_after, "muted"));
        return box;
      });
      m.addTo(planLayer);
      bounds.push([s.lat, s.lon]);
    });
    if (bounds.length) { map.fitBounds(bounds, { maxZoom: 12 }); }
  }

  function bindPlanForm() {
    var form = document.getElementById("plan-form");
    if (!form) { return; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var q = new URLSearchParams({ county: form.county.value, layer: form.layer.value,
        add: form.add.value, mode: mode });
      document.getElementById("plan-result").textContent = "计算中……";
      fetch(urls.plan + "?" + q.toString()).then(function (r) {
        return r.json().then(function (d) { return [r.ok, d]; });
      }).then(function (res) {
        if (!res[0]) { document.getElementById("plan-result").textContent = res[1].message; return; }
        res[1].layer_name = form.layer.options[form.layer.selectedIndex].textContent;
        showPlan(res[1]);
      });
    });
  }

  function init(mapName, currentMode, endpoints) {
    map = window[mapName];
    mode = currentMode;
    urls = endpoints;
    bindPlanForm();
    document.querySelectorAll("#uncovered a").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        ev.preventDefault();
        map.setView([Number(a.dataset.lat), Number(a.dataset.lon)], 14);
      });
    });
  }

  return { bindVillage: bindVillage, bindFacility: bindFacility, init: init };
})();
