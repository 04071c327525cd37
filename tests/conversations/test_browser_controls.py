"""End-to-end: a page's controls stay true without a reload: Regenerate only on the latest
reply, the header's token total, the sidebar's order, in every open tab."""

import re
import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, PASSWORD, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

WAIT = 20_000
REPLY_USAGE = re.compile(r"(\d+) in · (\d+) out")


def _send(page, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")


def _replies(page):
    return page.locator("#messages article.message-assistant")


def _wait_for_complete_replies(page, count: int) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#messages article.message-assistant[data-status=complete]")).to_have_count(
        count, timeout=WAIT
    )


def _usage_of(reply) -> tuple[int, int]:
    """The tokens a reply shows under it."""
    found = REPLY_USAGE.search(reply.locator(".message-meta").inner_text())
    assert found, "the reply shows no token counts"
    return int(found[1]), int(found[2])


def _total(*usages: tuple[int, int]) -> str:
    return f"{sum(u[0] for u in usages)} in · {sum(u[1] for u in usages)} out"


def test_regenerate_and_the_token_total_stay_true_across_messages_in_every_tab(
    page, fake_upstream_server
):
    from playwright.sync_api import expect

    fake_upstream_server.reset(reply="The first answer.")
    _send(page, "Hello there")
    page.wait_for_url("**/c/*/")
    _wait_for_complete_replies(page, 1)
    first = _replies(page).nth(0)
    first_usage = _usage_of(first)
    # A new chat shows its total once the first reply is done.
    expect(page.locator("#chat-usage")).to_have_text(_total(first_usage), timeout=WAIT)
    expect(first.locator("button.button-retry")).to_have_text("Regenerate")
    other_tab = page.context.new_page()
    other_tab.goto(page.url)
    expect(other_tab.locator("#chat-usage")).to_have_text(_total(first_usage))

    fake_upstream_server.reset(reply="The second, longer answer to it.")
    _send(page, "Tell me more, please")
    for tab in (page, other_tab):
        _wait_for_complete_replies(tab, 2)
        second = _replies(tab).nth(1)
        expect(second.locator("button.button-retry")).to_have_text("Regenerate", timeout=WAIT)
        expect(_replies(tab).nth(0).locator("button.button-retry")).to_have_count(0)
    second_usage = _usage_of(_replies(page).nth(1))
    for tab in (page, other_tab):
        expect(tab.locator("#chat-usage")).to_have_text(
            _total(first_usage, second_usage), timeout=WAIT
        )

    # Regenerating counts the new version as well as the one it replaces.
    fake_upstream_server.reset(reply="Another take on it, with a few more words.")
    _replies(page).nth(1).locator("button.button-retry").click()
    for tab in (page, other_tab):
        expect(tab.locator("#messages article.message-assistant .versions")).to_contain_text(
            "2 / 2", timeout=WAIT
        )
        _wait_for_complete_replies(tab, 2)
    third_usage = _usage_of(_replies(page).nth(1))
    for tab in (page, other_tab):
        expect(tab.locator("#chat-usage")).to_have_text(
            _total(first_usage, second_usage, third_usage), timeout=WAIT
        )
        expect(_replies(tab).nth(0).locator("button.button-retry")).to_have_count(0)
        expect(_replies(tab).nth(1).locator("button.button-retry")).to_have_text("Regenerate")
    other_tab.close()


@pytest.fixture
def bobs_page(browser, webchat_server):
    """A signed-in page of a user of this test alone: the sidebar lists just their chats."""
    webchat_server.create_user("bob", PASSWORD)
    with signed_in_page(browser, webchat_server, "bob") as page:
        yield page


def test_the_sidebar_puts_the_conversation_written_in_first_in_every_tab(
    bobs_page, webchat_server, fake_upstream_server
):
    from playwright.sync_api import expect

    page = bobs_page
    fake_upstream_server.reset(reply="Noted.")
    for text in ("Older topic", "Newer topic"):
        page.goto(f"{webchat_server.url}/")
        _send(page, text)
        page.wait_for_url("**/c/*/")
        _wait_for_complete_replies(page, 1)
    entries = page.locator("#conversation-list li")
    expect(entries.nth(0)).to_contain_text("Newer topic")
    other_tab = page.context.new_page()
    other_tab.goto(page.url)  # stays on the newer conversation
    other_entries = other_tab.locator("#conversation-list li")
    expect(other_entries.nth(0)).to_contain_text("Newer topic")

    page.locator("#conversation-list a", has_text="Older topic").click()
    page.wait_for_selector("#chat-title >> text=Older topic")
    _send(page, "Back to the older one")

    for tab_entries in (entries, other_entries):
        expect(tab_entries.nth(0)).to_contain_text("Older topic", timeout=WAIT)
        expect(tab_entries.nth(1)).to_contain_text("Newer topic")
        expect(tab_entries).to_have_count(2)
    # Each tab still marks its own conversation as the current one.
    expect(page.locator(".conversation-link.current")).to_have_text("Older topic")
    expect(other_tab.locator(".conversation-link.current")).to_have_text("Newer topic")
    _wait_for_complete_replies(page, 2)

    # A conversation started elsewhere appears at the top of the other tab's list.
    page.goto(f"{webchat_server.url}/")
    _send(page, "A brand new topic")
    expect(other_entries.nth(0)).to_contain_text("A brand new topic", timeout=WAIT)
    expect(other_entries).to_have_count(3)
    page.wait_for_url("**/c/*/")
    _wait_for_complete_replies(page, 1)
    other_tab.close()
