// Webchat page behaviour that htmx cannot express: keyboard sending, the composer's state
// and errors, ordering of streamed frames, and following the reply as it grows.
(function () {
  "use strict";

  const words = JSON.parse(document.getElementById("script-words")?.textContent || "{}");
  const composer = () => document.getElementById("composer");
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

  // Enter sends, in the composer as in an edited message; Shift+Enter adds a line; never
  // send while an IME is composing.
  document.addEventListener("keydown", (event) => {
    const textarea = event.target;
    if (!textarea.matches("textarea[data-enter-sends]") || event.key !== "Enter") return;
    if (event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    // While a reply is being written the composer offers Stop: the text waits.
    if (textarea.form.classList.contains("is-replying")) return;
    if (textarea.value.trim() !== "") textarea.form.requestSubmit();
  });

  // While a reply of this conversation is being written, Send becomes Stop; once none
  // is, a refusal that said a reply was being written goes.
  function updateComposer() {
    const form = composer();
    if (!form) return;
    const replying =
      document.querySelector(
        '#messages article.message-assistant:is([data-status="pending"], [data-status="streaming"])',
      ) !== null;
    form.classList.toggle("is-replying", replying);
    if (!replying) form.querySelectorAll("[data-until-idle]").forEach((error) => error.remove());
  }
  for (const name of ["DOMContentLoaded", "htmx:afterSettle", "htmx:wsAfterMessage"]) {
    document.addEventListener(name, updateComposer);
  }

  // A message the server did not take for another reason than a refusal (which it
  // explains itself, with a 422) says why beside the composer, and its text stays there.
  function showComposerError(text) {
    const error = document.createElement("p");
    error.className = "error-text";
    error.textContent = words[text] || text;
    document.getElementById("composer-error").replaceChildren(error);
  }
  function sendingError(status) {
    if (status === 400 || status === 413) {
      return "The message is too large to send. Shorten it, or send it in parts.";
    }
    if (status === 403) return "This page has expired. Reload it, then send again.";
    if (status === 429) return "Too many requests. Wait a moment, then send again.";
    return "The server had a problem and the message was not sent. Try again.";
  }
  document.addEventListener("htmx:responseError", (event) => {
    if (event.detail.elt !== composer() || event.detail.xhr.status === 422) return;
    showComposerError(sendingError(event.detail.xhr.status));
  });
  document.addEventListener("htmx:sendError", (event) => {
    if (event.detail.elt !== composer()) return;
    showComposerError("The server could not be reached. Check your connection, then send again.");
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

  const ACTIVE = new Set(["pending", "streaming"]);
  // Replies a frame finished since the branch was last requested (see below).
  const finishedByFrames = new Set();

  function offsets(fragment) {
    const el = fragment.dataset ? fragment : fragment.firstElementChild;
    return el && el.dataset ? el.dataset : {};
  }

  // A page that missed a frame asks its socket for the reply's whole state again.
  let socket = null;
  document.addEventListener("htmx:wsOpen", (event) => {
    socket = event.detail.socketWrapper;
  });
  function requestSync() {
    if (socket) socket.send(JSON.stringify({ sync: true }));
  }

  // The server closes the socket with 4401 when its session ends (signed out, the
  // password changed, expired, deactivated: accounts/socket_sessions.py SESSION_ENDED), and
  // htmx does not reopen it. The page says so rather than reloading at once: the browser
  // that changed the password is still signed in, but only once that request's answer
  // has brought it the session's new cookie.
  // A socket over the user's limit of open pages (conversations/consumers.py
  // TOO_MANY_SOCKETS) is not reopened either.
  const NOTICE_OF_CLOSE_CODE = { 4401: "session-ended", 4429: "too-many-pages" };
  document.addEventListener("htmx:wsClose", (event) => {
    const notice = document.getElementById(NOTICE_OF_CLOSE_CODE[event.detail.event.code]);
    if (notice) notice.hidden = false;
  });

  function unchanged(article, incoming) {
    const shown = article.dataset;
    return (
      !ACTIVE.has(incoming.status) &&
      ["status", "end", "reasoningEnd", "blocks"].every((name) => shown[name] === incoming[name])
    );
  }

  // Frames carry offsets. Finished Markdown blocks append only where the page's blocks
  // end; the open block replaces the page's only after those blocks and if not older;
  // thinking text appends only where the page's ends. A render of a still-streaming
  // reply applies only if it is not older than the page, unless it is the live state
  // sent on request. An exchange frame (a message sent from another tab) adds only what
  // the page lacks, and only where the page's branch ends: one read before the page
  // moved to another branch (Edit, Regenerate, another version), or after it missed a
  // whole exchange, makes the page load its branch again instead.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target;
    const incoming = offsets(event.detail.fragment);
    const message = target.closest("article");
    if (target.id === "messages") {
      const fragment = event.detail.fragment;
      for (const article of Array.from(fragment.children)) {
        if (document.getElementById(article.id)) article.remove();
      }
      const first = fragment.firstElementChild;
      const shownLast = Array.from(target.querySelectorAll(":scope > article")).pop();
      const shownLastId = shownLast ? shownLast.id.replace("message-", "") : "";
      const continues = (first?.dataset.parent ?? "") === shownLastId;
      if (first && !continues) {
        htmx.ajax("GET", target.dataset.branchUrl, { target, swap: "innerHTML" });
      }
      if (!first || !continues) event.detail.shouldSwap = false;
    } else if (message && target.id === message.id + "-blocks") {
      if (message.dataset.blocks !== incoming.start) {
        event.detail.shouldSwap = false;
        if (Number(incoming.start) > Number(message.dataset.blocks)) requestSync();
        return;
      }
      message.dataset.blocks = incoming.end;
    } else if (message && target.id === message.id + "-tail") {
      const older = Number(incoming.end) < Number(message.dataset.end);
      if (message.dataset.blocks !== incoming.blocks || older) {
        event.detail.shouldSwap = false;
        return;
      }
      message.dataset.end = incoming.end;
    } else if (message && target.id === message.id + "-code") {
      // Lines for the open code block: only right after the text the page shows.
      if (message.dataset.blocks !== incoming.blocks || message.dataset.end !== incoming.start) {
        event.detail.shouldSwap = false;
        if (Number(incoming.start) > Number(message.dataset.end)) requestSync();
        return;
      }
      message.dataset.end = incoming.end;
    } else if (message && target.id === message.id + "-reasoning-tail") {
      if (message.dataset.reasoningEnd !== incoming.start) {
        event.detail.shouldSwap = false;
        if (Number(incoming.start) > Number(message.dataset.reasoningEnd)) requestSync();
        return;
      }
      message.dataset.reasoningEnd = incoming.end;
      target.closest("details").hidden = false;
    } else if (message && target.id === message.id + "-feedback") {
      // The tab that gave it has it, or soon will (its answer goes where the form was),
      // perhaps with a note being written: only other tabs take it.
      const asking = target.querySelector(".htmx-request");
      if (asking || target.dataset.state === incoming.state) event.detail.shouldSwap = false;
    } else if (target.tagName === "ARTICLE" && incoming.status && unchanged(target, incoming)) {
      // A finished reply the page already shows as it is (the state a socket is sent as it
      // connects): left in place, with any text the user is selecting.
      event.detail.shouldSwap = false;
    } else if (target.tagName === "ARTICLE" && incoming.status && !("sync" in incoming)) {
      const stillStreaming = ACTIVE.has(incoming.status);
      const older =
        Number(incoming.end) < Number(target.dataset.end) ||
        Number(incoming.reasoningEnd) < Number(target.dataset.reasoningEnd);
      // A finished reply may stream again: Continue appends to it.
      if (stillStreaming && older) event.detail.shouldSwap = false;
      else if (!stillStreaming) finishedByFrames.add(target.id);
    }
  });

  // Frames can overtake a load of the branch (after Regenerate, Edit, another version):
  // read while its reply was written, it can arrive after the reply's last frame. A reply
  // that a frame finished since the request stays as the frame left it.
  let keptReplies = new Map();
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.target?.id === "messages") finishedByFrames.clear();
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target.id !== "messages") return;
    keptReplies = new Map();
    for (const id of finishedByFrames) {
      const article = document.getElementById(id);
      if (article) keptReplies.set(id, article);
    }
  });

  // A reply can even finish before the page shows it (a fast reply to Regenerate, whose
  // response is still on its way): its final frame is kept for when it appears.
  const finishedBeforeShown = new Map();
  document.addEventListener("htmx:oobErrorNoTarget", (event) => {
    const article = event.detail.content;
    if (article.tagName === "ARTICLE" && !ACTIVE.has(article.dataset.status)) {
      finishedBeforeShown.set(article.id, article);
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
      const kept = keptReplies.get(article.id) || finishedBeforeShown.get(article.id);
      if (kept && kept !== article && ACTIVE.has(article.dataset.status)) {
        article.replaceWith(kept);
        htmx.process(kept);
      }
    }
    keptReplies = new Map();
    finishedBeforeShown.clear();
  });

  // Thinking shows open while the model thinks, counting the seconds, and folds into
  // "Thought for N s" (the server's figure) once the answer begins.
  setInterval(() => {
    for (const label of document.querySelectorAll("[data-thinking]")) {
      if (label.closest("details").hidden) continue; // no thinking has arrived yet
      label.dataset.since ||= String(Date.now());
      const seconds = Math.floor((Date.now() - Number(label.dataset.since)) / 1000);
      const text = words["Thinking… %(seconds)s s"] || "Thinking… %(seconds)s s";
      if (seconds > 0) label.textContent = text.replace("%(seconds)s", seconds);
    }
  }, 1000);
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    if (!event.detail.target.id?.endsWith("-thinking-label")) return;
    const label = document.getElementById(event.detail.target.id);
    if (label && !label.hasAttribute("data-thinking")) label.closest("details").open = false;
  });

  // The view follows a growing reply while it is at the bottom; scrolled up, it stays,
  // and a button jumps back to the latest text.
  let following = true;
  const jumpButton = () => document.getElementById("jump-to-latest");
  function updateJumpButton() {
    const button = jumpButton();
    if (button) button.hidden = nearBottom();
  }
  document.addEventListener("htmx:wsBeforeMessage", () => {
    following = nearBottom();
  });
  document.addEventListener("htmx:wsAfterMessage", () => {
    if (following) scrollToBottom();
    updateJumpButton();
  });
  document.addEventListener("scroll", updateJumpButton, { capture: true, passive: true });
  document.addEventListener("click", (event) => {
    if (event.target !== jumpButton()) return;
    scrollToBottom();
    following = true;
    updateJumpButton();
  });

  document.addEventListener("DOMContentLoaded", () => {
    scrollToBottom();
    const textarea = composerText();
    if (textarea) autoGrow(textarea);
  });
})();
