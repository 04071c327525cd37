"""End-to-end: a message's images in the viewer, and editing a message down to its images
(some removed, one added)."""

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests import image_files
from tests.browser_fixtures import CHROMIUM, DESKTOP, PHONE, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

SENT_THUMBNAILS = "article.message-user .message-image img"
ALL_LOADED = """(selector) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0);
}"""
PICTURES = [("first.png", (120, 80)), ("second.png", (80, 120)), ("third.png", (100, 100))]


def _send_pictures(page, text: str) -> None:
    files = [
        {"name": name, "mimeType": "image/png", "buffer": image_files.png(size)}
        for name, size in PICTURES
    ]
    page.set_input_files("#composer-images", files)
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.wait_for_function(ALL_LOADED, arg=SENT_THUMBNAILS)
    page.wait_for_selector("article.message-assistant[data-status=complete]")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_viewer_shows_a_messages_images_in_turn_and_gives_the_focus_back(
    browser, webchat_server, fake_upstream_server, viewport
):
    fake_upstream_server.reset(reply="Three pictures.")
    with signed_in_page(browser, webchat_server, viewport=viewport) as page:
        _send_pictures(page, "Look at these")
        viewer = page.locator("#image-viewer")
        caption = viewer.locator("figcaption")
        second = page.locator("article.message-user a.message-image").nth(1)
        # Without JavaScript, a link to the image.
        assert re.fullmatch(r"/attachments/\d+/", second.get_attribute("href"))

        second.click()
        expect(viewer).to_be_visible()
        expect(caption).to_have_text("second.png · 2 / 3")
        page.wait_for_function("() => document.querySelector('#image-viewer img').naturalWidth > 0")
        assert viewer.locator("img").evaluate("image => image.naturalWidth") == 80

        page.keyboard.press("ArrowRight")
        expect(caption).to_have_text("third.png · 3 / 3")
        expect(viewer.get_by_role("button", name="Next image")).to_be_disabled()
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        expect(caption).to_have_text("first.png · 1 / 3")
        viewer.get_by_role("button", name="Next image").click()
        expect(caption).to_have_text("second.png · 2 / 3")

        page.keyboard.press("Escape")
        expect(viewer).to_be_hidden()
        expect(second).to_be_focused()
        # Escape closed the viewer and stopped nothing else.
        expect(page.locator("article.message-assistant")).to_have_attribute(
            "data-status", "complete"
        )

        page.locator("article.message-user a.message-image").first.click()
        expect(caption).to_have_text("first.png · 1 / 3")
        viewer.get_by_role("button", name="Close").click()
        expect(viewer).to_be_hidden()
        expect(page.locator("article.message-user a.message-image").first).to_be_focused()


def test_a_swipe_moves_between_the_images(browser, webchat_server, fake_upstream_server):
    fake_upstream_server.reset(reply="Three pictures.")
    with signed_in_page(
        browser, webchat_server, viewport=PHONE, has_touch=True, is_mobile=True
    ) as page:
        _send_pictures(page, "Swipe through these")
        page.locator("article.message-user a.message-image").first.tap()
        caption = page.locator("#image-viewer figcaption")
        expect(caption).to_have_text("first.png · 1 / 3")
        swipe = """([from, to]) => {
            const dialog = document.getElementById("image-viewer");
            const at = (type, x) => dialog.dispatchEvent(new PointerEvent(type, {
                bubbles: true, pointerType: "touch", clientX: x, clientY: 400, isPrimary: true,
            }));
            at("pointerdown", from);
            at("pointerup", to);
        }"""
        page.evaluate(swipe, [300, 100])
        expect(caption).to_have_text("second.png · 2 / 3")
        page.evaluate(swipe, [100, 300])
        expect(caption).to_have_text("first.png · 1 / 3")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_message_edited_down_to_its_images_is_sent_with_the_images_kept(
    browser, webchat_server, fake_upstream_server, viewport
):
    fake_upstream_server.reset(reply="Three pictures.")
    with signed_in_page(browser, webchat_server, viewport=viewport) as page:
        _send_pictures(page, "Which is largest?")
        fake_upstream_server.reset(reply="Two pictures.")

        page.locator("article.message-user").get_by_role("link", name="Edit").click()
        editor = page.locator("article.message-user.is-editing")
        expect(editor.locator(".edit-image")).to_have_count(3)
        page.wait_for_function(ALL_LOADED, arg="article.is-editing .edit-image img")
        editor.locator(".edit-image[title='second.png'] label").click()
        expect(editor.locator(".edit-image:visible")).to_have_count(2)
        added = {"name": "fourth.png", "mimeType": "image/png", "buffer": image_files.png()}
        editor.locator("input[type=file]").set_input_files([added])
        expect(editor.locator("[data-new-images] img[alt='fourth.png']")).to_be_visible()
        textarea = editor.locator("textarea")
        textarea.fill("")
        assert not textarea.evaluate("box => box.required")
        textarea.press("Enter")

        page.wait_for_selector(
            "article.message-assistant[data-status=complete] >> text=Two pictures"
        )
        question = page.locator("article.message-user")
        expect(question.locator(".versions-position")).to_have_text("2 / 2")
        expect(question.locator(".bubble-user")).to_have_count(0)
        expect(question.locator(".message-image img")).to_have_count(3)
        alts = question.locator(".message-image img").evaluate_all(
            "images => images.map((image) => image.alt)"
        )
        assert alts == ["first.png", "third.png", "fourth.png"]
        parts = fake_upstream_server.requests[-1].body["messages"][-1]["content"]
        assert [part["type"] for part in parts] == ["image_url"] * 3


def test_an_edit_with_neither_text_nor_images_is_refused_in_the_form(
    browser, webchat_server, fake_upstream_server
):
    fake_upstream_server.reset(reply="Three pictures.")
    with signed_in_page(browser, webchat_server, viewport=DESKTOP) as page:
        _send_pictures(page, "Keep these")
        requests = len(fake_upstream_server.requests)
        page.locator("article.message-user").get_by_role("link", name="Edit").click()
        editor = page.locator("article.message-user.is-editing")
        for name, _size in PICTURES:
            editor.locator(f".edit-image[title='{name}'] label").click()
        textarea = editor.locator("textarea")
        textarea.fill("")
        expect(textarea).to_have_attribute("required", "")
        # The browser asks for text; past that check, the server refuses with a reason.
        editor.evaluate("article => article.querySelector('form').noValidate = true")
        editor.get_by_role("button", name="Send").click()
        expect(editor.locator(".error-text")).to_contain_text("A message needs text or an image")
        expect(page.locator("article.message-user.is-editing")).to_be_visible()
        assert len(fake_upstream_server.requests) == requests
