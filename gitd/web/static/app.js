// gitd's pages work without JavaScript; this only adds conveniences.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Revision pickers submit on change (without JavaScript they have a Go button).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
    var button = select.form.querySelector("button.go");
    if (button) { button.hidden = true; }
  });
  // Forms that destroy something ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // Copy buttons next to clone URLs and new tokens.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (target && navigator.clipboard) {
        navigator.clipboard.writeText(target.value || target.textContent).then(function () {
          button.textContent = "Copied";
        });
      }
    });
  });
  // Upload forms show progress and keep the page responsive.
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var status = form.querySelector(".upload-status");
      if (status) { status.textContent = "Uploading…"; }
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
    });
  });
});
