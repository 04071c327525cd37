"""End-to-end: a user rates a reply down with a note, on a wide screen and a phone, and
another tab of the conversation shows it; the admin, in the dark theme chosen with its own
switch, finds it in the usage report and on the conversation's page."""

import shutil

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import CHROMIUM, PASSWORD, SCREENS, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"


@pytest.fixture
def boss(webchat_server) -> str:
    webchat_server.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model;"
        "get_user_model().objects.filter(username='boss').exists() or "
        f"get_user_model().objects.create_superuser('boss', password={PASSWORD!r})",
    )
    return "boss"


@pytest.mark.parametrize("screen", SCREENS)
def test_a_thumb_down_with_a_note_reaches_the_admins_report(
    browser, webchat_server, fake_upstream_server, boss, screen
):
    fake_upstream_server.reset(reply="Paris is the capital of **Italy**.")
    viewport = SCREENS[screen]
    with signed_in_page(browser, webchat_server, viewport=viewport) as page:
        page.fill("#composer-text", f"What is the capital of France? ({screen})")
        page.press("#composer-text", "Enter")
        page.wait_for_url("**/c/*/")
        reply = page.locator("article.message-assistant[data-status=complete]")
        expect(reply).to_have_count(1)
        conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
        down = reply.locator(".feedback button[value=down]")
        up = reply.locator(".feedback button[value=up]")
        expect(down).to_be_visible()
        expect(down).to_have_attribute("aria-pressed", "false")

        other_tab = page.context.new_page()
        other_tab.goto(page.url)
        other_down = other_tab.locator("article.message-assistant .feedback button[value=down]")
        expect(other_down).to_have_attribute("aria-pressed", "false")

        down.click()
        expect(down).to_have_attribute("aria-pressed", "true")
        expect(other_down).to_have_attribute("aria-pressed", "true")  # told by its socket
        expect(other_tab.locator(".feedback-note")).not_to_have_attribute("open", "")
        expect(up).to_have_attribute("aria-pressed", "false")
        note = reply.locator(".feedback textarea[name=note]")
        expect(note).to_be_visible()  # a thumb down asks what was wrong
        box = note.bounding_box()
        assert box is not None
        assert 0 <= box["x"] <= box["x"] + box["width"] <= viewport["width"]

        note.fill("x" * 1001)
        reply.get_by_role("button", name="Save note").click()
        expect(reply.locator(".feedback-error")).to_have_text(
            "A note may have at most 1000 characters; this one has 1001."
        )
        reply.locator(".feedback textarea[name=note]").fill("It said Italy, not France.")
        reply.get_by_role("button", name="Save note").click()
        expect(reply.locator(".feedback-note summary")).to_have_text("Edit your note")
        expect(reply.locator(".feedback-error")).to_have_count(0)

        page.reload()
        expect(reply.locator(".feedback button[value=down]")).to_have_attribute(
            "aria-pressed", "true"
        )

    with signed_in_page(browser, webchat_server, boss, viewport=viewport) as admin:
        admin.goto(f"{webchat_server.url}/admin/conversations/conversation/usage/")
        expect(admin.locator("#site-name")).to_have_text("Webchat administration")
        light = admin.evaluate(BACKGROUND)
        # The system's theme (light here), then light, then dark: the chat's own cookie.
        for theme in ("light", "dark"):
            admin.locator("#user-tools .theme-toggle").click()
            expect(admin.locator("html")).to_have_attribute("data-theme", theme)
        assert admin.evaluate(BACKGROUND) != light
        table = admin.locator("table.feedback-table")
        row = table.locator("tbody tr", has_text="fake-model")
        expect(row).to_have_count(1)
        cells = row.locator("td")
        expect(cells.nth(4)).to_have_text("0")  # thumbs up
        assert int(cells.nth(5).inner_text()) >= 1  # thumbs down: this test's, and the other's
        expect(cells.nth(6)).to_have_text("0 %")

        admin.goto(f"{webchat_server.url}/admin/conversations/conversation/?feedback=down")
        admin.locator(f'#result_list a[href*="/conversation/{conversation_id}/change/"]').click()
        expect(admin.locator(".review-feedback")).to_contain_text("rated this reply down")
        expect(admin.locator(".review-feedback-note")).to_have_text("It said Italy, not France.")
        expect(admin.locator("html")).to_have_attribute("data-theme", "dark")
