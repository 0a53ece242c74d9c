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

  function init(mapName, currentMode, endpoints) {
    map = window[mapName];
    mode = currentMode;
    urls = endpoints;
    document.querySelectorAll("#uncovered a").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        ev.preventDefault();
        map.setView([Number(a.dataset.lat), Number(a.dataset.lon)], 14);
      });
    });
  }

  return { bindVillage: bindVillage, bindFacility: bindFacility, init: init };
})();
