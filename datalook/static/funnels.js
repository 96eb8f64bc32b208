// The funnel builder: add, remove and reorder steps; a preview that follows the edits.
(function () {
  "use strict";
  var form = document.getElementById("funnel-form");
  if (!form) return;
  var list = document.getElementById("steps");
  var template = document.getElementById("step-template");
  var addButton = document.getElementById("add-step");
  var status = document.getElementById("preview-status");
  var table = document.getElementById("preview-table");
  var maxSteps = parseInt(form.dataset.maxSteps, 10);
  var minSteps = parseInt(form.dataset.minSteps, 10);
  var timer = null;
  var latest = 0;

  function rows() {
    return Array.prototype.slice.call(list.querySelectorAll("[data-step]"));
  }

  // Number the steps, give each input a unique id, and enable only the moves that apply.
  function renumber() {
    var all = rows();
    all.forEach(function (row, index) {
      row.querySelector("[data-step-number]").textContent = String(index + 1);
      var prefix = "step-" + (index + 1) + "-";
      row.querySelectorAll("[data-field]").forEach(function (input) {
        var label = row.querySelector('label[for="' + input.id + '"]');
        var hint = row.querySelector('[id="' + input.id + '-hint"]');
        input.id = prefix + input.dataset.field;
        if (label) label.htmlFor = input.id;
        if (hint) {
          hint.id = input.id + "-hint";
          input.setAttribute("aria-describedby", hint.id);
        }
      });
      row.querySelector('[data-action="up"]').disabled = index === 0;
      row.querySelector('[data-action="down"]').disabled = index === all.length - 1;
      row.querySelector('[data-action="remove"]').disabled = all.length <= minSteps;
    });
    addButton.disabled = all.length >= maxSteps;
  }

  function value(row, field) {
    var input = row.querySelector('[data-field="' + field + '"]');
    var text = input ? input.value.trim() : "";
    return text === "" ? null : text;
  }

  // Which input says which event of a kind (as the server reads it: forms/funnel_builder).
  var KIND_INPUT = { pageview: "page_path", click: "page_path", success: "rule_name", custom: "custom_name" };
  var MISSING = {
    page_path: "give the page path, e.g. /pricing (/* for any page)",
    rule_name: "give the success rule's name",
    custom_name: "give the custom event's name"
  };

  // Show only the inputs of the step's kind (without this script every input shows).
  function showKind(row) {
    var kind = value(row, "event_name");
    row.querySelectorAll("[data-for-kinds]").forEach(function (label) {
      label.hidden = label.dataset.forKinds.split(" ").indexOf(kind) < 0;
    });
  }

  function stepsAsJson() {
    return rows().map(function (row) {
      var kind = value(row, "event_name");
      var chosen = value(row, KIND_INPUT[kind]);
      var key = value(row, "property_key");
      return {
        event_name: kind,
        page_path: KIND_INPUT[kind] === "page_path" ? chosen : null,
        name: KIND_INPUT[kind] === "page_path" ? null : chosen,
        property: key ? { key: key, value: value(row, "property_value") || "" } : null
      };
    });
  }

  // The first step left blank, said as the server would say it; null when none is.
  function missing() {
    var all = rows();
    for (var i = 0; i < all.length; i++) {
      var field = KIND_INPUT[value(all[i], "event_name")];
      if (!value(all[i], field)) return "Step " + (i + 1) + ": " + MISSING[field] + ".";
    }
    return null;
  }

  function showPreview(report) {
    var body = table.querySelector("tbody");
    body.textContent = "";
    report.steps.forEach(function (step) {
      var tr = document.createElement("tr");
      [step.label, step.visitors.toLocaleString("en-US"), (step.conversion_from_start * 100).toFixed(1) + "%"].forEach(
        function (text) {
          var td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        }
      );
      body.appendChild(tr);
    });
    table.hidden = false;
    status.textContent =
      report.excluded_events_without_visitor + " matching events without a visitor left out.";
  }

  // Ask funnel.json for the last 30 days; only the newest answer is shown.
  function refresh() {
    var blank = missing();
    if (blank) {
      latest++;
      table.hidden = true;
      status.textContent = "Not counted yet: " + blank;
      return;
    }
    var params = new URLSearchParams();
    params.set("period", "30d");
    params.set("window", form.querySelector('[name="window"]').value.trim());
    params.set("mode", form.querySelector('[name="mode"]').value);
    stepsAsJson().forEach(function (step) {
      params.append("step", JSON.stringify(step));
    });
    var ticket = ++latest;
    status.textContent = "Counting…";
    fetch(form.dataset.previewUrl + "?" + params.toString(), {
      headers: { Accept: "application/json" },
      credentials: "same-origin"
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (answer) {
        if (ticket !== latest) return;
        if (answer.ok) {
          showPreview(answer.body);
        } else {
          table.hidden = true;
          status.textContent = "Not counted yet: " + answer.body.error.message;
        }
      })
      .catch(function () {
        if (ticket === latest) status.textContent = "The preview could not be loaded.";
      });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (!button) return;
    var row = button.closest("[data-step]");
    var action = button.dataset.action;
    if (action === "remove" && rows().length > minSteps) {
      row.remove();
    } else if (action === "up" && row.previousElementSibling) {
      list.insertBefore(row, row.previousElementSibling);
    } else if (action === "down" && row.nextElementSibling) {
      list.insertBefore(row.nextElementSibling, row);
    }
    renumber();
    button.focus();
    schedule();
  });

  addButton.addEventListener("click", function () {
    if (rows().length >= maxSteps) return;
    list.appendChild(template.content.firstElementChild.cloneNode(true));
    renumber();
    var added = rows()[rows().length - 1];
    showKind(added);
    added.querySelector("select").focus();
    schedule();
  });

  form.addEventListener("input", schedule);
  form.addEventListener("change", function (event) {
    if (event.target.matches("[data-kind-select]")) showKind(event.target.closest("[data-step]"));
    schedule();
  });
  rows().forEach(showKind);
  renumber();
  refresh();
})();
