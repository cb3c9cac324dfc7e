// Lifeline status page: polls /ui/status.json and puts the figures in place, without reloading.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var SVG = "http://www.w3.org/2000/svg";

  function fill(list, items) {
    // Rebuild a <ul> of "<time>t</time> message" items with text only (never HTML from the box).
    if (!list) { return; }
    var fresh = items.map(function (item) {
      var li = document.createElement("li");
      var time = document.createElement("time");
      time.textContent = item.time;
      li.appendChild(time);
      li.appendChild(document.createTextNode(" " + item.message));
      return li;
    });
    list.replaceChildren.apply(list, fresh);
  }

  function segments(svg, items) {
    if (!svg) { return; }
    var fresh = items.map(function (s) {
      var rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("class", "seg mode-" + s.mode);
      rect.setAttribute("x", s.x);
      rect.setAttribute("y", "0");
      rect.setAttribute("width", s.w);
      rect.setAttribute("height", "20");
      var title = document.createElementNS(SVG, "title");
      title.textContent = s.mode;
      rect.appendChild(title);
      return rect;
    });
    svg.replaceChildren.apply(svg, fresh);
  }

  function update(m) {
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var value = m.fields[el.getAttribute("data-field")];
      if (value !== undefined && el.textContent !== value) { el.textContent = value; }
    });
    var badge = document.getElementById("mode-badge");
    if (badge) { badge.className = "badge mode-" + m.mode; }
    document.body.setAttribute("data-mode", m.mode);
    document.title = "Lifeline — " + m.fields.mode;
    ["rtt", "loss", "miss"].forEach(function (key) {
      var path = document.getElementById("chart-" + key);
      if (path) { path.setAttribute("d", m.chart[key]); }
    });
    var scale = document.getElementById("chart-scale");
    if (scale) { scale.textContent = m.chart.scale; }
    segments(document.getElementById("timeline"), m.timeline.segments);
    fill(document.getElementById("changes"), m.timeline.changes);
    fill(document.getElementById("event-list"), m.events);
  }

  function poll() {
    fetch("/ui/status.json", { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/ui/login?expired");
          return null;
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (m) {
        if (m === null) { return; }
        update(m);
        document.getElementById("stale").hidden = true;
        window.setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        document.getElementById("stale").hidden = false;
        window.setTimeout(poll, POLL_MS);
      });
  }

  window.setTimeout(poll, POLL_MS);
}());
