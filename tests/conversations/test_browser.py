"""End-to-end: a real browser against a real server and the fake upstream."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]


def _reply_text(page) -> str:
    return page.locator("article.message-assistant .markdown").last.inner_text()


def test_a_user_sends_a_message_and_watches_the_reply_grow(page, fake_upstream_server):
    # Long enough (about 6 s) to be seen growing even on a loaded machine.
    fake_upstream_server.reset(token_count=150, token_interval=0.04, first_token_delay=0.1)
    page.fill("#composer-text", "Hello, model")
    page.press("#composer-text", "Enter")

    page.wait_for_selector("article.message-user >> text=Hello, model")
    streaming = page.locator("article.message-assistant.is-active")
    streaming.wait_for()
    page.wait_for_function(
        "() => document.querySelector('article.message-assistant .markdown').innerText.length > 0"
    )
    early = _reply_text(page)
    assert page.locator("article.message-assistant.is-active").count() == 1
    page.wait_for_function(
        "(n) => document.querySelector('article.message-assistant .markdown').innerText.length > n",
        arg=len(early),
    )

    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=30_000)
    final = _reply_text(page).strip()
    # Word by word: while streaming, text rendered so far and the tail after it are
    # separate blocks, which innerText puts on lines of their own.
    assert final.split()[: len(early.split())] == early.split()
    assert final.endswith("word149")
    assert page.input_value("#composer-text") == ""

    page.reload()
    assert _reply_text(page).strip() == final


def test_a_reload_mid_reply_shows_the_text_so_far_then_follows_it_live(page, fake_upstream_server):
    fake_upstream_server.reset(token_count=60, token_interval=0.05)
    page.fill("#composer-text", "Tell me something long")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    has_word10 = (
        "() => (document.querySelector('article.message-assistant .markdown')?.innerText || '')"
        ".includes('word10')"
    )
    page.wait_for_function(has_word10)
    page.reload()
    # The page catches up at once, before the reply is done, then follows it live.
    page.wait_for_function(has_word10)
    assert page.locator("article.message-assistant.is-active").count() == 1
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=15_000)
    words = _reply_text(page).split()
    assert words == [f"word{i}" for i in range(60)]


def test_a_refused_message_stays_in_the_composer(page, webchat_server):
    page.fill("#composer-text", "   ")
    page.click("button.button-send")
    assert page.url == f"{webchat_server.url}/"
    page.fill("#composer-text", "x" * 32_001)
    page.click("button.button-send")
    page.wait_for_selector("#composer-error >> text=the limit is 32,000")
    assert len(page.input_value("#composer-text")) == 32_001
