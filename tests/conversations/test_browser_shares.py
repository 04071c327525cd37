"""End-to-end: the owner shares a conversation from the chat header, copies the link and
opens it; someone else signed in opens it, a visitor not signed in opens only a link for
anyone; once revoked, the link is gone."""

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import CHROMIUM, PASSWORD, SCREENS, running_webchat, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

SHARE_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/s/[\w-]{40,}/$")


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake_upstream_server):
    # Titles stay the first words: a title the model writes would come at any moment.
    folder = tmp_path_factory.mktemp("live")
    with running_webchat(folder, fake_upstream_server, WEBCHAT_MODEL_TITLES="false") as server:
        server.create_user("bob", PASSWORD)
        yield server


def _create_link(page, audience: str) -> str:
    """Make a link in the open share panel; its whole address, as the panel shows it."""
    links = page.locator("#share-panel .share-link")
    before = links.count()
    page.check(f"#share-panel input[name=audience][value={audience}]")
    page.click("#share-panel button.button-primary")
    expect(links).to_have_count(before + 1)
    # For a moment htmx's settling gives the links that were there their old classes.
    new = page.locator("#share-panel .share-link.is-new")
    expect(new).to_have_count(1)
    link = new.locator("input.share-link-url").input_value()
    assert SHARE_LINK.match(link)
    return link


def _expect_shared_page(page, text: str) -> None:
    expect(page.locator("h1.chat-title")).to_have_text("Tell me a secret")
    expect(page.locator(".shared-by")).to_contain_text("Shared by alice on")
    expect(page.locator(".bubble-user")).to_have_text(text)
    expect(page.locator(".bubble-assistant")).to_contain_text("Ahoy")
    assert page.locator("#composer-text, #sidebar, .message-tools").count() == 0


@pytest.mark.parametrize("viewport", SCREENS.values(), ids=SCREENS.keys())
def test_a_conversation_is_shared_opened_and_revoked(
    browser, server, fake_upstream_server, viewport
):
    fake_upstream_server.reset(reply="Ahoy, matey.")
    with signed_in_page(browser, server, viewport=viewport) as page:
        page.fill("#composer-text", "Tell me a secret")
        page.press("#composer-text", "Enter")
        page.wait_for_url("**/c/*/")
        chat_url = page.url
        expect(page.locator("article.message-assistant[data-status=complete]")).to_be_visible()

        page.click(".chat-share-link")
        expect(page.locator("#share-panel[open]")).to_be_visible()
        assert page.url == chat_url
        public_link = _create_link(page, "anyone")
        signed_in_link = _create_link(page, "signed_in")

        # Copied whole to the clipboard, from the panel htmx brought in.
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        copy = page.locator("#share-panel .share-link.is-new button[data-copy-link]")
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == signed_in_link

        # A message sent after sharing is not shared.
        page.fill("#composer-text", "Not for the link")
        page.press("#composer-text", "Enter")
        expect(page.locator("article.message-assistant[data-status=complete]")).to_have_count(2)

        page.goto(signed_in_link)
        _expect_shared_page(page, "Tell me a secret")
        expect(page.locator("body")).not_to_contain_text("Not for the link")

        with signed_in_page(browser, server, "bob", viewport=viewport) as bob:
            bob.goto(signed_in_link)
            _expect_shared_page(bob, "Tell me a secret")

            visitor = browser.new_context(viewport=viewport)
            anonymous = visitor.new_page()
            anonymous.goto(public_link)
            _expect_shared_page(anonymous, "Tell me a secret")
            anonymous.goto(signed_in_link)
            expect(anonymous.locator("#id_username")).to_be_visible()
            assert "/accounts/login/?next=/s/" in anonymous.url
            visitor.close()

            # The owner revokes the link for those signed in, from the chat's panel.
            page.goto(chat_url)
            page.click(".chat-share-link")
            row = page.locator(f"#share-panel .share-link:has(input[value='{signed_in_link}'])")
            row.locator("button", has_text="Revoke").click()
            expect(page.locator("#share-panel")).to_contain_text("Link revoked")
            expect(page.locator("#share-panel .share-link")).to_have_count(1)

            assert bob.goto(signed_in_link).status == 404
            assert bob.goto(public_link).status == 200
