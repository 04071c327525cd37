// The menus of the chat header and the composer (model, presets: <details> of buttons,
// posted by htmx), the "/" preset search in the empty message box, and the settings
// drawer. Each works without this script; it adds what HTML cannot: arrow keys, Escape,
// closing on a click elsewhere, giving the focus back, and the filtered "/" menu.
(function () {
  "use strict";

  const ITEMS = ".picker-item:not([hidden])";
  let slash = null; // the "/" search: { picker, active }

  function items(picker) {
    return Array.from(picker.querySelectorAll(ITEMS)).filter((item) => item.offsetParent);
  }

  function focusItem(picker, which) {
    const list = items(picker);
    if (!list.length) return;
    const at = list.indexOf(document.activeElement);
    let next;
    if (which === "first") next = 0;
    else if (which === "last") next = list.length - 1;
    else if (which === "checked") {
      next = Math.max(0, list.findIndex((item) => item.getAttribute("aria-checked") === "true"));
    } else next = (at + which + list.length) % list.length;
    list[next].focus();
  }

  function close(picker, { focus = true } = {}) {
    picker.open = false;
    if (focus) picker.querySelector("summary").focus();
  }

  // --- Menus -------------------------------------------------------------------------

  document.addEventListener(
    "toggle",
    (event) => {
      const picker = event.target;
      if (!picker.matches?.("details.picker") || !picker.open) return;
      for (const other of document.querySelectorAll("details.picker[open]")) {
        if (other !== picker) other.open = false;
      }
      if (slash?.picker !== picker) focusItem(picker, "checked");
    },
    true,
  );

  document.addEventListener("click", (event) => {
    for (const picker of document.querySelectorAll("details.picker[open]")) {
      if (!picker.contains(event.target)) close(picker, { focus: false });
    }
  });

  // Capture: before comfort.js, whose Escape would stop a reply being written.
  document.addEventListener(
    "keydown",
    (event) => {
      const picker = event.target.closest?.("details.picker");
      if (!picker || event.isComposing || event.target.id === "composer-text") return;
      const onSummary = event.target.matches("summary");
      const key = event.key;
      if (key === "Escape" && picker.open) close(picker);
      else if (onSummary && (key === "ArrowDown" || key === "ArrowUp")) {
        picker.open = true;
        focusItem(picker, key === "ArrowDown" ? "first" : "last");
      } else if (onSummary || !picker.open) return;
      else if (key === "ArrowDown") focusItem(picker, 1);
      else if (key === "ArrowUp") focusItem(picker, -1);
      else if (key === "Home") focusItem(picker, "first");
      else if (key === "End") focusItem(picker, "last");
      else if ((key === "Enter" || key === " ") && event.target.matches("label")) {
        event.target.click(); // "Attach images", a label for the file input
        close(picker, { focus: false });
      } else return;
      event.preventDefault();
      event.stopPropagation();
    },
    true,
  );

  // A chosen item replaces its menu: the focus goes on where it was.
  document.addEventListener("htmx:afterSwap", (event) => {
    const picker = event.detail.target;
    if (!picker.matches?.("details.picker") || !document.getElementById(picker.id)) return;
    if (document.activeElement && document.activeElement !== document.body) return;
    document.getElementById(picker.id).querySelector("summary").focus();
  });

  // htmx takes the button last clicked or focused in a form as the submitter of the form's
  // next request, with its formaction: a preset item must not stay the composer's. Its
  // click reaches the form after this request starts, so it is forgotten in a task after.
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (!event.detail.elt.matches?.("#preset-menu button[formaction]")) return;
    const send = document.querySelector("#composer .button-send");
    setTimeout(() => send?.dispatchEvent(new FocusEvent("focusout", { bubbles: true })));
  });

  // --- "/" in the empty message box: the preset menu, filtered as one types -----------

  function presetPicker() {
    return document.getElementById("preset-menu");
  }

  function setActive(item) {
    const textarea = document.getElementById("composer-text");
    for (const other of slash.picker.querySelectorAll(".picker-item.is-active")) {
      other.classList.remove("is-active");
    }
    slash.active = item;
    if (item) {
      item.classList.add("is-active");
      item.scrollIntoView({ block: "nearest" });
      textarea.setAttribute("aria-activedescendant", item.id);
    } else {
      textarea.removeAttribute("aria-activedescendant");
    }
  }

  function filter(query) {
    const picker = slash.picker;
    const words = query.toLowerCase();
    let shown = 0;
    for (const item of picker.querySelectorAll(".picker-item")) {
      const name = item.hasAttribute("data-preset") ? item.textContent.trim().toLowerCase() : null;
      item.hidden = name === null || !name.includes(words);
      if (!item.hidden) shown += 1;
    }
    const hasPresets = picker.querySelector("[data-preset]") !== null;
    picker.querySelector("[data-no-match]").hidden = shown > 0 || !hasPresets;
    picker.classList.add("is-searching");
    const first = picker.querySelector(".picker-item:not([hidden])");
    setActive(slash.active && !slash.active.hidden ? slash.active : first);
  }

  function endSlash() {
    if (!slash) return;
    const picker = slash.picker;
    setActive(null);
    for (const item of picker.querySelectorAll(".picker-item")) item.hidden = false;
    picker.querySelector("[data-no-match]").hidden = true;
    picker.classList.remove("is-searching");
    picker.open = false;
    const textarea = document.getElementById("composer-text");
    textarea.removeAttribute("aria-controls");
    slash = null;
  }

  document.addEventListener("input", (event) => {
    const textarea = event.target;
    if (textarea.id !== "composer-text") return;
    const match = /^\/([^\n]*)$/.exec(textarea.value);
    const picker = presetPicker();
    if (!match || !picker) {
      endSlash();
      return;
    }
    if (!slash) {
      slash = { picker, active: null };
      textarea.setAttribute("aria-controls", "preset-menu");
      picker.open = true;
    }
    filter(match[1]);
  });

  // Before chat.js (Enter sends) and comfort.js (Escape stops a reply): capture.
  document.addEventListener(
    "keydown",
    (event) => {
      if (!slash || event.target.id !== "composer-text" || event.isComposing) return;
      const shown = items(slash.picker);
      const at = shown.indexOf(slash.active);
      if (event.key === "ArrowDown" && shown.length) setActive(shown[(at + 1) % shown.length]);
      else if (event.key === "ArrowUp" && shown.length) {
        setActive(shown[(at - 1 + shown.length) % shown.length]);
      } else if (event.key === "Enter" && !event.shiftKey) {
        // No preset by that name: the text is a message that begins with "/".
        if (!slash.active) {
          endSlash();
          return;
        }
        slash.active.click();
      } else if (event.key === "Escape") endSlash();
      else return;
      event.preventDefault();
      event.stopPropagation();
    },
    true,
  );

  // A preset applied from the "/" search takes the "/" text with it.
  document.addEventListener(
    "click",
    (event) => {
      if (!slash || !event.target.closest?.("#preset-menu [data-preset]")) return;
      const textarea = document.getElementById("composer-text");
      textarea.value = "";
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
      textarea.focus();
    },
    true,
  );

  // --- The settings drawer ----------------------------------------------------------

  function closeDrawer() {
    const drawer = document.getElementById("settings-panel");
    if (!drawer || drawer.hidden) return false;
    const slot = document.createElement("div");
    slot.id = "settings-panel";
    slot.className = "settings-slot";
    slot.hidden = true;
    drawer.replaceWith(slot);
    document.querySelector('[aria-controls="settings-panel"]')?.focus();
    return true;
  }

  document.addEventListener("click", (event) => {
    if (!event.target.closest?.("#settings-panel [data-drawer-close]")) return;
    event.preventDefault();
    closeDrawer();
  });

  document.addEventListener(
    "keydown",
    (event) => {
      if (event.key !== "Escape" || event.isComposing || event.defaultPrevented) return;
      // Outside the drawer, Escape stops a reply being written first (comfort.js).
      const inDrawer = event.target.closest?.("#settings-panel");
      if (!inDrawer && document.querySelector('[data-action="stop"]:not([disabled])')) return;
      if (closeDrawer()) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true,
  );
})();
