"""End-to-end: the sidebar's privacy notice and footer, the phone sidebar, and the chat page
compacted for a phone (390 by 844) with the demo model's notice."""

import shutil

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import (
    CHROMIUM,
    DESKTOP,
    PASSWORD,
    PHONE,
    running_webchat,
    signed_in_page,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

USERNAME = "alexandra_montgomery"  # 20 characters
IDENTIFIER = "conversation_settings_preset_identifier"
# A finished conversation whose reply has a table, made without a model.
SEED = f"""
from django.contrib.auth import get_user_model
from conversations import services
from conversations.models import Message
owner = get_user_model().objects.get(username={USERNAME!r})
conversation, reply = services.conversation_start(
    owner=owner, text="Which settings are there, and what are they for, in a table?"
)
Message.objects.filter(pk=reply.pk).update(
    status="complete",
    content="| name | meaning |\\n| --- | --- |\\n| `{IDENTIFIER}` | the preset it uses |",
)
print(conversation.pk)
"""


@pytest.fixture(scope="module")
def webchat_server(tmp_path_factory, fake_upstream_server):
    """A live server on the built-in demo model (no API key), so its notice shows."""
    with running_webchat(
        tmp_path_factory.mktemp("live-mobile"), fake_upstream_server, WEBCHAT_API_KEY=""
    ) as server:
        server.create_user(USERNAME, PASSWORD)
        conversation_id = server.manage("shell", "-v", "0", "-c", SEED).split()[-1]
        server.conversation_url = f"{server.url}/c/{conversation_id}/"
        yield server


@pytest.fixture
def desktop(browser, webchat_server):
    with signed_in_page(browser, webchat_server, USERNAME, viewport=DESKTOP) as page:
        page.goto(webchat_server.conversation_url)
        yield page


@pytest.fixture
def phone(browser, webchat_server):
    with signed_in_page(
        browser, webchat_server, USERNAME, viewport=PHONE, has_touch=True, is_mobile=True
    ) as page:
        page.goto(webchat_server.conversation_url)
        yield page


def test_the_privacy_notice_is_stated_until_dismissed_then_opens_from_its_button(desktop):
    page = desktop
    note = page.locator("#privacy-note")
    popover = page.locator("#privacy-popover")
    expect(note).to_contain_text("each reading is recorded")
    expect(popover).to_be_hidden()

    note.get_by_role("button", name="Got it").click()
    expect(note).to_have_count(0)
    expect(page.locator("#privacy-button")).to_be_focused()
    page.reload()
    expect(page.locator("#privacy-note")).to_have_count(0)

    button = page.get_by_role("button", name="Who may read your conversations")
    button.click()
    expect(popover).to_be_visible()
    expect(popover).to_contain_text("each reading is recorded")
    page.keyboard.press("Escape")
    expect(popover).to_be_hidden()
    button.click()
    expect(popover).to_be_visible()
    button.click()
    expect(popover).to_be_hidden()


def test_a_twenty_character_username_shows_in_full_in_the_sidebar(desktop):
    whoami = desktop.locator("#whoami")
    expect(whoami).to_have_text(USERNAME)
    assert whoami.evaluate("link => link.scrollWidth <= link.clientWidth")
    assert USERNAME in whoami.get_attribute("title")

    menu = desktop.locator("#account-menu")
    menu.locator("summary").click()
    expect(menu.get_by_role("button", name="Sign out")).to_be_visible()
    desktop.keyboard.press("Escape")
    expect(menu.get_by_role("button", name="Sign out")).to_be_hidden()


def test_on_a_phone_the_sidebar_closes_from_its_backdrop_and_with_escape(phone):
    page = phone
    toggle = page.locator("#sidebar-toggle")
    panel = page.locator("#sidebar-panel")
    backdrop = page.locator("#sidebar-backdrop")

    toggle.click()
    expect(panel).to_be_visible()
    expect(backdrop).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    assert page.locator("#scroller").evaluate("el => getComputedStyle(el).overflowY") == "hidden"
    # The keyboard stays in the panel: the chat behind it takes no focus.
    page.locator("#composer-text").evaluate("el => el.focus()")
    expect(page.locator("#composer-text")).not_to_be_focused()

    # A tap on the chat's part of the screen, below the open panel.
    page.mouse.click(PHONE["width"] / 2, PHONE["height"] - 20)
    expect(panel).to_be_hidden()
    expect(backdrop).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()
    assert page.locator("#scroller").evaluate("el => getComputedStyle(el).overflowY") == "auto"
    page.locator("#composer-text").focus()
    expect(page.locator("#composer-text")).to_be_focused()

    toggle.click()
    expect(panel).to_be_visible()
    page.locator("#sidebar-search-input").blur()  # Escape from the page, not the panel
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()


def test_on_a_phone_the_demo_notice_and_the_header_take_a_line_each(phone):
    page = phone
    banner = page.locator("#demo-banner")
    header = page.locator(".chat-header")
    expect(banner).to_be_visible()
    expect(header.locator("#chat-title")).to_be_visible()
    height = banner.bounding_box()["height"] + header.bounding_box()["height"]
    assert height <= 0.12 * PHONE["height"]
    title = header.locator("#chat-title")
    assert title.evaluate("h1 => h1.scrollWidth > h1.clientWidth")  # cut short, on one line

    header.locator("#chat-menu summary").click()
    expect(page.get_by_role("link", name="Export as Markdown")).to_be_visible()

    page.locator("#demo-banner-hide").click()
    expect(banner).to_be_hidden()
    page.reload()
    expect(page.locator("#chat-title")).to_be_visible()
    expect(page.locator("#demo-banner")).to_be_hidden()  # for the rest of the session


def test_on_a_phone_a_table_scrolls_instead_of_breaking_identifiers(phone):
    cell = phone.locator(".markdown td", has_text=IDENTIFIER)
    expect(cell).to_be_visible()
    # An inline element broken across lines has a box on each: one box is one line. Read
    # in one go: the socket's stored state may replace the reply meanwhile.
    phone.wait_for_function(
        """() => {
            const wrapper = document.querySelector('.markdown .table-scroll');
            const code = wrapper?.querySelector('td code');
            return code?.getClientRects().length === 1 && wrapper.scrollWidth > wrapper.clientWidth;
        }"""
    )
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
