/* The dashboard chart's keyboard: the arrow keys (Home, End) move between its buckets, and
   the bucket under the pointer or the focus marks its dot. The tooltips are CSS. */
(function (d) {
  "use strict";
  var chart = d.querySelector("[data-chart]");
  if (!chart) { return; }
  var cols = Array.prototype.slice.call(chart.querySelectorAll("[data-col]"));
  var dots = chart.querySelectorAll("[data-dot]");

  function mark(index) {
    for (var i = 0; i < dots.length; i++) {
      dots[i].classList.toggle("on", dots[i].getAttribute("data-dot") === String(index));
    }
  }

  cols.forEach(function (col, index) {
    col.addEventListener("mouseenter", function () { mark(index); });
    col.addEventListener("focus", function () { mark(index); });
    col.addEventListener("mouseleave", function () { mark(-1); });
    col.addEventListener("blur", function () { mark(-1); });
    col.addEventListener("keydown", function (event) {
      var moves = { ArrowLeft: index - 1, ArrowRight: index + 1, Home: 0, End: cols.length - 1 };
      if (!(event.key in moves)) { return; }
      event.preventDefault();
      var to = Math.max(0, Math.min(cols.length - 1, moves[event.key]));
      col.tabIndex = -1;
      cols[to].tabIndex = 0;
      cols[to].focus();
    });
  });
})(document);

/* A large range: the page answered before its panels were read; fetch them now. */
(function (d) {
  "use strict";
  var wait = d.querySelector("[data-panels-url]");
  if (!wait || !window.fetch) { return; }
  var status = wait.querySelector("[data-panels-status]");
  if (status) { status.textContent = "Reading the panels…"; }
  fetch(wait.getAttribute("data-panels-url"), { credentials: "same-origin" })
    .then(function (answer) {
      if (!answer.ok) { throw new Error(String(answer.status)); }
      return answer.text();
    })
    .then(function (html) {
      var box = d.createElement("div");
      box.innerHTML = html;  // our own page's markup, rendered and escaped by the server
      wait.replaceWith.apply(wait, Array.prototype.slice.call(box.childNodes));
    })
    .catch(function () {
      if (status) { status.textContent = "The panels could not be read; open one list below."; }
    });
})(document);
