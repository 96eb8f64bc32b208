// The quest's live wait: poll the key's status every 2 s until its first event arrives.
(function () {
  "use strict";

  function copyToken(button) {
    var target = document.getElementById(button.getAttribute("data-copy-token"));
    if (!target || !navigator.clipboard) { return; }
    var label = button.textContent;  // "Copy key", "Copy snippet"
    navigator.clipboard.writeText(target.textContent.trim()).then(function () {
      button.textContent = "Copied";  // .button.copy has a fixed width: no jump
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  }

  document.querySelectorAll("[data-copy-token]").forEach(function (button) {
    button.addEventListener("click", function () { copyToken(button); });
  });

  var card = document.querySelector("[data-status-url]");
  if (!card) { return; }
  var url = card.getAttribute("data-status-url");

  function text(tag, value, className) {
    var node = document.createElement(tag);
    node.textContent = value;
    if (className) { node.className = className; }
    return node;
  }

  function showEvent(body) {
    var e = body.event;
    card.classList.remove("waiting");
    card.classList.add("success-state");
    card.replaceChildren();
    card.appendChild(text("h2", "✓ First event received — quest complete"));
    var list = document.createElement("dl");
    list.className = "event-details";
    [["Type", e.event_name], ["Name", e.name || "—"], ["Page path", e.page_path],
     ["Time", e.time || e.timestamp]].forEach(function (pair) {
      list.appendChild(text("dt", pair[0]));
      list.appendChild(text("dd", pair[1]));
    });
    card.appendChild(list);
    var link = text("a", "Open the dashboard", "button primary");
    link.href = body.dashboard_url;
    card.appendChild(link);
  }

  var statusText = card.querySelector("[data-status-text]");
  var shownRefusal = null;

  // "We received a request from this key, but it was refused: `field` message".
  function showRefusal(refused) {
    if (!statusText || refused.id === shownRefusal) { return; }
    shownRefusal = refused.id;
    card.classList.add("refused-state");
    statusText.replaceChildren();
    statusText.appendChild(document.createTextNode(
      "We received a request from this key, but it was refused: "));
    var first = (refused.errors || [])[0];
    if (first && first.field) {
      statusText.appendChild(text("code", first.field));
      var rest = first.message || "";
      if (rest.indexOf(first.field) === 0) { rest = rest.slice(first.field.length); }
      statusText.appendChild(document.createTextNode(" " + rest.trim()));
    } else {
      statusText.appendChild(document.createTextNode(refused.message));
    }
    statusText.appendChild(document.createTextNode(
      " (HTTP " + refused.status + ", " + refused.code + "). Fix it and send again; this page keeps watching."));
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.received) { showEvent(body); return; }
        if (body && body.refused) { showRefusal(body.refused); }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 4000); });
  }
  setTimeout(poll, 1000);
})();
