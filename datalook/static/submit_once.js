// A form marked data-submit-once posts once: the first submit disables its buttons, and
// any further submit (a double click, Enter pressed twice) is dropped. The pressed button's
// name and value still go with the form (a disabled button would not send them).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-submit-once")) return;
    if (form.dataset.submitted === "1") {
      event.preventDefault();
      return;
    }
    form.dataset.submitted = "1";
    var pressed = event.submitter;
    if (pressed && pressed.name) {
      var carried = document.createElement("input");
      carried.type = "hidden";
      carried.name = pressed.name;
      carried.value = pressed.value;
      form.appendChild(carried);
    }
    form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (button) {
      button.disabled = true;
    });
    form.setAttribute("aria-busy", "true");
  });
  // Back to a page kept in the browser's memory: the form may be used again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      delete form.dataset.submitted;
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (b) {
        b.disabled = false;
      });
    });
  });
})();
