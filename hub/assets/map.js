// The map page: the city's outlines and the account's open tasks, drawn by Leaflet with no
// base layer (nothing is fetched from the internet), in sync with the list beside it.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) { return; }
  var colours = { ok: "#1e7b34", warn: "#b07800", late: "#a4161a", paused: "#3b4a5a", none: "#5b6775" };
  var map = L.map(el, { preferCanvas: true, zoomSnap: 0.25 });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(el.dataset.datum);
  var markers = {};
  var rows = {};
  var list = document.getElementById("map-rows");
  var count = document.getElementById("map-count");

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) {
      var span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      td.appendChild(span);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
    return td;
  }

  function highlight(id, on) {
    var m = markers[id];
    if (m) {
      m.setStyle({ radius: on ? 10 : 6, weight: on ? 3 : 1, color: on ? "#000" : "#fff" });
      if (on) { m.bringToFront(); }
    }
    var tr = rows[id];
    if (tr) { tr.classList.toggle("selected", on); }
  }

  function visibleOnly() {
    var bounds = map.getBounds();
    var shown = 0;
    Object.keys(rows).forEach(function (id) {
      var inside = bounds.contains(markers[id].getLatLng());
      rows[id].hidden = !inside;
      if (inside) { shown += 1; }
    });
    count.textContent = count.dataset.label.replace("{n}", shown).replace("{total}", Object.keys(rows).length);
  }

  fetch(el.dataset.areas, { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (areas) {
      var layer = L.geoJSON(areas, {
        style: function (f) {
          var grid = f.properties.level === "grid";
          return { color: grid ? "#9aa6b2" : "#12385f", weight: grid ? 0.6 : 1.6, fill: !grid, fillOpacity: 0.03 };
        },
        onEachFeature: function (f, l) {
          if (f.properties.level === "community") { l.bindTooltip(f.properties.name, { sticky: true }); }
        }
      }).addTo(map);
      map.fitBounds(layer.getBounds());
      el.dataset.outlines = String(layer.getLayers().length);
      return fetch(el.dataset.tasks, { credentials: "same-origin" });
    })
    .then(function (r) { return r.json(); })
    .then(function (points) {
      // Columns: [id, lon, lat, category index, place index, band index] (see map.rs).
      points.tasks.forEach(function (t) {
        var band = points.bands[t[5]];
        var p = { id: t[0], category: points.categories[t[3]], place: points.places[t[4]],
                  band: band.band, countdown: band.words };
        var m = L.circleMarker([t[2], t[1]], {
          radius: 6, color: "#fff", weight: 1, fillColor: colours[p.band] || colours.none, fillOpacity: 0.9
        }).addTo(map);
        m.bindTooltip(p.category + " · " + p.countdown);
        m.on("click", function () {
          Object.keys(rows).forEach(function (id) { highlight(id, false); });
          highlight(p.id, true);
          rows[p.id].scrollIntoView({ block: "nearest" });
        });
        markers[p.id] = m;
        var tr = document.createElement("tr");
        tr.dataset.task = p.id;
        cell(tr, p.countdown, "band " + p.band);
        var link = document.createElement("a");
        link.href = "/tasks/" + encodeURIComponent(p.id);
        link.textContent = p.category;
        cell(tr, "").appendChild(link);
        cell(tr, p.place);
        tr.addEventListener("mouseenter", function () { highlight(p.id, true); });
        tr.addEventListener("mouseleave", function () { highlight(p.id, false); });
        tr.addEventListener("focusin", function () { highlight(p.id, true); });
        tr.addEventListener("focusout", function () { highlight(p.id, false); });
        rows[p.id] = tr;
        list.appendChild(tr);
      });
      map.on("moveend", visibleOnly);
      visibleOnly();
      el.dataset.points = String(points.tasks.length);
      el.dataset.ready = "true";
    });
})();
