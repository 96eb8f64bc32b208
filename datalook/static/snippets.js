// Code sample tabs (WAI-ARIA tabs pattern, automatic activation) and copy buttons.
// Loaded with `defer` from a static file: no inline script, so it works under a strict CSP.
(function () {
  'use strict';

  function setUpTabs(root) {
    // Idempotent: the script may be included more than once on a page.
    if (root.getAttribute('data-snippet-ready')) {
      return;
    }
    root.setAttribute('data-snippet-ready', 'true');
    var tabs = Array.prototype.slice.call(root.querySelectorAll('[role="tab"]'));
    if (!tabs.length) {
      return;
    }

    // The narrow-screen picker: a select of the same runtimes, kept in step with the tabs.
    var picker = root.querySelector('[data-snippet-select]');

    function select(tab, moveFocus) {
      if (picker) {
        picker.value = tab.id;
      }
      tabs.forEach(function (other) {
        var selected = other === tab;
        var panel = document.getElementById(other.getAttribute('aria-controls'));
        other.setAttribute('aria-selected', selected ? 'true' : 'false');
        other.tabIndex = selected ? 0 : -1;
        if (panel) {
          panel.hidden = !selected;
        }
      });
      if (moveFocus) {
        tab.focus();
      }
    }

    if (picker) {
      picker.addEventListener('change', function () {
        var chosen = document.getElementById(picker.value);
        if (chosen) {
          select(chosen, false);
        }
      });
    }

    tabs.forEach(function (tab, index) {
      tab.addEventListener('click', function () {
        select(tab, false);
      });
      tab.addEventListener('keydown', function (event) {
        var target = null;
        switch (event.key) {
          case 'ArrowRight':
            target = tabs[(index + 1) % tabs.length];
            break;
          case 'ArrowLeft':
            target = tabs[(index - 1 + tabs.length) % tabs.length];
            break;
          case 'Home':
            target = tabs[0];
            break;
          case 'End':
            target = tabs[tabs.length - 1];
            break;
          default:
            return;
        }
        event.preventDefault();
        select(target, true);
      });
    });
  }

  function announce(button, message) {
    var status = button.parentNode.querySelector('[role="status"]');
    if (!status) {
      return;
    }
    status.textContent = message;
    window.clearTimeout(button.snippetStatusTimer);
    button.snippetStatusTimer = window.setTimeout(function () {
      status.textContent = '';
    }, 4000);
  }

  function selectContents(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function setUpCopy(button) {
    if (button.getAttribute('data-snippet-ready')) {
      return;
    }
    button.setAttribute('data-snippet-ready', 'true');
    button.addEventListener('click', function () {
      var code = document.getElementById(button.getAttribute('data-copy-target'));
      if (!code) {
        return;
      }
      // textContent of the highlighted code is exactly the plain snippet text.
      var text = code.textContent;
      if (!navigator.clipboard || !window.isSecureContext) {
        selectContents(code);
        announce(button, 'Selected: press Ctrl+C (Cmd+C on a Mac) to copy.');
        return;
      }
      navigator.clipboard.writeText(text).then(
        function () {
          announce(button, 'Copied.');
        },
        function () {
          selectContents(code);
          announce(button, 'Copy failed: the code is selected, press Ctrl+C to copy.');
        }
      );
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll('[data-snippet-tabs]'), setUpTabs);
    Array.prototype.forEach.call(document.querySelectorAll('[data-copy-target]'), setUpCopy);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
