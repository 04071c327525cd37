"""Sends typed into a real Chromium: from the Enter key to the reply's text on screen.

A page script (installed before the page's own) notes, on ``performance.now()``: the
keydown of Enter in the composer (a capture listener, so before the page's handler), the
POST's answer (resource timing), the first moment the new reply's ``.markdown`` holds
visible text (a MutationObserver, so as the DOM changes), the next animation frame after
it, and the reply's final state. Text is found in the DOM, whatever the frames look like.
The upstream's arrival (``time.time()`` in its log) is put on the page's clock with
``performance.timeOrigin``, which is wall-clock time in milliseconds.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGE_SCRIPT = """
(() => {
  const FINAL = new Set(["complete", "stopped", "interrupted", "error"]);
  const bench = { sends: [], current: null, socketsOpen: 0 };
  window.__bench = bench;
  // Counts open sockets, whichever script opens them.
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => { bench.socketsOpen += 1; });
    }
  };
  addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.target.id !== "composer-text") return;
    const known = new Set(
      [...document.querySelectorAll("article.message-assistant")].map((a) => a.id));
    bench.current = { keydown: performance.now(), known, id: null, posted: null,
                      text: null, painted: null, done: null, status: "" };
    bench.sends.push(bench.current);
  }, true);
  function finalStatus(id) {
    for (const el of [document.getElementById(id), document.getElementById(id + "-status")]) {
      if (el && FINAL.has(el.dataset.status)) return el.dataset.status;
    }
    return "";
  }
  function check() {
    const send = bench.current;
    if (!send || send.done !== null) return;
    if (send.id === null) {
      const articles = document.querySelectorAll("article.message-assistant");
      const last = articles[articles.length - 1];
      if (!last || send.known.has(last.id)) return;
      send.id = last.id;
    }
    const article = document.getElementById(send.id);
    if (send.text === null && article) {
      const markdown = article.querySelector(".markdown");
      if (markdown && markdown.innerText.trim() !== "") {
        send.text = performance.now();
        requestAnimationFrame(() => { send.painted = performance.now(); });
      }
    }
    const status = finalStatus(send.id);
    if (status) { send.status = status; send.done = performance.now(); }
  }
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true });
  new PerformanceObserver((list) => {
    const send = bench.current;
    for (const entry of list.getEntries()) {
      if (send && send.posted === null && entry.name.endsWith("/messages/")
          && entry.startTime >= send.keydown) send.posted = entry.responseEnd;
    }
  }).observe({ type: "resource" });
})();
"""
LAST_SEND = """() => {
  const send = window.__bench.current;
  return send && { keydown: send.keydown, posted: send.posted, text: send.text,
                   painted: send.painted, done: send.done, status: send.status,
                   origin: performance.timeOrigin };
}"""


def missing() -> str:
    """Why Chromium cannot be driven here, or nothing."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}"
    return ""


@dataclass
class BrowserSend:
    """One send as the page saw it: ms after the keydown, and the keydown's wall time."""

    prompt: str
    keydown_wall_ms: float
    posted_ms: float | None
    text_ms: float | None
    painted_ms: float | None
    done_ms: float | None
    status: str
    error: str = ""


async def send_in_a_row(
    *,
    base_url: str,
    cookies: httpx.Cookies,
    conversation_id: int,
    prompts: list[str],
    within: float,
) -> list[BrowserSend]:
    """Open the conversation signed in with ``cookies`` and send ``prompts`` one after
    another, each once the previous reply has ended."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            await context.add_cookies(
                [{"name": name, "value": value, "url": base_url} for name, value in cookies.items()]
            )
            await context.add_init_script(PAGE_SCRIPT)
            page = await context.new_page()
            await _open_conversation(page, f"{base_url}/c/{conversation_id}/")
            return [await _send(page, prompt, within) for prompt in prompts]
        finally:
            await browser.close()


async def _open_conversation(page: "Page", url: str) -> None:
    """Load the page and wait for its socket to open."""
    await page.goto(url)
    await page.wait_for_selector("#composer-text")
    await page.wait_for_function("() => window.__bench.socketsOpen > 0", timeout=30_000)


async def _send(page: "Page", prompt: str, within: float) -> BrowserSend:
    await page.fill("#composer-text", prompt)
    await page.press("#composer-text", "Enter")
    error = ""
    try:
        await page.wait_for_function(
            "() => window.__bench.current && window.__bench.current.done !== null",
            timeout=within * 1000,
        )
    except Exception as failure:  # Playwright's TimeoutError, or the page gone
        error = f"no final state within {within:.0f} s: {failure!r}"
    seen = await page.evaluate(LAST_SEND)
    keydown = seen["keydown"]

    def since_keydown(name: str) -> float | None:
        return None if seen[name] is None else seen[name] - keydown

    if not error and seen["status"] != "complete":
        error = f"the reply ended {seen['status']}"
    return BrowserSend(
        prompt=prompt,
        keydown_wall_ms=seen["origin"] + keydown,
        posted_ms=since_keydown("posted"),
        text_ms=since_keydown("text"),
        painted_ms=since_keydown("painted"),
        done_ms=since_keydown("done"),
        status=seen["status"],
        error=error,
    )
