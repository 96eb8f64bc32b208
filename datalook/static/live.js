// The live view: poll live.json every 1.5 s with a cursor and prepend what is new.
(function () {
  "use strict";

  var panel = document.querySelector("[data-live-url]");
  if (!panel) { return; }
  var url = panel.getAttribute("data-live-url");
  var rows = panel.querySelector("[data-live-rows]");
  var statusLine = panel.querySelector("[data-live-status]");
  var filters = panel.querySelector("[data-live-filters]");
  var keySelect = panel.querySelector("[data-live-keys]");
  var botLine = panel.querySelector("[data-live-bots]");
  var MAX_ROWS = 200;
  var INTERVAL = 1500;
  var cursor = null;
  var generation = 0;
  var timer = null;

  // Each cell names its column (data-label): on a phone the rows become cards, one labelled
  // line per field, and the empty ones are left out (live.css).
  function cell(value, className, label) {
    var td = document.createElement("td");
    var empty = value === null || value === undefined || value === "";
    td.textContent = empty ? "—" : String(value);
    td.className = (className || "") + (empty ? " is-empty" : "");
    if (label) { td.setAttribute("data-label", label); }
    return td;
  }

  function badge(label, kind) {
    var span = document.createElement("span");
    span.className = "badge badge-" + kind;
    span.textContent = label;
    return span;
  }

  function keyLabel(key) {
    if (!key) { return "—"; }
    return (key.name || key.key_id) + (key.kind === "test" ? " (test)" : "");
  }

  function details(item) {
    var parts = [];
    if (item.kind === "event") {
      if (item.properties && Object.keys(item.properties).length) {
        parts.push("properties " + JSON.stringify(item.properties));
      }
      if (item.stripped_keys && item.stripped_keys.length) {
        parts.push("PII keys stripped: " + item.stripped_keys.join(", "));
      }
      if (item.event_id) { parts.push("event_id " + item.event_id); }
      if (item.occurred_at !== item.time) { parts.push("occurred " + item.occurred_at); }
    } else {
      parts.push("HTTP " + item.status);
      (item.errors || []).forEach(function (e) {
        parts.push((e.index !== undefined ? "[" + e.index + "] " : "") + e.field + ": " + e.message);
      });
      if (item.excerpt) { parts.push("body " + item.excerpt); }
      if (item.suppressed) { parts.push(item.suppressed + " similar refusals not listed"); }
    }
    return parts.join("\n");
  }

  function row(item) {
    var tr = document.createElement("tr");
    tr.className = "is-" + item.kind;
    tr.setAttribute("data-item", item.id);
    tr.appendChild(cell(item.time.replace("T", " ").replace(/\.\d+Z$|Z$/, ""), "", "Received"));
    var what = document.createElement("td");
    what.setAttribute("data-label", "What");
    if (item.kind === "refused") { what.appendChild(badge("refused " + item.status, "refused")); }
    else if (item.kind === "duplicate") { what.appendChild(badge("duplicate", "duplicate")); }
    else if (item.kind === "not_joined") { what.appendChild(badge("visit not joined", "duplicate")); }
    else { what.appendChild(badge("event", "event")); }
    if (item.test) { what.appendChild(document.createTextNode(" ")); what.appendChild(badge("test", "test")); }
    tr.appendChild(what);
    if (item.kind === "event") {
      tr.appendChild(cell(item.event_name + (item.name ? " · " + item.name : ""), "", "Type · name"));
      tr.appendChild(cell(item.page_path, "", "Path"));
      tr.appendChild(cell(item.success_user_id || "anonymous", "", "Visitor"));
      tr.appendChild(cell(item.success_value, "", "Value"));
    } else {
      // A refusal has no path, visitor or value: its message takes their place.
      tr.appendChild(cell(item.code, "", "Code"));
      var errors = item.errors || [];
      var message = cell(errors.length ? errors[0].message +
        (errors.length > 1 ? " (and " + (errors.length - 1) + " more)" : "") : item.message,
        "", "Message");
      message.colSpan = 3;
      tr.appendChild(message);
    }
    tr.appendChild(cell(keyLabel(item.key), "", "Key"));
    tr.appendChild(cell(details(item), "details", "Details"));
    return tr;
  }

  function fillKeys(keys) {
    if (!keySelect || !keys || keySelect.options.length > 1) { return; }
    keys.forEach(function (key) {
      var option = document.createElement("option");
      option.value = key.key_id;
      option.textContent = keyLabel(key);
      keySelect.appendChild(option);
    });
  }

  function query() {
    var params = new URLSearchParams();
    if (cursor) { params.set("after", cursor); }
    new FormData(filters).forEach(function (value, name) {
      if (value) { params.set(name, value); }
    });
    return url + "?" + params.toString();
  }

  // "3 requests filtered as bots (HeadlessChrome) in the last 7 days": a headless browser's
  // events are dropped, and this says so instead of showing nothing.
  function showBots(bots) {
    if (!botLine || !bots) { return; }
    var text = "";
    if (bots.requests) {
      var names = bots.by_bot.map(function (b) { return b.bot; }).join(", ");
      text = bots.requests.toLocaleString("en-US") + (bots.requests === 1 ? " request" : " requests") +
        " filtered as bots (" + names + ") in the last " + bots.days + " days: their events are not stored.";
    }
    if (botLine.textContent !== text) { botLine.textContent = text; }
    botLine.hidden = !text;
  }

  function show(body, first) {
    fillKeys(body.keys);
    showBots(body.bots);
    var fragment = document.createDocumentFragment();
    body.items.forEach(function (item) {
      var tr = row(item);
      if (!first) { tr.classList.add("is-new"); }
      fragment.appendChild(tr);
    });
    rows.insertBefore(fragment, rows.firstChild);
    while (rows.children.length > MAX_ROWS) { rows.removeChild(rows.lastChild); }
    cursor = body.cursor;
    var count = rows.children.length;
    say(count ? "Live: updates every 1.5 s." + (body.gap ? " Some items were skipped (too many at once)." : "")
      : "Live: nothing yet. Send an event and it appears here within 2 s.");
  }

  // Change the status line only when its text changes (it is announced to screen readers).
  function say(message) {
    if (statusLine.textContent !== message) { statusLine.textContent = message; }
  }

  function poll() {
    var mine = generation;
    var first = cursor === null;
    fetch(query(), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (answer) {
        if (mine !== generation) { return; }
        if (answer.ok) { show(answer.body, first); }
        else { say((answer.body.error && answer.body.error.message) || "The live view could not load."); }
        schedule(INTERVAL);
      })
      .catch(function () {
        if (mine !== generation) { return; }
        say("Connection lost; retrying…");
        schedule(INTERVAL * 2);
      });
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(poll, document.hidden ? delay * 4 : delay);
  }

  function restart() {
    generation += 1;
    cursor = null;
    rows.replaceChildren();
    statusLine.textContent = "Loading…";
    schedule(250);
  }

  filters.addEventListener("change", restart);
  filters.addEventListener("submit", function (event) { event.preventDefault(); restart(); });
  poll();
})();
