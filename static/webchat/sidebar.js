// The sidebar: on a phone it folds away behind its menu button; Escape closes what is open
// (the folded panel, a conversation's menu) and gives the focus back to what opened it.
(function () {
  "use strict";

  const PHONE = window.matchMedia("(max-width: 720px)");

  function parts() {
    return {
      sidebar: document.getElementById("sidebar"),
      toggle: document.getElementById("sidebar-toggle"),
    };
  }

  function setOpen(open) {
    const { sidebar, toggle } = parts();
    sidebar.classList.toggle("is-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  }

  function closeMenu(menu) {
    menu.open = false;
    menu.querySelector("summary").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const { sidebar, toggle } = parts();
    if (!sidebar || !toggle) return;
    // Folding needs this script; without it the panel simply stays open.
    sidebar.classList.add("is-collapsible");
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      setOpen(open);
      if (open) document.getElementById("sidebar-search-input")?.focus();
    });
    // On the sidebar, not the document: Escape here must not also stop a reply.
    sidebar.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.isComposing) return;
      const menu = event.target.closest?.("details.conversation-menu[open]");
      if (menu) {
        closeMenu(menu);
      } else if (PHONE.matches && sidebar.classList.contains("is-open")) {
        setOpen(false);
        toggle.focus();
      } else {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
    });
    // One menu open at a time.
    sidebar.addEventListener(
      "toggle",
      (event) => {
        const opened = event.target;
        if (!opened.matches?.("details.conversation-menu") || !opened.open) return;
        for (const other of sidebar.querySelectorAll("details.conversation-menu[open]")) {
          if (other !== opened) other.open = false;
        }
      },
      true,
    );
  });
})();
