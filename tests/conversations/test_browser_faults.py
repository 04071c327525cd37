"""End-to-end faults in a real browser: a dropped socket, a killed server, a failed reply."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, PASSWORD
from tests.live_server import LiveServer
from tests.tcp_proxy import TcpProxy
from tests.upstream_fixtures import TEST_API_KEY

# Counts the socket's openings and messages, so a test can tell that the page reconnected,
# or that the state the socket sends on connect has been applied.
COUNT_SOCKET_OPENINGS = (
    "window.socketOpenings = 0; window.socketMessages = 0;"
    "document.addEventListener('htmx:wsOpen', () => { window.socketOpenings += 1; });"
    "document.addEventListener('htmx:wsAfterMessage', () => { window.socketMessages += 1; });"
)
WORD_COUNT = (
    "(document.querySelector('article.message-assistant:last-child .markdown')?.innerText"
    " || '').split(/\\s+/).filter(Boolean).length"
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]


def _server(workdir, fake_upstream_server) -> LiveServer:
    server = LiveServer(
        workdir,
        env={
            "WEBCHAT_API_BASE": fake_upstream_server.base_url,
            "WEBCHAT_API_KEY": TEST_API_KEY,
            "WEBCHAT_MODELS": "fake-model",
            "WEBCHAT_SAVE_INTERVAL": "0.1",
            "WEBCHAT_RETRY_BASE_DELAY": "0.05",
        },
    )
    server.start()
    server.create_user("alice", PASSWORD)
    return server


@pytest.fixture(scope="module")
def webchat_server(tmp_path_factory, fake_upstream_server):
    server = _server(tmp_path_factory.mktemp("live"), fake_upstream_server)
    yield server
    server.stop()


@pytest.fixture
def open_page(browser):
    """Sign in at a base URL and return the page; no page may raise a script error."""
    contexts, errors = [], []

    def open_page(base_url: str):
        context = browser.new_context()
        context.add_init_script(COUNT_SOCKET_OPENINGS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base_url}/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == []


def _send(page, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")
    page.wait_for_selector("article.message-assistant")


def _reply_words(page) -> list[str]:
    return page.locator("article.message-assistant").last.locator(".markdown").inner_text().split()


def test_a_page_whose_socket_drops_mid_reply_reconnects_and_follows_it_again(
    open_page, webchat_server, fake_upstream_server
):
    expected = [f"word{i}" for i in range(120)]
    fake_upstream_server.reset(token_count=len(expected), token_interval=0.04)
    with TcpProxy(webchat_server.port) as proxy:
        page = open_page(f"http://127.0.0.1:{proxy.port}")
        _send(page, "Tell me something long")
        page.wait_for_function(f"() => {WORD_COUNT} >= 10")
        assert page.evaluate("window.socketOpenings") == 1

        assert proxy.drop() >= 1
        words_at_the_drop = len(_reply_words(page))
        page.wait_for_function("() => window.socketOpenings >= 2", timeout=10_000)
        # Caught up and following live again, while the reply is still being written.
        page.wait_for_function(f"() => {WORD_COUNT} > {words_at_the_drop + 20}")
        assert page.locator("article.message-assistant.is-active").count() == 1

        page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=20_000)
        assert _reply_words(page) == expected
        assert page.locator("article.message-assistant").count() == 1


def test_a_page_recovers_by_itself_when_the_server_is_killed_and_restarted_mid_reply(
    open_page, tmp_path, fake_upstream_server
):
    expected = [f"word{i}" for i in range(400)]
    fake_upstream_server.reset(token_count=len(expected), token_interval=0.02)
    server = _server(tmp_path, fake_upstream_server)
    try:
        page = open_page(server.url)
        _send(page, "Tell me a long story")
        page.wait_for_function(f"() => {WORD_COUNT} >= 20")

        server.process.kill()
        server.process.wait()
        server.start()

        interrupted = page.wait_for_selector(
            "article.message-assistant[data-status=interrupted]", timeout=30_000
        )
        assert "the server stopped while writing it" in interrupted.inner_text()
        # What was stored before the kill; text that was never flushed cannot survive it.
        partial = _reply_words(page)
        assert len(partial) >= 10
        assert partial == expected[: len(partial)]

        fake_upstream_server.reset(reply=" and the end.")
        page.click("article.message-assistant .button-continue")
        page.wait_for_selector("article.message-assistant[data-status=complete]")
        assert _reply_words(page) == [*partial, "and", "the", "end."]
        assert page.locator("article.message-assistant").count() == 1
    finally:
        server.stop()


def test_a_failed_reply_offers_retry_which_answers_in_a_new_version(
    open_page, webchat_server, fake_upstream_server
):
    fake_upstream_server.reset(failure="html_502")
    page = open_page(webchat_server.url)
    _send(page, "Hello?")
    # The page may show the failed reply before its socket sends the same state on connect;
    # a click while that frame replaces the reply would be lost with the replaced button.
    page.wait_for_function(
        "() => window.socketMessages >= 1"
        " && document.querySelector('article.message-assistant[data-status=error]')"
    )
    failed = page.locator("article.message-assistant[data-status=error]")
    assert "server error (HTTP 502)" in failed.inner_text()
    assert page.locator(".button-continue").count() == 0

    fake_upstream_server.reset(reply="Here I am.")
    page.click("article.message-assistant .button-retry")
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=20_000)

    reply = page.locator("article.message-assistant")
    assert reply.count() == 1
    assert reply.locator(".markdown").inner_text().strip() == "Here I am."
    # The failed reply stays, as the first version.
    assert reply.locator(".versions-position").inner_text() == "2 / 2"
    page.click("article.message-assistant [aria-label='Previous version']")
    page.wait_for_selector("article.message-assistant[data-status=error]")


def test_a_rate_limited_reply_counts_down_then_answers(
    open_page, webchat_server, fake_upstream_server
):
    fake_upstream_server.reset(failure="http_429", retry_after=1.5, fail_first=1, reply="Done.")
    page = open_page(webchat_server.url)
    _send(page, "Hello")
    page.wait_for_selector("text=Rate limited, retrying in 2 s")
    page.wait_for_selector("article.message-assistant[data-status=complete]")
    assert _reply_words(page) == ["Done."]
    assert page.locator("text=Rate limited").count() == 0
