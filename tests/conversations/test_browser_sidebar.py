"""End-to-end: the sidebar's search as one types, its menus, live titles, and the phone layout."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, running_webchat

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

PHONE = {"width": 390, "height": 844}


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
