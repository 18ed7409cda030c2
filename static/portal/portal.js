// The payment portal's only script (served from our origin: the page's CSP allows no inline code).
// Progressive enhancement: every form works without it.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    // A message after an action (or the form's error summary) takes the focus, so it is read out first.
    var notice = document.querySelector("[data-autofocus]");
    if (notice) notice.focus();

    // One submission per form: a double tap must not send twice (the server refuses a second charge
    // anyway; this spares the customer a confusing second page).
    document.querySelectorAll("form[data-once]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.sent) {
          event.preventDefault();
          return;
        }
        form.dataset.sent = "1";
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          button.setAttribute("aria-disabled", "true");
          button.setAttribute("aria-busy", "true");
        });
      });
    });

    // Back from the payment processor's page: confirm the new card without another click.
    var auto = document.querySelector("form[data-autosubmit]");
    if (auto) auto.requestSubmit ? auto.requestSubmit() : auto.submit();
  });
})();
