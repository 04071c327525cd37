"""End-to-end: the settings drawer opened from the chat header, used with the keyboard."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]


def test_the_panel_opens_in_place_saves_and_keeps_a_preset(page, fake_upstream_server):
    fake_upstream_server.reset(reply="Ahoy.")
    page.fill("#composer-text", "First")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    chat_url = page.url
    page.wait_for_selector("article.message-assistant[data-status=complete]")

    # Opened with the keyboard, the drawer appears beside the chat and takes the focus.
    page.focus(".chat-settings-link")
    page.keyboard.press("Enter")
    page.wait_for_selector("#settings-panel .settings-drawer #settings-model:focus")
    assert page.url == chat_url

    page.fill("#settings-system_prompt", "Talk like a pirate.")
    page.fill("#settings-temperature", "0.3")
    page.select_option("#settings-reasoning_effort", "low")
    page.click("#settings-panel button.button-primary")
    page.wait_for_selector("#settings-panel >> text=Settings saved.")

    # "Save as preset" sends what is in the panel's system prompt box.
    page.fill("#settings-preset-name", "Pirate")
    page.click("#settings-panel >> text=Save as preset")
    page.wait_for_selector("#settings-panel >> text=the preset “Pirate”")

    page.fill("#composer-text", "Second")
    page.press("#composer-text", "Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('article.message-assistant[data-status=complete]')"
        ".length === 2"
    )
    body = fake_upstream_server.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert (body["temperature"], body["reasoning_effort"]) == (0.3, "low")
    assert "top_p" not in body

    # The new-chat composer offers the preset.
    page.goto(chat_url.rsplit("/c/", 1)[0] + "/")
    page.click("#preset-menu summary")
    page.wait_for_selector("#preset-menu [data-preset]:has-text('Pirate')")
