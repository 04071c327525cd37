"""End-to-end: the sidebar's search as one types, its menus, live titles, and the phone layout."""

import shutil

import httpx
import pytest

from tests.browser_fixtures import CHROMIUM, PHONE, SCREENS, running_webchat, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def webchat_server(tmp_path_factory, fake_upstream_server):
    """A live server that asks the model for titles (the shared one does not)."""
    with running_webchat(
        tmp_path_factory.mktemp("live-sidebar"), fake_upstream_server, WEBCHAT_MODEL_TITLES="true"
    ) as server:
        yield server


def _start_conversation(page, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=20_000)


def test_a_new_conversation_gets_the_models_title_live(page, fake_upstream_server):
    # The reply (and so the title) comes once the new page listens.
    fake_upstream_server.reset(
        reply="Here is a plan.", completion="Busan Weekend Plan", first_token_delay=0.5
    )

    _start_conversation(page, "Plan a weekend in Busan for me")

    page.wait_for_selector("#chat-title >> text=Busan Weekend Plan")
    page.wait_for_selector(".conversation-link.current >> text=Busan Weekend Plan")


def test_search_shows_results_as_one_types_and_gives_the_list_back(page, fake_upstream_server):
    fake_upstream_server.reset(reply="The ferry leaves at nine.", completion="Ferry times")
    _start_conversation(page, "When does the ferry to Jeju leave?")

    page.click("#sidebar-search-input")
    page.keyboard.type("jej")
    result = page.locator("#search-results .search-result")
    result.wait_for()
    assert result.locator("mark").first.inner_text() == "Jeju"
    assert page.locator("#conversation-list").is_hidden()
    assert "1 conversation found" in page.locator("#search-status").inner_text()

    page.fill("#sidebar-search-input", "")
    page.locator("#conversation-list").wait_for(state="visible")
    assert page.locator("#search-results .search-result").count() == 0


def test_a_conversation_is_renamed_and_deleted_from_its_menu_by_keyboard(
    page, fake_upstream_server
):
    fake_upstream_server.reset(reply="Sure.", completion="Packing list", first_token_delay=0.5)
    _start_conversation(page, "What should I pack?")
    page.wait_for_selector("#chat-title >> text=Packing list")
    menu = page.locator(".conversation-item:has(.current) .conversation-menu")

    menu.locator("summary").focus()
    page.keyboard.press("Enter")
    assert menu.evaluate("details => details.open")
    menu.get_by_text("Rename…").focus()
    page.keyboard.press("Enter")
    field = menu.get_by_label("New title")
    field.wait_for()
    page.wait_for_function(
        "() => document.activeElement.name === 'title'"
    )  # autofocus, once swapped
    field.fill("Trip packing")
    page.keyboard.press("Enter")
    page.wait_for_selector(".conversation-link.current >> text=Trip packing")
    page.wait_for_selector("#chat-title >> text=Trip packing")

    menu = page.locator(".conversation-item:has(.current) .conversation-menu")
    menu.locator("summary").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    assert not menu.evaluate("details => details.open")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")
    menu.get_by_text("Delete…").click()
    delete = menu.get_by_role("button", name="Delete", exact=True)
    delete.wait_for()
    delete.click()
    page.wait_for_url(lambda url: "/c/" not in url)
    assert page.locator("text=Trip packing").count() == 0


def _asked_through_the_api(server, key: str, text: str) -> None:
    response = httpx.post(
        f"{server.url}/api/v1/chat/completions",
        json={"model": "fake-model", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200


def test_an_api_conversation_comes_into_the_open_sidebar_unless_they_are_hidden(
    page, webchat_server, fake_upstream_server
):
    key = webchat_server.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "from api.models import ApiKey\n"
        "owner = get_user_model().objects.get(username='alice')\n"
        "print(ApiKey.issue(owner=owner, name='Nightly script')[1])\n",
    ).splitlines()[-1]
    fake_upstream_server.reset(reply="Noted.", completion="Browser chat")
    _start_conversation(page, "A chat in the browser")  # its page listens for the sidebar
    today = page.locator("#conversation-list [data-group=today] > ol > li")

    _asked_through_the_api(webchat_server, key, "The nightly report")
    page.wait_for_selector(
        "#conversation-list [data-group=today] > ol > li:first-child[data-source=api] .badge-api"
    )

    page.reload()
    page.get_by_role("button", name="Hide API conversations").click()
    page.get_by_role("button", name="Show API conversations").wait_for()
    assert page.locator("#conversation-list li[data-source=api]").count() == 0
    browser_chat = today.first.get_attribute("id")
    _asked_through_the_api(webchat_server, key, "Another nightly report")
    # A message in the browser afterwards: once its reply shows complete, the API's frame,
    # sent before it on the same socket, has been handled too.
    page.fill("#composer-text", "And one more thing")
    page.press("#composer-text", "Enter")
    page.wait_for_selector("article.message-assistant[data-status=complete] >> nth=1")
    assert today.first.get_attribute("id") == browser_chat
    assert page.locator("#conversation-list li[data-source=api]").count() == 0


def test_on_a_phone_the_sidebar_folds_behind_a_menu_button(page):
    page.set_viewport_size(PHONE)
    toggle = page.locator("#sidebar-toggle")
    panel = page.locator("#sidebar-panel")
    assert toggle.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert panel.is_hidden()
    assert page.locator("#composer-text").is_visible()

    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    assert panel.is_visible()
    assert page.evaluate("document.activeElement.id") == "sidebar-search-input"

    page.keyboard.press("Escape")
    assert panel.is_hidden()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.id") == "sidebar-toggle"


def test_on_a_wide_screen_there_is_no_menu_button(page):
    assert page.locator("#sidebar-toggle").is_hidden()
    assert page.locator("#sidebar-panel").is_visible()
    assert page.locator("#sidebar-search-input").is_visible()


# Fourteen hours ahead of the server's UTC: at half past midnight there it is still the day
# before in UTC, so only the reader's days put these in their sections.
READER_ZONE = "Pacific/Kiritimati"
# Each conversation's last activity, in the reader's days ago (at 00:30 there), and the
# section it belongs in.
PAST_ACTIVITY = {
    "Pinned long ago": (40, "pinned"),
    "Early today": (0, "today"),
    "Early yesterday": (1, "yesterday"),
    "Four days back": (4, "week"),
    "Forty days back": (40, "older"),
}


def _conversations_of_past_days(server) -> None:
    server.manage(
        "shell",
        "-c",
        "from datetime import datetime, time, timedelta\n"
        "from zoneinfo import ZoneInfo\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.utils import timezone\n"
        "from conversations.models import Conversation\n"
        f"zone = ZoneInfo({READER_ZONE!r})\n"
        "owner = get_user_model().objects.get(username='alice')\n"
        "today = timezone.now().astimezone(zone).date()\n"
        f"for title, (days, _) in {PAST_ACTIVITY!r}.items():\n"
        "    c = Conversation.objects.create(owner=owner, title=title, model='fake-model',"
        " pinned=title.startswith('Pinned'))\n"
        "    when = datetime.combine(today - timedelta(days=days), time(0, 30), zone)\n"
        "    Conversation.objects.filter(pk=c.pk).update("
        "updated_at=min(when, timezone.now()))\n",
    )


@pytest.mark.parametrize("screen", SCREENS)
def test_conversations_are_grouped_by_the_readers_own_days(browser, webchat_server, screen):
    from playwright.sync_api import expect

    _conversations_of_past_days(webchat_server)
    with signed_in_page(
        browser, webchat_server, viewport=SCREENS[screen], timezone_id=READER_ZONE
    ) as page:
        page.reload()  # the first page told the server the browser's time zone
        if screen == "phone":
            page.click("#sidebar-toggle")
        groups = page.locator("#sidebar-panel section.conversation-group")
        expect(groups.locator("h2").first).to_be_visible()
        headings = groups.locator("h2").all_inner_texts()
        assert headings == ["Pinned", "Today", "Yesterday", "Previous 7 days", "Older"]
        for title, (_, key) in PAST_ACTIVITY.items():
            expect(page.locator(f"section[data-group={key}]")).to_contain_text(title)
