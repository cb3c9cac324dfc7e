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

  var PHONE_COLUMNS = [
    ["extension", "Ext."], ["name", "Name"], ["source", "Address"], ["transport", "Transport"],
    ["user_agent", "Phone"], ["expires", "Expires"], ["taken", "Taken in"]
  ];

  function phones(body, rows, known) {
    // Rebuild the phone table with text only; data-label heads each cell on a narrow screen.
    if (!body) { return; }
    var fresh = rows.map(function (row) {
      var tr = document.createElement("tr");
      PHONE_COLUMNS.forEach(function (column) {
        var td = document.createElement("td");
        td.setAttribute("data-label", column[1]);
        td.textContent = row[column[0]];
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren.apply(body, fresh);
    var none = document.getElementById("no-phones");
    if (none) {
      none.hidden = rows.length > 0;
      none.textContent = known ? "No phone registered." : "Kamailio did not say.";
    }
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
    phones(document.getElementById("phone-rows"), m.phones, m.phones_known);
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
