"""End-to-end: an admin makes an invitation and copies its whole link from the list."""

import re
import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, PASSWORD, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

INVITATION_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/accounts/invitation/[\w-]+/$")
NO_CLIPBOARD = "Object.defineProperty(navigator, 'clipboard', { value: undefined });"
SELECTED_TEXT = "(field) => field.value.slice(field.selectionStart, field.selectionEnd)"


@pytest.fixture
def admin_page(browser, webchat_server):
    webchat_server.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model;"
        "get_user_model().objects.filter(username='boss').exists() or "
        f"get_user_model().objects.create_superuser('boss', password={PASSWORD!r})",
    )
    with signed_in_page(browser, webchat_server, "boss") as page:
        yield page


def _new_invitation(page, server) -> None:
    page.goto(f"{server.url}/admin/accounts/invitation/add/")
    page.select_option("#id_group", label="Member")
    page.click("input[name=_save]")
    page.wait_for_url(f"{server.url}/admin/accounts/invitation/")


def test_the_copy_button_puts_the_whole_invitation_link_on_the_clipboard(
    admin_page, webchat_server
):
    admin_page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _new_invitation(admin_page, webchat_server)

    link = admin_page.locator("input.invitation-link").first.input_value()
    assert INVITATION_LINK.match(link)
    admin_page.locator("button[data-copy-link]").first.click()

    admin_page.wait_for_selector("button[data-copy-link]:has-text('Copied')")
    assert admin_page.evaluate("navigator.clipboard.readText()") == link


def test_without_the_clipboard_api_the_button_selects_the_link_to_copy_by_hand(
    admin_page, webchat_server
):
    admin_page.context.add_init_script(NO_CLIPBOARD)
    _new_invitation(admin_page, webchat_server)

    admin_page.locator("button[data-copy-link]").first.click()

    admin_page.wait_for_selector("button[data-copy-link]:has-text('Ctrl+C')")
    field = admin_page.locator("input.invitation-link").first
    selected = field.evaluate(SELECTED_TEXT)
    assert selected == field.input_value()
    assert INVITATION_LINK.match(selected)
