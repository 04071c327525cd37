// Comfort and accessibility of the chat page: the theme switch without a reload, copy
// buttons on messages and code blocks, keyboard shortcuts, and telling screen readers when a
// reply starts and ends instead of reading every streamed word.
(function () {
  "use strict";

  const ACTIVE = new Set(["pending", "streaming"]);
  const COPIED_FOR_MS = 2000;
  // The words shown here, in the page's language (the server renders them: base.html).
  const words = JSON.parse(document.getElementById("script-words")?.textContent || "{}");
  const t = (english) => words[english] || english;

  // The browser's time zone, for the server to group conversations by the reader's days
  // (accounts/time_zone.py).
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && !document.cookie.split("; ").includes(`webchat_time_zone=${encodeURIComponent(zone)}`)) {
    document.cookie = `webchat_time_zone=${encodeURIComponent(zone)}; path=/; max-age=31536000; samesite=lax`;
  }

  // --- The demo model's notice: hidden for the rest of the session on request -----------

  const DEMO_HIDDEN = "webchat-demo-banner-hidden";
  document.addEventListener("DOMContentLoaded", () => {
    const banner = document.getElementById("demo-banner");
    if (!banner) return;
    banner.hidden = sessionStorage.getItem(DEMO_HIDDEN) === "1";
    const hide = document.getElementById("demo-banner-hide");
    hide.hidden = false;
    hide.addEventListener("click", () => {
      sessionStorage.setItem(DEMO_HIDDEN, "1");
      banner.hidden = true;
      document.getElementById("composer-text")?.focus();
    });
  });

  // The chat header's and the account's menus close on a click elsewhere.
  document.addEventListener("click", (event) => {
    for (const menu of document.querySelectorAll("details:is(.chat-menu, .account-menu)[open]")) {
      if (!menu.contains(event.target)) menu.open = false;
    }
  });

  // --- Announcements -------------------------------------------------------------------

  let announcing = null;

  function announce(text) {
    const region = document.getElementById("announcer");
    if (!region) return;
    // Emptied first, so that the same words twice in a row are spoken twice.
    region.textContent = "";
    window.clearTimeout(announcing);
    announcing = window.setTimeout(() => {
      region.textContent = text;
    }, 100);
  }

  // The text of a message as the user reads it: an assistant reply without its code blocks'
  // language labels and copy buttons (hidden for the moment innerText lays it out).
  function messageText(article) {
    const typed = article.querySelector(".bubble-user");
    if (typed) return typed.innerText.trim();
    const body = article.querySelector(".markdown");
    if (!body) return "";
    article.classList.add("is-copying");
    try {
      return body.innerText.trim();
    } finally {
      article.classList.remove("is-copying");
    }
  }

  const replyStatus = new Map(); // article id -> the status last seen

  function ending(article, status) {
    if (status === "complete") return `${t("Reply finished.")} ${messageText(article)}`;
    if (status === "stopped") return t("Reply stopped.");
    if (status === "interrupted") return t("Reply interrupted.");
    return t("Reply failed."); // the bubble's own alert says why
  }

  // Only changes are told: a reply that starts (also one found streaming when the page loads)
  // and one that ends.
  function followReplies(articles) {
    for (const article of articles) {
      if (!article.classList.contains("message-assistant")) continue;
      const before = replyStatus.get(article.id);
      const now = article.dataset.status;
      replyStatus.set(article.id, now);
      if (before === now) continue;
      if (ACTIVE.has(now) && !ACTIVE.has(before)) announce(t("Reply started."));
      else if (ACTIVE.has(before) && !ACTIVE.has(now)) announce(ending(article, now));
    }
  }

  // --- Copy buttons --------------------------------------------------------------------

  function copyBySelection(text) {
    const focused = document.activeElement;
    const area = document.createElement("textarea");
    area.value = text;
    area.readOnly = true;
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    if (focused instanceof HTMLElement) focused.focus();
    return copied ? Promise.resolve() : Promise.reject(new Error("The browser refused to copy."));
  }

  function writeClipboard(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(() => copyBySelection(text));
    }
    return copyBySelection(text);
  }

  function copyButton(kind, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `copy-button copy-${kind}`;
    button.dataset.copy = kind;
    button.setAttribute("aria-label", label);
    button.textContent = t("Copy");
    return button;
  }

  function addCodeButtons(root) {
    for (const bar of root.querySelectorAll(".codeblock-bar")) {
      if (!bar.querySelector(".copy-button")) bar.append(copyButton("code", t("Copy code")));
    }
  }

  function addMessageButton(article) {
    if (article.classList.contains("is-active") || article.querySelector(".copy-message")) return;
    // Images alone, or a reply that never began: nothing to copy.
    const body = article.querySelector(".bubble-user, .markdown");
    if (!body || body.textContent.trim() === "") return;
    const user = article.classList.contains("message-user");
    let place = article.querySelector(user ? ".message-tools" : ".message-meta");
    if (!place) {
      const bubble = article.querySelector(user ? ".user-turn" : ".bubble-assistant");
      if (!bubble) return;
      place = document.createElement("div");
      place.className = "message-copy";
      bubble.append(place);
    }
    place.append(copyButton("message", t("Copy message")));
  }

  const resetTimers = new WeakMap();

  function showCopied(button, label, words) {
    button.textContent = label;
    button.classList.add("is-copied");
    announce(words);
    window.clearTimeout(resetTimers.get(button));
    resetTimers.set(
      button,
      window.setTimeout(() => {
        button.textContent = t("Copy");
        button.classList.remove("is-copied");
      }, COPIED_FOR_MS),
    );
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest(".copy-button");
    if (!button) return;
    const text =
      button.dataset.copy === "code"
        ? button.closest(".codeblock").querySelector("pre").textContent.replace(/\n$/, "")
        : messageText(button.closest("article"));
    writeClipboard(text).then(
      () => showCopied(button, t("Copied"), t("Copied to the clipboard.")),
      () => showCopied(button, t("Not copied"), t("The browser did not allow copying.")),
    );
  });

  // --- New content: the page itself, responses, and frames of the socket ----------------

  function articlesIn(root) {
    const own = root.closest("article.message");
    return own ? [own] : Array.from(root.querySelectorAll("article.message"));
  }

  function applyTheme(form) {
    const theme = form.dataset.currentTheme;
    document.documentElement.dataset.theme = theme;
    const meta = document.querySelector('meta[name="color-scheme"]');
    if (meta) meta.content = theme === "system" ? "light dark" : theme;
  }

  // A new chat's page loads once its first message is sent: a reply that finished before
  // the page loaded is told as it would have been on the page that sent it.
  const ASKED_FROM_NEW_CHAT = "webchat-reply-asked";
  document.addEventListener("htmx:beforeOnLoad", (event) => {
    const redirected = event.detail.xhr.getResponseHeader("HX-Redirect");
    if (event.detail.elt.id === "composer" && redirected) {
      sessionStorage.setItem(ASKED_FROM_NEW_CHAT, "1");
    }
  });
  function tellReplyAskedFromNewChat(articles) {
    if (sessionStorage.getItem(ASKED_FROM_NEW_CHAT) !== "1") return;
    sessionStorage.removeItem(ASKED_FROM_NEW_CHAT);
    const reply = articles.filter((article) => article.classList.contains("message-assistant")).pop();
    if (reply && !ACTIVE.has(reply.dataset.status)) announce(ending(reply, reply.dataset.status));
  }

  // htmx fires this for the body once it is ready and for every element it adds after.
  document.addEventListener("htmx:load", (event) => {
    const root = event.target;
    if (!(root instanceof Element)) return;
    // The theme form comes back from the server holding the theme it has just set.
    if (root.id === "theme-form") applyTheme(root);
    const articles = articlesIn(root);
    addCodeButtons(root);
    articles.forEach(addMessageButton);
    followReplies(articles);
    if (root === document.body) tellReplyAskedFromNewChat(articles);
  });

  // A frame of a reply the page does not show yet (a fast reply to Edit or Regenerate,
  // whose response is still on its way) counts as seen: when the reply appears finished,
  // its end is told.
  document.addEventListener("htmx:oobErrorNoTarget", (event) => {
    const content = event.detail.content;
    if (content instanceof Element && content.matches("article.message")) {
      followReplies([content]);
    }
  });

  // --- Keyboard shortcuts ----------------------------------------------------------------

  function focusComposer() {
    const composer = document.getElementById("composer-text");
    if (!composer) return false;
    composer.focus();
    return true;
  }

  function typing(target) {
    return (
      target instanceof HTMLElement &&
      (target.isContentEditable || Boolean(target.closest("input, textarea, select")))
    );
  }

  function onEscape(event) {
    const help = document.getElementById("shortcuts");
    if (help && help.open && help.contains(document.activeElement)) {
      help.open = false;
      help.querySelector("summary").focus();
      return true;
    }
    const menu = event.target.closest?.("details.chat-menu[open]");
    if (menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
      return true;
    }
    // Escape closes an open dialog, popover or a select's list; it stops nothing then.
    if (document.querySelector("dialog[open], :popover-open") || event.target.closest?.("select")) {
      return false;
    }
    const stop = document.querySelector('[data-action="stop"]:not([disabled])');
    if (!stop) return false;
    stop.click();
    return true;
  }

  function showShortcuts() {
    const help = document.getElementById("shortcuts");
    if (!help) return false;
    help.open = true;
    help.querySelector("summary").focus();
    help.scrollIntoView({ block: "nearest" });
    return true;
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const key = event.key;
    const command = event.ctrlKey || event.metaKey;
    let handled = false;
    if (command && event.shiftKey && !event.altKey && key.toLowerCase() === "o") {
      const link = document.querySelector(".button-new");
      window.location.assign(link ? link.href : "/");
      handled = true;
    } else if (key === "Escape" && event.shiftKey) {
      handled = focusComposer();
    } else if (key === "Escape" && !command && !event.altKey) {
      handled = onEscape(event);
    } else if (!command && !event.altKey && !typing(event.target)) {
      if (key === "/") handled = focusComposer();
      else if (key === "?") handled = showShortcuts();
    }
    if (handled) event.preventDefault();
  });
})();
