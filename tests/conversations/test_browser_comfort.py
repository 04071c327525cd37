"""End-to-end: the theme, copy buttons, keyboard shortcuts and announcements of replies."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

LIGHT_BACKGROUND = "rgb(255, 255, 255)"
DARK_BACKGROUND = "rgb(22, 24, 29)"
CODE = 'def greet(name):\n    return f"Hello, {name}!"'
REPLY_WITH_CODE = f"Here you are:\n\n```python\n{CODE}\n```\n\nCall it with a name."


def _background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def _send(page, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")


def _wait_for_complete_reply(page) -> None:
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=20_000)


def test_the_page_follows_the_system_colour_scheme(page):
    page.emulate_media(color_scheme="dark")
    assert _background(page) == DARK_BACKGROUND
    page.emulate_media(color_scheme="light")
    assert _background(page) == LIGHT_BACKGROUND


def test_a_chosen_theme_overrides_the_system_without_a_reload_and_is_remembered(page):
    page.emulate_media(color_scheme="dark")
    page.evaluate("window.notReloaded = true")

    page.click("#theme-light")
    page.wait_for_selector("html[data-theme=light]")
    assert _background(page) == LIGHT_BACKGROUND
    assert page.evaluate("window.notReloaded") is True
    assert page.get_attribute("#theme-light", "aria-pressed") == "true"
    assert page.get_attribute("#theme-system", "aria-pressed") == "false"
    # The clicked button keeps the focus across the swap of the form.
    assert page.evaluate("document.activeElement.id") == "theme-light"

    page.reload()
    assert page.get_attribute("html", "data-theme") == "light"
    assert _background(page) == LIGHT_BACKGROUND

    page.emulate_media(color_scheme="light")
    page.click("#theme-dark")
    page.wait_for_selector("html[data-theme=dark]")
    assert _background(page) == DARK_BACKGROUND
    page.reload()
    assert _background(page) == DARK_BACKGROUND

    page.click("#theme-system")
    page.wait_for_selector("html[data-theme=system]")
    assert _background(page) == LIGHT_BACKGROUND


def test_copying_a_code_block_puts_exactly_the_code_on_the_clipboard(page, fake_upstream_server):
    fake_upstream_server.reset(reply=REPLY_WITH_CODE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _send(page, "Write a greeting function")
    _wait_for_complete_reply(page)

    copy = page.locator("article.message-assistant .codeblock .copy-code")
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == CODE
    assert copy.inner_text() == "Copied"
    page.wait_for_function(
        "() => document.getElementById('announcer').textContent === 'Copied to the clipboard.'"
    )


def test_copying_a_message_copies_the_text_as_shown(page, fake_upstream_server):
    fake_upstream_server.reset(reply=REPLY_WITH_CODE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _send(page, "Write a greeting function")
    _wait_for_complete_reply(page)

    page.click("article.message-assistant .copy-message")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("Here you are:")
    assert CODE in copied
    assert copied.endswith("Call it with a name.")
    # Neither the code block's language label nor its button is part of the text.
    assert "python" not in copied
    assert "Copy" not in copied

    page.click("article.message-user .copy-message")
    assert page.evaluate("navigator.clipboard.readText()") == "Write a greeting function"


def test_keyboard_shortcuts_reach_the_composer_and_the_help(page):
    page.locator("#composer-text").blur()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "composer-text"
    assert page.input_value("#composer-text") == ""

    page.locator("#composer-text").blur()
    page.keyboard.press("Shift+Escape")
    assert page.evaluate("document.activeElement.id") == "composer-text"

    # Typed in the composer, "/" and "?" are text, not shortcuts.
    page.keyboard.type("a/b?")
    assert page.input_value("#composer-text") == "a/b?"
    assert page.get_attribute("#shortcuts", "open") is None

    page.locator("#composer-text").blur()
    page.keyboard.press("?")
    assert page.get_attribute("#shortcuts", "open") == ""
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Escape")
    assert page.get_attribute("#shortcuts", "open") is None


def test_the_new_conversation_shortcut_opens_an_empty_chat(page, webchat_server):
    _send(page, "Hello")
    page.wait_for_url("**/c/*/")
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(f"{webchat_server.url}/")
    assert page.locator("article.message").count() == 0


def test_escape_stops_the_reply_being_written(page, fake_upstream_server):
    fake_upstream_server.reset(token_count=400, token_interval=0.05)
    _send(page, "Tell me a long story")
    page.wait_for_selector("article.message-assistant[data-status=streaming]")
    page.keyboard.press("Escape")
    page.wait_for_selector("article.message-assistant[data-status=stopped]", timeout=10_000)


def test_a_new_chats_reply_that_ends_before_its_page_loads_is_told_too(page, fake_upstream_server):
    # Whether the reply ends before the new chat's page loads or after, it is told once.
    fake_upstream_server.reset(reply="Quick.")
    _send(page, "Hello")
    page.wait_for_url("**/c/*/")
    _wait_for_complete_reply(page)
    page.wait_for_function(
        "() => document.getElementById('announcer').textContent === 'Reply finished. Quick.'"
    )
    # Told once: a page opened later tells nothing.
    assert page.evaluate("sessionStorage.getItem('webchat-reply-asked')") is None


def test_screen_readers_hear_that_a_reply_starts_and_ends_not_every_word(
    page, fake_upstream_server
):
    fake_upstream_server.reset(token_count=20, token_interval=0.02, first_token_delay=2.0)
    announced = (
        "(text) => (document.getElementById('announcer').textContent || '').startsWith(text)"
    )
    _send(page, "Hello")
    page.wait_for_function(announced, arg="Reply started.")
    assert page.get_attribute("#messages", "aria-live") is None
    _wait_for_complete_reply(page)
    page.wait_for_function(announced, arg="Reply finished. word0 word1")
    assert page.text_content("#announcer").strip().endswith("word19")
