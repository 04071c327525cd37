"""End-to-end: attaching images in a real browser, sending them, and seeing them again."""

import base64
import shutil

import pytest

from tests import image_files
from tests.browser_fixtures import CHROMIUM, running_webchat, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

COMPOSER_THUMBNAILS = "#composer-attachments .composer-attachment"
SENT_THUMBNAILS = "article.message-user .message-image img"
ALL_LOADED = """(selector) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0);
}"""

# Hands files to the page the way a drop or a paste does, with their DataTransfer.
HAND_OVER = """([kind, files]) => {
    const transfer = new DataTransfer();
    for (const file of files) {
        const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
        transfer.items.add(new File([bytes], file.name, { type: file.type }));
    }
    const target = document.getElementById("composer-text");
    const options = { bubbles: true, cancelable: true };
    if (kind === "paste") {
        target.dispatchEvent(new ClipboardEvent("paste", { ...options, clipboardData: transfer }));
    } else {
        target.dispatchEvent(new DragEvent("dragover", { ...options, dataTransfer: transfer }));
        target.dispatchEvent(new DragEvent("drop", { ...options, dataTransfer: transfer }));
    }
}"""


def _file(name: str, data: bytes, mime_type: str = "image/png") -> dict:
    return {"name": name, "mimeType": mime_type, "buffer": data}


def _hand_over(page, kind: str, *files: dict) -> None:
    payload = [
        {"name": f["name"], "type": f["mimeType"], "data": base64.b64encode(f["buffer"]).decode()}
        for f in files
    ]
    page.evaluate(HAND_OVER, [kind, payload])


def _last_user_message_parts(fake_upstream_server) -> list[dict]:
    return fake_upstream_server.requests[-1].body["messages"][-1]["content"]


def test_a_user_attaches_an_image_sends_it_and_sees_its_thumbnail(page, fake_upstream_server):
    fake_upstream_server.reset(reply="A red and blue picture.")
    photo = image_files.phone_photo((1200, 900))
    page.set_input_files("#composer-images", [_file("IMG_0042.jpg", photo, "image/jpeg")])
    page.wait_for_function(ALL_LOADED, arg=f"{COMPOSER_THUMBNAILS} img")
    page.fill("#composer-text", "what is in this picture?")
    page.press("#composer-text", "Enter")

    page.wait_for_url("**/c/*/")
    page.wait_for_function(ALL_LOADED, arg=SENT_THUMBNAILS)
    page.wait_for_selector("article.message-assistant[data-status=complete]")
    text, image = _last_user_message_parts(fake_upstream_server)
    assert text == {"type": "text", "text": "what is in this picture?"}
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert page.locator("article.message-user .bubble-user").inner_text() == (
        "what is in this picture?"
    )

    page.reload()
    page.wait_for_function(ALL_LOADED, arg=SENT_THUMBNAILS)
    thumbnail = page.locator(SENT_THUMBNAILS)
    assert thumbnail.get_attribute("alt") == "IMG_0042.jpg"
    thumbnail.click()  # opens the viewer (test_browser_viewer.py)
    page.wait_for_function(
        "() => document.querySelector('#image-viewer[open] img').naturalWidth > 0"
    )
    size = page.locator("#image-viewer img").evaluate(
        "image => [image.naturalWidth, image.naturalHeight]"
    )
    assert size == [900, 1200]  # Upright: the photo was taken sideways.


def test_dropped_and_pasted_images_are_removable_then_sent_and_cleared(page, fake_upstream_server):
    page.fill("#composer-text", "Start")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")

    _hand_over(page, "drop", _file("dropped.png", image_files.png()))
    _hand_over(page, "paste", _file("image.png", image_files.png((60, 60))))
    _hand_over(page, "drop", _file("unwanted.png", image_files.png((30, 90))))
    assert page.locator(COMPOSER_THUMBNAILS).count() == 3
    assert page.eval_on_selector("#composer-images", "input => input.files.length") == 3
    page.click("button[aria-label='Remove unwanted.png']")
    assert page.locator(COMPOSER_THUMBNAILS).count() == 2

    # Images alone are a message: Enter sends them with no text.
    page.press("#composer-text", "Enter")
    page.wait_for_function(
        "(selector) => document.querySelectorAll(selector).length === 2", arg=SENT_THUMBNAILS
    )
    page.wait_for_function(ALL_LOADED, arg=SENT_THUMBNAILS)
    assert page.locator(COMPOSER_THUMBNAILS).count() == 0
    assert page.eval_on_selector("#composer-images", "input => input.files.length") == 0
    page.wait_for_selector("article.message-assistant[data-status=complete] >> nth=1")
    parts = _last_user_message_parts(fake_upstream_server)
    assert [part["type"] for part in parts] == ["image_url", "image_url"]


def test_a_rejected_file_keeps_the_text_and_the_other_images_in_the_composer(
    page, fake_upstream_server
):
    fake_upstream_server.reset()
    page.set_input_files(
        "#composer-images",
        [_file("cat.png", image_files.png()), _file("notes.png", b"just some notes\n")],
    )
    page.fill("#composer-text", "Two files")
    page.click("button.button-send")
    page.wait_for_selector("#composer-error >> text=“notes.png” is not a PNG, JPEG, WEBP or GIF")
    assert page.input_value("#composer-text") == "Two files"
    assert page.locator(COMPOSER_THUMBNAILS).count() == 2
    assert fake_upstream_server.requests == []

    page.click("button[aria-label='Remove notes.png']")
    page.click("button.button-send")
    page.wait_for_url("**/c/*/")
    page.wait_for_function(ALL_LOADED, arg=SENT_THUMBNAILS)
    assert page.locator(SENT_THUMBNAILS).count() == 1


@pytest.fixture(scope="module")
def small_bodies_server(tmp_path_factory, fake_upstream_server):
    """A server that reads request bodies of at most 1 MB."""
    with running_webchat(
        tmp_path_factory.mktemp("small-bodies"),
        fake_upstream_server,
        WEBCHAT_MAX_BODY_BYTES=str(1024 * 1024),
    ) as server:
        yield server


def test_images_over_the_servers_body_limit_are_refused_with_a_sentence_and_kept(
    browser, small_bodies_server, fake_upstream_server
):
    fake_upstream_server.reset()
    with signed_in_page(browser, small_bodies_server) as page:
        page.set_input_files(
            "#composer-images", [_file("noise.png", image_files.noise_png((720, 720)))]
        )
        page.fill("#composer-text", "What is this?")
        page.click("button.button-send")
        page.wait_for_selector("#composer-error >> text=too large to send")
        assert page.input_value("#composer-text") == "What is this?"
        assert page.locator(COMPOSER_THUMBNAILS).count() == 1
    assert fake_upstream_server.requests == []
