// The sidebar: on a phone it folds away behind its menu button and opens over the chat,
// on a backdrop that closes it when tapped; Escape closes what is open (the panel, a
// conversation's or the account's menu) and gives the focus back to what opened it. While
// the panel is open, the chat behind it does not scroll and cannot take the focus.
(function () {
  "use strict";

  const PHONE = window.matchMedia("(max-width: 720px)");

  function parts() {
    return {
      sidebar: document.getElementById("sidebar"),
      toggle: document.getElementById("sidebar-toggle"),
      backdrop: document.getElementById("sidebar-backdrop"),
    };
  }

  function setOpen(open) {
    const { sidebar, toggle, backdrop } = parts();
    sidebar.classList.toggle("is-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    backdrop.hidden = !open;
    document.documentElement.classList.toggle("sidebar-is-open", open);
    document.getElementById("chat")?.toggleAttribute("inert", open);
  }

  function isOpen() {
    return PHONE.matches && Boolean(parts().sidebar?.classList.contains("is-open"));
  }

  function close() {
    setOpen(false);
    parts().toggle.focus();
  }

  function closeMenu(menu) {
    menu.open = false;
    menu.querySelector("summary").focus();
  }

  // A conversation where an exchange started comes first in its section: Pinned, or
  // Today. A page listing it moves its own entry, which knows whether it is the page's;
  // another page adds the entry the frame brings, unless it hides API conversations and
  // the entry is one.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const list = event.detail.target;
    if (list.id !== "conversation-list") return;
    event.detail.shouldSwap = false;
    const hidesApi = list.hasAttribute("data-hides-api");
    for (const fresh of event.detail.fragment.querySelectorAll("li[id]")) {
      const entry = document.getElementById(fresh.id) || fresh;
      if (entry === fresh && hidesApi && fresh.dataset.source === "api") continue;
      const section = fresh.classList.contains("is-pinned") ? "pinned" : "today";
      const items = list.querySelector(`[data-group="${section}"] > ol`);
      list.querySelector(":scope > .conversation-list-empty")?.remove();
      items.insertBefore(entry, items.firstElementChild);
      if (entry === fresh) htmx.process(entry);
    }
  });

  // The privacy notice, once dismissed, lives behind the eye button: the focus goes there.
  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.successful && event.detail.target?.id === "privacy-note") {
      document.getElementById("privacy-button")?.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const { sidebar, toggle } = parts();
    if (!sidebar || !toggle) return;
    // Folding needs this script; without it the panel simply stays open.
    sidebar.classList.add("is-collapsible");
    const backdrop = document.createElement("div");
    backdrop.id = "sidebar-backdrop";
    backdrop.className = "sidebar-backdrop";
    backdrop.hidden = true;
    backdrop.addEventListener("click", close);
    sidebar.after(backdrop);
    // Grown past a phone's width, the sidebar is no longer folded: nothing stays locked.
    PHONE.addEventListener("change", () => {
      if (!PHONE.matches) setOpen(false);
    });
    // Escape outside the panel (on the chat behind it) closes it too, and does nothing else.
    document.addEventListener(
      "keydown",
      (event) => {
        if (event.key !== "Escape" || event.isComposing || !isOpen()) return;
        if (sidebar.contains(event.target)) return;
        close();
        event.preventDefault();
        event.stopPropagation();
      },
      true,
    );
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      setOpen(open);
      if (open) document.getElementById("sidebar-search-input")?.focus();
    });
    // On the sidebar, not the document: Escape here must not also stop a reply.
    sidebar.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.isComposing) return;
      const menu = event.target.closest?.("details:is(.conversation-menu, .account-menu)[open]");
      if (menu) {
        closeMenu(menu);
      } else if (isOpen()) {
        close();
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
