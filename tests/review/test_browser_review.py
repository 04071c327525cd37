"""End-to-end: an admin reviews a user's conversation in the admin and flags a message."""

import shutil

import pytest

from tests import image_files
from tests.browser_fixtures import CHROMIUM, PASSWORD, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

THUMBNAIL_LOADED = """(selector) => {
    const image = document.querySelector(selector);
    return image !== null && image.complete && image.naturalWidth > 0;
}"""


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


def test_an_admin_reads_a_users_conversation_with_its_image_and_flags_a_reply(
    page, admin_page, webchat_server, fake_upstream_server
):
    fake_upstream_server.reset(reply="The picture is **red and blue**.")
    photo = {"name": "holiday.png", "mimeType": "image/png", "buffer": image_files.png()}
    page.set_input_files("#composer-images", [photo])
    page.fill("#composer-text", "What colours are in this picture?")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")
    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]

    admin_page.goto(f"{webchat_server.url}/admin/conversations/conversation/")
    admin_page.click("text=What colours are in this picture?")
    admin_page.wait_for_url(f"**/admin/conversations/conversation/{conversation_id}/change/")
    reply = admin_page.locator("article.review-assistant")
    assert reply.locator(".markdown strong").inner_text() == "red and blue"
    question = admin_page.locator("article.review-user")
    assert question.locator(".review-text").inner_text() == "What colours are in this picture?"
    admin_page.wait_for_function(THUMBNAIL_LOADED, arg="article.review-user .review-images img")
    assert question.locator(".review-images img").get_attribute("alt") == "holiday.png"

    reply.locator("summary", has_text="Flag this message").click()
    reply.locator("textarea[name=note]").fill("Check the colours against the image.")
    reply.locator("button", has_text="Flag").click()
    admin_page.wait_for_selector("text=The message is flagged.")
    flagged = admin_page.locator("article.review-assistant.is-flagged")
    assert "Check the colours against the image." in flagged.locator(".review-flag").inner_text()

    admin_page.goto(f"{webchat_server.url}/admin/review/flag/")
    assert admin_page.locator("#result_list").get_by_text("Check the colours").count() == 1
    admin_page.goto(f"{webchat_server.url}/admin/review/reviewaccess/")
    assert admin_page.locator("#result_list td.field-viewer_username").first.inner_text() == "boss"
