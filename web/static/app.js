/* skillcircle map page. Loaded after Leaflet and before folium's generated script:
   Leaflet init hooks catch the map and every GeoJSON feature folium adds, so the
   generated code calls nothing of ours. Popups are built with textContent (never
   innerHTML), so any facility or village name is shown as text. Needs util.js. */
var skillcircle = (function () {
  "use strict";
  var el = sc.el;
  var map = null, mode = null, selected = null, times = {}, timesError = null, villages = {}, demandLayer = null;

  function cfg() { return sc.config(); }

  L.Map.addInitHook(function () { if (map === null) { map = this; } });
  L.GeoJSON.addInitHook(function () {
    this.on("layeradd", function (ev) {
      var layer = ev.layer, p = layer.feature && layer.feature.properties;
      if (!p) { return; }
      if (p.village_code) { bindVillage(layer.feature, layer); }
      else if (p.layer_name && p.id) { bindFacility(layer.feature, layer); }
    });
  });

  function bindVillage(feature, layer) {
    var p = feature.properties, c = feature.geometry.coordinates;
    if (p.colour && layer.setStyle) { layer.setStyle({ fillColor: p.colour }); }
    villages[p.village_code] = { lat: c[1], lon: c[0], name: p.village_name, county: p.county, town: p.town };
    layer.bindPopup(function () {
      var box = el("div", null, "popup");
      box.appendChild(el("strong", p.village_name));
      box.appendChild(el("div", p.county + " " + p.town, "muted"));
      box.appendChild(el("div", "到最近设施：" + sc.minutesText(p.minutes)));
      if (p.access !== undefined) { box.appendChild(el("div", "可达性（2SFCA）：" + p.access)); }
      if (p.location_quality === "town_seat") {
        box.appendChild(el("div", "位置为乡镇驻地近似（无精确坐标）", "muted"));
      }
      box.appendChild(sc.link("打开技能码页面", cfg().urls.village_page.replace("{code}", encodeURIComponent(p.village_code))));
      return box;
    });
    layer.on("click", function () { selectVillage(feature); });
  }

  function selectVillage(feature) {
    selected = feature.properties;
    times = {};
    var c = feature.geometry.coordinates;
    var url = cfg().urls.nearby + sc.query({ lon: c[0], lat: c[1], mode: mode,
      minutes: cfg().max_minutes, limit: cfg().limits.nearby });
    timesError = null;
    sc.api(url).then(function (res) {
      if (!res.ok) { timesError = sc.problem(res); return; } // facility popups say so
      (res.data.facilities || []).forEach(function (f) { times[f.id] = f.minutes; });
    });
  }

  function bindFacility(feature, layer) {
    layer.bindPopup(function () {
      var p = feature.properties, box = el("div", null, "popup");
      box.appendChild(el("strong", p.name));
      if (p.is_sample) { box.appendChild(el("span", "样例", "badge")); }
      box.appendChild(el("div", p.layer_name, "muted"));
      if (p.address) { box.appendChild(el("div", "地址：" + p.address)); }
      box.appendChild(el("div", "电话：" + (p.phone || "暂无")));
      if (p.trades && p.trades.length) { box.appendChild(el("div", "工种：" + p.trades.join("、"))); }
      if (selected && timesError) {
        box.appendChild(el("div", "从" + selected.village_name + "出发的时间加载失败：" + timesError, "bad"));
      } else if (selected) {
        var t = times[p.id];
        box.appendChild(el("div", "从" + selected.village_name + "出发：" +
          (t === undefined || t === null ? cfg().max_minutes + "分钟内不可达" : Math.round(t) + " 分钟")));
      } else {
        box.appendChild(el("div", "先点击一个村，可显示从该村出发的时间", "muted"));
      }
      box.appendChild(sc.link("技能码页面", cfg().urls.facility_page.replace("{fid}", encodeURIComponent(p.id))));
      return box;
    });
  }

  // ------------------------------------------------------------------ plan

  var planLayer = null;

  function showPlan(d) {
    if (planLayer) { map.removeLayer(planLayer); }
    planLayer = L.layerGroup().addTo(map);
    var w = d.weights || {};
    document.getElementById("plan-result").textContent = d.county + "：" + (d.layer_name || "") + "覆盖 " +
      d.covered_before + " → " + d.covered_after + " / " + d.total + (w.kind === "demand" ? "（需求加权值）" : " 个村") + "（" +
      (d.solver.optimal ? "最优解" : "近似解") + "，用时 " + d.solver.seconds + " 秒）" +
      (w.kind === "demand" ? "；权重 = 1 + 近 " + w.weeks + " 周需求次数：" + w.villages_with_signals + " 个村共 " + w.signals + " 次。" : "");
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
    form.add.max = cfg().limits.plan_add;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = document.getElementById("plan-result"), button = form.querySelector("button");
      var q = { county: form.county.value, layer: form.layer.value, add: form.add.value, mode: mode };
      if (form.weights && form.weights.checked) { q.weights = "demand"; }
      out.textContent = "计算中……";
      button.disabled = true;
      sc.api(cfg().urls.plan + sc.query(q)).then(function (res) {
        button.disabled = false;
        if (!res.ok) { out.textContent = "规划失败：" + sc.problem(res); return; }
        res.data.layer_name = form.layer.options[form.layer.selectedIndex].textContent;
        showPlan(res.data);
      });
    });
  }

  // ------------------------------------------------------------------ 需求 layer

  /* Villages sized by demand (技能码 scans, searches, "notify me") from urls.demand. */
  function demandTotals(rows) {
    var byVillage = {}, unplaced = 0;
    rows.forEach(function (r) {
      var n = (r.scans || 0) + (r.searches || 0) + (r.notify || 0);
      var place = r.village_code ? villages[r.village_code] : null;
      var lat = r.lat !== undefined && r.lat !== null ? r.lat : place && place.lat;
      var lon = r.lon !== undefined && r.lon !== null ? r.lon : place && place.lon;
      if (!r.village_code || lat === undefined || lat === null) { unplaced += n; return; }
      var v = byVillage[r.village_code] || (byVillage[r.village_code] = {
        code: r.village_code, name: r.village_name || (place && place.name) || r.village_code,
        where: (r.county || "") + (r.town || ""), lat: lat, lon: lon, total: 0, scans: 0, searches: 0, notify: 0, trades: {}
      });
      v.total += n; v.scans += r.scans || 0; v.searches += r.searches || 0; v.notify += r.notify || 0;
      if (r.trade) { v.trades[r.trade] = (v.trades[r.trade] || 0) + (r.searches || 0) + (r.notify || 0); }
    });
    return { villages: Object.keys(byVillage).map(function (k) { return byVillage[k]; }), unplaced: unplaced };
  }

  function demandPopup(v) {
    var box = el("div", null, "popup");
    box.appendChild(el("strong", v.name));
    box.appendChild(el("div", v.where, "muted"));
    box.appendChild(el("div", "扫码 " + v.scans + " · 搜索 " + v.searches + " · 求通知 " + v.notify));
    var trades = Object.keys(v.trades).sort(function (a, b) { return v.trades[b] - v.trades[a]; });
    if (trades.length) {
      box.appendChild(el("div", "想学：" + trades.slice(0, 8).map(function (t) { return t + " " + v.trades[t]; }).join("、")));
    }
    return box;
  }

  function showDemand(on) {
    var out = document.getElementById("demand-status"), toggle = document.getElementById("demand-toggle");
    if (demandLayer) { map.removeLayer(demandLayer); demandLayer = null; }
    if (!on) { out.textContent = ""; return; }
    out.textContent = "正在加载需求……";
    toggle.disabled = true;
    sc.api(cfg().urls.demand + sc.query({ trade: toggle.dataset.trade })).then(function (res) {
      toggle.disabled = false;
      if (!toggle.checked) { return; }
      if (!res.ok) { out.textContent = "需求加载失败：" + sc.problem(res); return; }
      var t = demandTotals(res.data.rows || []);
      demandLayer = L.layerGroup().addTo(map);
      t.villages.sort(function (a, b) { return b.total - a.total; }).forEach(function (v) {
        var m = L.circleMarker([v.lat, v.lon], { radius: Math.min(4 + 3 * Math.sqrt(v.total), 30),
          color: "#7b3f00", weight: 1, fillColor: "#ff8c00", fillOpacity: 0.55 });
        m.bindPopup(function () { return demandPopup(v); });
        m.addTo(demandLayer);
      });
      var sum = t.villages.reduce(function (s, v) { return s + v.total; }, 0);
      out.textContent = t.villages.length ? t.villages.length + " 个村有需求，共 " + sum + " 次（圆越大需求越多）" +
        (t.unplaced ? "；另有 " + t.unplaced + " 次无村信息" : "") + "。" : "暂无需求记录" + (t.unplaced ? "（" + t.unplaced + " 次无村信息）" : "") + "。";
    });
  }

  function init() {
    var panel = document.getElementById("panel");
    mode = panel ? panel.dataset.mode : cfg().mode;
    bindPlanForm();
    var toggle = document.getElementById("demand-toggle");
    if (toggle) {
      toggle.checked = false;
      toggle.addEventListener("change", function () { showDemand(toggle.checked); });
    }
    document.querySelectorAll("#uncovered a").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        ev.preventDefault();
        map.setView([Number(a.dataset.lat), Number(a.dataset.lon)], 14);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", init);

  return {
    map: function () { return map; },
    demand: function () { return demandLayer; },
    showDemand: showDemand,
    demandTotals: demandTotals
  };
})();
