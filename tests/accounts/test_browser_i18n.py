"""End-to-end: a browser set to Korean gets Korean, also from the page's scripts, until the
user picks English with the switch in the sidebar."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def korean_page(browser, webchat_server):
    with signed_in_page(browser, webchat_server, locale="ko-KR") as page:
        yield page


def test_a_korean_browser_gets_korean_buttons_and_announcements_until_english_is_chosen(
    korean_page, fake_upstream_server
):
    page = korean_page
    fake_upstream_server.reset(reply="안녕하세요!")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    assert page.get_attribute("html", "lang") == "ko"
    assert page.get_attribute("#composer-text", "placeholder") == "Webchat에 메시지 보내기…"

    page.fill("#composer-text", "인사해 줘")
    page.press("#composer-text", "Enter")
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=20_000)
    copy = page.locator("article.message-assistant .copy-message")
    assert copy.inner_text() == "복사"
    assert copy.get_attribute("aria-label") == "메시지 복사"
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == "안녕하세요!"
    assert copy.inner_text() == "복사됨"
    page.wait_for_function(
        "() => document.getElementById('announcer').textContent === '클립보드에 복사했습니다.'"
    )

    page.click("#language-en")
    page.wait_for_selector("html[lang=en]")
    assert page.get_attribute("#composer-text", "placeholder") == "Message Webchat…"
    assert page.locator("article.message-assistant .copy-message").inner_text() == "Copy"
    assert page.get_attribute("#language-en", "aria-pressed") == "true"
