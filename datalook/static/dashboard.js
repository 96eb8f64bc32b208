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
