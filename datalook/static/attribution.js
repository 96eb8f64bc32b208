// Revenue by source: reads attribution.json for the chosen model and fills the table.
(function () {
  "use strict";
  var panel = document.querySelector("[data-attribution-url]");
  if (!panel) return;
  var body = panel.querySelector("tbody");
  var status = panel.querySelector("[data-attribution-status]");
  var buttons = panel.querySelectorAll("[data-model]");

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text;  // text, never markup: values come from visitors' URLs
    return td;
  }

  // Money as the rest of the dashboard shows it ($1,234.50); the exact decimal string
  // with its currency code where the browser cannot format that currency.
  function money(amount, currency) {
    try {
      return new Intl.NumberFormat("en-US", { style: "currency", currency: currency })
        .format(Number(amount));
    } catch (error) {
      return amount + " " + currency;
    }
  }

  function show(answer) {
    body.textContent = "";
    answer.rows.forEach(function (row) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = row.value;
      tr.appendChild(th);
      tr.appendChild(cell(String(row.conversions)));
      tr.appendChild(cell(String(row.converters)));
      tr.appendChild(cell(money(row.revenue, answer.currency)));
      body.appendChild(tr);
    });
    var lost = answer.unattributed;
    status.textContent = answer.rows.length || lost.conversions
      ? "Unattributed: " + lost.conversions + " conversions, " + money(lost.revenue, answer.currency) + "."
      : "No conversions in this range.";
  }

  function load(model) {
    buttons.forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.model === model));
    });
    fetch(panel.dataset.attributionUrl + "&model=" + model, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(show)
      .catch(function () { status.textContent = "Revenue by source could not be loaded."; });
  }

  buttons.forEach(function (button) {
    button.addEventListener("click", function () { load(button.dataset.model); });
  });
  load("last");
})();
