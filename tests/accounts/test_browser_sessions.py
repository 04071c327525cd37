"""End-to-end: a page whose session ended (signed out in another tab, the password changed)
says so instead of staying open or reconnecting; reloading it leads to the sign-in page or,
in the browser that changed the password, back to the conversation."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, PASSWORD, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

# Counts the page's socket openings; a reload starts the count again.
COUNT_SOCKET_OPENINGS = (
    "window.socketOpenings = 0;"
    "document.addEventListener('htmx:wsOpen', () => { window.socketOpenings += 1; });"
)


def _on_sign_in_page(url: str) -> bool:
    return "/accounts/login/" in url


def _start_conversation(page) -> str:
    page.fill("#composer-text", "Hello")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=20_000)
    return page.url


def _open_conversation(page, url: str) -> None:
    page.context.add_init_script(COUNT_SOCKET_OPENINGS)
    page.goto(url)
    page.wait_for_function("() => window.socketOpenings === 1")
    assert page.locator("#session-ended").is_hidden()


def _session_ended(page) -> None:
    """The page says its session ended; its link reloads it."""
    page.locator("#session-ended").wait_for()
    page.click("#session-ended a")


def test_signing_out_in_one_tab_ends_the_other_tabs_socket(
    browser, webchat_server, fake_upstream_server
):
    fake_upstream_server.reset(reply="Hello.")
    with signed_in_page(browser, webchat_server) as chat:
        conversation = _start_conversation(chat)
        _open_conversation(chat, conversation)

        other_tab = chat.context.new_page()
        other_tab.goto(f"{webchat_server.url}/")
        other_tab.click("#account-menu summary")
        other_tab.click("text=Sign out")
        other_tab.wait_for_url(_on_sign_in_page)

        _session_ended(chat)
        chat.wait_for_url(_on_sign_in_page)
        assert chat.url.endswith(f"?next={conversation.removeprefix(webchat_server.url)}")


def test_a_password_change_ends_every_socket_and_keeps_its_browser_signed_in(
    browser, webchat_server, fake_upstream_server
):
    webchat_server.create_user("carol", PASSWORD)
    fake_upstream_server.reset(reply="Hello.")
    with (
        signed_in_page(browser, webchat_server, username="carol") as chat,
        signed_in_page(browser, webchat_server, username="carol") as elsewhere,
    ):
        conversation = _start_conversation(chat)
        _open_conversation(chat, conversation)
        _open_conversation(elsewhere, conversation)

        settings_tab = chat.context.new_page()
        settings_tab.goto(f"{webchat_server.url}/accounts/password/")
        settings_tab.fill("#id_old_password", PASSWORD)
        settings_tab.fill("#id_new_password1", "a brand new passphrase")
        settings_tab.fill("#id_new_password2", "a brand new passphrase")
        settings_tab.click("button[type=submit]")
        settings_tab.wait_for_url("**/accounts/password/done/")

        _session_ended(elsewhere)
        elsewhere.wait_for_url(_on_sign_in_page)
        _session_ended(chat)
        chat.wait_for_url(conversation)
        chat.wait_for_function("() => window.socketOpenings === 1")
        assert chat.locator("article.message-assistant").count() == 1
        assert chat.locator("#session-ended").is_hidden()
