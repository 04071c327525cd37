"""In Chromium: a rich Markdown reply, streamed slowly, never shows Markdown syntax as
text at any moment, and math renders as MathML."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

RICH_REPLY = """## Plan for the week

Here is **very important advice** and some `inline code` to read,
with a [link to the docs](https://example.com/docs) too.

| Day | Task |
| --- | --- |
| Monday | Write the tests |
| Tuesday | Ship it |

```python
def greet(name):
    return f"Hello {name}"
```

The area is $a^2 + b^2 = c^2$ and also \\(x + y = z\\).

- first item with **bold text** inside
- second item
"""

# Every state the reply's text goes through while it streams (each batch of changes the
# page makes), with the label under it.
RECORD_STATES = """
() => {
  window.replyStates = [];
  const record = () => {
    const articles = document.querySelectorAll("article.message-assistant");
    const article = articles[articles.length - 1];
    if (!article) return;
    const label = article.querySelector(".message-state");
    window.replyStates.push({
      status: article.dataset.status,
      text: article.querySelector(".markdown").innerText,
      label: label ? label.innerText : "",
    });
  };
  new MutationObserver(record).observe(document.getElementById("messages"), {
    childList: true, subtree: true, characterData: true,
  });
}
"""
SYNTAX = ("##", "**", "`", "| ---", "---", "$", "\\(", "\\)", "](")


def test_a_rich_reply_never_shows_markdown_syntax_while_it_streams(page, fake_upstream_server):
    fake_upstream_server.reset(reply=RICH_REPLY, token_interval=0.05, first_token_delay=0.3)
    page.fill("#composer-text", "Plan my week")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.evaluate(RECORD_STATES)
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=60_000)

    states = page.evaluate("window.replyStates")
    streaming = [state for state in states if state["status"] in ("pending", "streaming")]
    with_text = [state for state in streaming if state["text"].strip()]
    assert len(with_text) >= 10, "the reply should have been seen growing"
    for state in with_text:
        shown = [syntax for syntax in SYNTAX if syntax in state["text"]]
        assert not shown, f"{shown} shown as text in {state['text']!r}"
        assert "Waiting for the model" not in state["label"]

    reply = page.locator("article.message-assistant").last
    assert reply.locator("h2").inner_text() == "Plan for the week"
    assert reply.locator("table tr").count() == 3
    assert "def greet(name):" in reply.locator("pre code").inner_text()
    assert reply.locator("math").count() == 2
    assert reply.locator("strong").count() == 2
