// The console's script besides htmx and the map's: follows the hub's live stream (server-sent
// events, the same stream as /api/v1/console/stream) and asks the page to refresh what it
// shows.
(function () {
  "use strict";
  // A select that changes what else can be chosen (the community: its grids and units)
  // reloads the whole page with the filters as they stand.
  document.querySelectorAll("select[data-reload]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var pending = null;
  function changed() {
    // Several events at once (a batch from the router) make one refresh; none while the
    // dispatcher is choosing tasks for a bulk action (it comes once they are done).
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      if (document.querySelector("#queue input[name=task]:checked")) { changed(); return; }
      document.body.dispatchEvent(new CustomEvent("hub:changed"));
    }, 250);
  }
  var source = new EventSource("/console/stream");
  source.onopen = function () { live.textContent = live.dataset.on; live.dataset.state = "on"; };
  source.onerror = function () { live.textContent = live.dataset.off; live.dataset.state = "off"; };
  source.onmessage = changed;
  ["task_dispatched", "task_status_changed", "event_returned"].forEach(function (kind) {
    source.addEventListener(kind, changed);
  });
})();
