// The console's only script: copy buttons. A button with data-copy="<element id>" copies that element's value.
// A file, not inline: the Content-Security-Policy allows scripts from 'self' only.
"use strict";
document.addEventListener("click", function (event) {
  const button = event.target.closest("[data-copy]");
  if (!button) {
    return;
  }
  const source = document.getElementById(button.dataset.copy);
  if (!source) {
    return;
  }
  const done = function (text) {
    button.textContent = text;
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.value).then(
      function () { done("Copied"); },
      function () { source.select(); done("Press Ctrl+C to copy"); }
    );
  } else {
    source.select();
    done("Press Ctrl+C to copy");
  }
});
document.addEventListener("focusin", function (event) {
  if (event.target.matches && event.target.matches("[data-select-on-focus]")) {
    event.target.select();
  }
});
