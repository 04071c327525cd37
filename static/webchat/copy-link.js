// Copy buttons next to links handed out (an invitation's in the admin, accounts/admin.py; a
// conversation's share links, conversations/shares.html): the Clipboard API where the page
// allows it, else the link is selected for the user to copy. Without this script the buttons
// stay hidden and the field is selected by hand.
(function () {
  "use strict";

  const SHOWN_FOR_MS = 2000;

  function show(button, label) {
    const original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = label;
    window.setTimeout(() => {
      button.textContent = original;
    }, SHOWN_FOR_MS);
  }

  function select(field, button) {
    field.focus();
    field.select();
    show(button, button.dataset.selected);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy-link]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copyLink);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(
        () => show(button, button.dataset.copied),
        () => select(field, button),
      );
    } else {
      select(field, button);
    }
  });

  function reveal(root) {
    for (const button of root.querySelectorAll("button[data-copy-link]")) {
      button.hidden = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => reveal(document));
  // Panels htmx brings in later (the share panel).
  document.addEventListener("htmx:load", (event) => {
    if (event.detail.elt instanceof Element) reveal(event.detail.elt);
  });
})();
