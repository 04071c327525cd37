"""End-to-end: Stop, and editing a message then switching between its versions."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

REPLY_HAS_TEXT = (
    "() => (document.querySelector('article.message-assistant .markdown')?.innerText || '')"
    ".includes('word3')"
)


def _send(page, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")


def test_stop_ends_the_reply_keeping_its_text(page, fake_upstream_server):
    fake_upstream_server.reset(token_count=1000, token_interval=0.03)
    _send(page, "Count to a thousand")
    page.wait_for_url("**/c/*/")
    page.wait_for_function(REPLY_HAS_TEXT)

    page.click("[data-action=stop]")

    stopped = page.locator("article.message-assistant[data-status=stopped]")
    stopped.wait_for(timeout=5_000)
    assert stopped.locator("text=Stopped.").count() == 1
    assert page.locator("[data-action=stop]").count() == 0
    kept = stopped.locator(".markdown").inner_text().split()
    assert kept[:4] == ["word0", "word1", "word2", "word3"]
    assert len(kept) < 1000
    page.reload()
    assert page.locator("article.message-assistant .markdown").inner_text().split() == kept


def test_the_escape_key_stops_the_reply(page, fake_upstream_server):
    fake_upstream_server.reset(token_count=1000, token_interval=0.03)
    _send(page, "Count to a thousand")
    page.wait_for_url("**/c/*/")
    page.wait_for_function(REPLY_HAS_TEXT)

    page.keyboard.press("Escape")

    page.locator("article.message-assistant[data-status=stopped]").wait_for(timeout=5_000)


def test_edit_and_resend_then_switch_between_the_versions(page, fake_upstream_server):
    fake_upstream_server.reset(reply="The first answer.")
    _send(page, "What is one plus one?")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")

    fake_upstream_server.reset(reply="The second answer.")
    question = page.locator("article.message-user")
    question.locator("text=Edit").click()
    editor = page.locator("article.message-user.is-editing textarea")
    editor.fill("What is two plus two?")
    page.locator("article.message-user.is-editing button[type=submit]").click()

    page.wait_for_selector("article.message-assistant[data-status=complete] >> text=second answer")
    assert page.locator("article.message-user .bubble-user").inner_text() == (
        "What is two plus two?"
    )
    assert page.locator("article.message-user .versions-position").inner_text() == "2 / 2"
    assert page.locator("text=The first answer.").count() == 0

    page.click("article.message-user [aria-label='Previous version']")
    page.wait_for_selector("article.message-assistant >> text=The first answer.")
    assert page.locator("article.message-user .bubble-user").inner_text() == (
        "What is one plus one?"
    )
    assert page.locator("article.message-user .versions-position").inner_text() == "1 / 2"

    page.reload()  # the choice is kept
    assert page.locator("article.message-assistant .markdown").inner_text().strip() == (
        "The first answer."
    )
    page.click("article.message-user [aria-label='Next version']")
    page.wait_for_selector("article.message-assistant >> text=The second answer.")
    assert fake_upstream_server.requests[-1].body["messages"][-1] == {
        "role": "user",
        "content": "What is two plus two?",
    }


def test_regenerate_adds_a_version_of_the_reply(page, fake_upstream_server):
    fake_upstream_server.reset(reply="Answer A.")
    _send(page, "Say something")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")

    fake_upstream_server.reset(reply="Answer B.")
    page.click("text=Regenerate")

    page.wait_for_selector("article.message-assistant[data-status=complete] >> text=Answer B.")
    assert page.locator("article.message-assistant").count() == 1
    assert page.locator("article.message-assistant .versions-position").inner_text() == "2 / 2"
    page.click("article.message-assistant [aria-label='Previous version']")
    page.wait_for_selector("article.message-assistant >> text=Answer A.")


def test_another_tab_follows_to_the_version_shown(page, fake_upstream_server):
    fake_upstream_server.reset(reply="Answer A.")
    _send(page, "Say something")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")
    other_tab = page.context.new_page()
    other_tab.goto(page.url)
    other_tab.wait_for_selector("article.message-assistant >> text=Answer A.")

    fake_upstream_server.reset(reply="Answer B.")
    page.click("text=Regenerate")

    other_tab.wait_for_selector("article.message-assistant[data-status=complete] >> text=Answer B.")
    assert other_tab.locator("article.message-assistant").count() == 1
    assert other_tab.locator("text=Answer A.").count() == 0
    page.click("article.message-assistant [aria-label='Previous version']")
    other_tab.wait_for_selector("article.message-assistant >> text=Answer A.")
    other_tab.close()
