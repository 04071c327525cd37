// Webchat page behaviour that htmx cannot express: keyboard sending, composer reset,
// ordering of streamed frames, and following the reply as it grows.
(function () {
  "use strict";

  const composerText = () => document.getElementById("composer-text");
  const scroller = () => document.getElementById("scroller");

  function nearBottom() {
    const el = scroller();
    return !el || el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  function scrollToBottom() {
    const el = scroller();
    if (el) el.scrollTop = el.scrollHeight;
  }

  function autoGrow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 240) + "px";
  }

  // Enter sends, Shift+Enter adds a line; never send while an IME is composing.
  document.addEventListener("keydown", (event) => {
    const textarea = event.target;
    if (textarea.id !== "composer-text" || event.key !== "Enter") return;
    if (event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    if (textarea.value.trim() !== "") textarea.form.requestSubmit();
  });

  document.addEventListener("input", (event) => {
    if (event.target.id === "composer-text") autoGrow(event.target);
  });

  // A sent message clears the composer; a refused one stays in it beside the error.
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (form.id !== "composer") return;
    if (event.detail.successful) {
      const textarea = composerText();
      textarea.value = "";
      autoGrow(textarea);
      document.getElementById("composer-error").replaceChildren();
      scrollToBottom();
    }
    composerText().focus();
  });

  function offsets(fragment) {
    const el = fragment.dataset ? fragment : fragment.firstElementChild;
    return el && el.dataset ? el.dataset : {};
  }

  // Frames carry text offsets. A delta applies only where the page's text ends; a
  // render of a still-streaming reply applies only if it is not older than the page.
  // An exchange frame (a message sent from another tab) adds only what the page lacks.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target;
    const incoming = offsets(event.detail.fragment);
    if (target.id === "messages") {
      const fragment = event.detail.fragment;
      for (const article of Array.from(fragment.children)) {
        if (document.getElementById(article.id)) article.remove();
      }
      if (!fragment.children.length) event.detail.shouldSwap = false;
    } else if (target.classList.contains("stream-tail")) {
      const message = target.closest("article");
      const key = target.id.endsWith("-reasoning-tail") ? "reasoningEnd" : "end";
      if (!message || message.dataset[key] !== incoming.start) {
        event.detail.shouldSwap = false;
        return;
      }
      message.dataset[key] = incoming.end;
      if (key === "reasoningEnd") target.closest("details").hidden = false;
    } else if (target.tagName === "ARTICLE" && incoming.status) {
      const stillStreaming = incoming.status === "pending" || incoming.status === "streaming";
      const older =
        Number(incoming.end) < Number(target.dataset.end) ||
        Number(incoming.reasoningEnd) < Number(target.dataset.reasoningEnd);
      // A finished reply may stream again: Continue appends to it.
      if (stillStreaming && older) event.detail.shouldSwap = false;
    }
  });

  // A frame can add a new message before the response to the request that sent it
  // arrives; keep the first copy, which later frames have kept up to date.
  document.addEventListener("htmx:afterSwap", (event) => {
    const list = event.detail.target;
    if (list.id !== "messages") return;
    const seen = new Set();
    for (const article of list.querySelectorAll(":scope > article")) {
      if (seen.has(article.id)) article.remove();
      else seen.add(article.id);
    }
  });

  let following = true;
  document.addEventListener("htmx:wsBeforeMessage", () => {
    following = nearBottom();
  });
  document.addEventListener("htmx:wsAfterMessage", () => {
    if (following) scrollToBottom();
  });

  document.addEventListener("DOMContentLoaded", () => {
    scrollToBottom();
    const textarea = composerText();
    if (textarea) autoGrow(textarea);
  });
})();
