"""End-to-end: a page refused a socket because its user has as many open as allowed says so,
instead of silently no longer following replies."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, running_webchat, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def one_socket_server(tmp_path_factory, fake_upstream_server):
    with running_webchat(
        tmp_path_factory.mktemp("live"), fake_upstream_server, WEBCHAT_MAX_SOCKETS_PER_USER="1"
    ) as server:
        yield server


def test_a_page_over_the_limit_of_open_pages_says_so(
    browser, one_socket_server, fake_upstream_server
):
    fake_upstream_server.reset(reply="Hello.")
    with signed_in_page(browser, one_socket_server) as first:
        first.fill("#composer-text", "Hello")
        first.press("#composer-text", "Enter")
        first.wait_for_selector("article.message-assistant[data-status=complete]")
        assert first.locator("#too-many-pages").is_hidden()

        second = first.context.new_page()
        second.goto(first.url)
        second.locator("#too-many-pages").wait_for()
        assert "Close some of them" in second.locator("#too-many-pages").inner_text()
        assert first.locator("#too-many-pages").is_hidden()
