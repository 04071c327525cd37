"""End-to-end: a reply full of script injections streams into a real browser, and nothing
in it runs, neither while it streams nor after its final render."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

# Each would set window.pwned if it ran.
PAYLOADS = [
    "<script>window.pwned = 1</script>",
    '<img src="x" onerror="window.pwned=1">',
    "<svg onload=window.pwned=1><circle r=5></svg>",
    "<svg><script>window.pwned=1</script></svg>",
    '<iframe srcdoc="<script>parent.pwned=1</script>"></iframe>',
    "[markdown link](javascript:window.pwned=1)",
    '<a href="javascript:window.pwned=1">raw link</a>',
    "<javascript:window.pwned=1>",
    '![picture](x" onerror="window.pwned=1)',
    '<div hx-get="/" hx-trigger="load" hx-on::after-request="window.pwned=1">htmx load</div>',
    '<button hx-on:click="window.pwned=1">htmx click</button>',
    '<details open ontoggle="window.pwned=1">details</details>',
    '<math><mtext><table><mglyph><style><img src=x onerror="window.pwned=1">',
    "[a safe link](https://example.invalid/page)",
]
FILLER = " ".join(f"filler{i}" for i in range(40))
REPLY = "\n\n".join([*PAYLOADS, FILLER, *PAYLOADS, "The end."])
# Watches every change of the page: a forbidden element or attribute inside a reply, even
# for an instant, and any script the Content-Security-Policy had to block.
WATCH = """
window.forbidden = [];
window.blocked = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.blocked.push(event.violatedDirective + ' ' + event.blockedURI);
});
const check = () => {
  for (const element of document.querySelectorAll('.markdown, .markdown *')) {
    if (['SCRIPT', 'IMG', 'IFRAME', 'SVG', 'svg', 'MATH', 'math', 'STYLE', 'BUTTON']
        .includes(element.tagName)) {
      window.forbidden.push(element.outerHTML);
    }
    for (const attribute of element.attributes) {
      if (/^(on|hx-|data-hx)/i.test(attribute.name) && !element.id.endsWith('-tail')) {
        window.forbidden.push(element.outerHTML);
      }
      if (attribute.name === 'href' && !/^https?:/i.test(attribute.value)) {
        window.forbidden.push(element.outerHTML);
      }
    }
  }
};
new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true});
"""
REPLY_TEXT = "document.querySelector('article.message-assistant .markdown')?.innerText || ''"


def _assert_nothing_ran(page) -> None:
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.evaluate("window.forbidden") == []
    assert page.evaluate("window.blocked") == []


def test_a_hostile_reply_runs_no_script_while_streaming_or_after(page, fake_upstream_server):
    fake_upstream_server.reset(reply=REPLY, token_interval=0.02)
    page.add_init_script(WATCH)
    page.fill("#composer-text", "Say something nasty")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")

    for word in ("raw link", "filler0", "filler20", "filler39"):
        page.wait_for_function(f"(word) => ({REPLY_TEXT}).includes(word)", arg=word)
        assert page.locator("article.message-assistant.is-active").count() == 1
        _assert_nothing_ran(page)

    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=30_000)
    _assert_nothing_ran(page)
    assert "The end." in page.evaluate(REPLY_TEXT)
    safe_link = page.locator("article.message-assistant .markdown a").first
    assert safe_link.get_attribute("href") == "https://example.invalid/page"
    assert set(safe_link.get_attribute("rel").split()) >= {"noopener", "noreferrer"}
    # What was a javascript: link is text now; clicking it does nothing.
    for text in ("markdown link", "raw link", "<javascript:window.pwned=1>"):
        page.get_by_text(text).first.click()
    _assert_nothing_ran(page)
    page.reload()
    _assert_nothing_ran(page)
