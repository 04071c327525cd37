"""Fixtures for the end-to-end tests: a real server, headless Chromium, a signed-in page."""

import pytest

from tests.live_server import LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def webchat_server(tmp_path_factory, fake_upstream_server):
    server = LiveServer(
        tmp_path_factory.mktemp("live"),
        env={
            "WEBCHAT_API_BASE": fake_upstream_server.base_url,
            "WEBCHAT_API_KEY": "test-key-not-secret",
            "WEBCHAT_MODELS": "fake-model",
        },
    )
    server.start()
    server.create_user("alice", PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, webchat_server):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{webchat_server.url}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{webchat_server.url}/")
    yield page
    context.close()
    assert errors == []
