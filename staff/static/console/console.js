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

// Forms with a client and an application (issue an invitation, create an API key): once a client is chosen,
// the application dropdown offers only its applications (labelled "<client code> / …"). The server narrows
// and checks too; this only saves a round trip when the client is changed on the page.
function narrowApplications(clientSelect) {
  const form = clientSelect.form;
  const applications = form && form.querySelector("select[name='application']");
  if (!applications) {
    return;
  }
  const chosen = clientSelect.options[clientSelect.selectedIndex];
  const code = chosen && chosen.value ? chosen.textContent.trim() : "";
  for (const option of applications.options) {
    if (!option.value) {
      continue;
    }
    const offered = !code || option.textContent.startsWith(code + " / ");
    option.hidden = !offered;
    option.disabled = !offered;
    if (!offered && option.selected) {
      applications.value = "";
    }
  }
}
function onClientChange(event) {
  if (event.target.matches && event.target.matches("select[name='client']")) {
    narrowApplications(event.target);
  }
}
document.addEventListener("change", onClientChange);
// The admin's autocomplete (select2) announces a choice through jQuery only.
if (window.django && window.django.jQuery) {
  window.django.jQuery(document).on("change", "select[name='client']", onClientChange);
}
