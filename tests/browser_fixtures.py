"""Fixtures for the end-to-end tests: a real server, headless Chromium, a signed-in page."""

from collections.abc import Iterator
from contextlib import contextmanager

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
# The two screens every page is tried on: a laptop and a phone.
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SCREENS = {"desktop": DESKTOP, "phone": PHONE}


@contextmanager
def running_webchat(folder, fake_upstream_server, **env: str) -> Iterator[LiveServer]:
    """A live server talking to the fake upstream, with alice's account; ``env`` adds to
    or overrides its settings."""
    server = LiveServer(
        folder,
        env={
            "WEBCHAT_API_BASE": fake_upstream_server.base_url,
            "WEBCHAT_API_KEY": "test-key-not-secret",
            "WEBCHAT_MODELS": "fake-model",
            **env,
        },
    )
    server.start()
    server.create_user("alice", PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def webchat_server(tmp_path_factory, fake_upstream_server):
    with running_webchat(tmp_path_factory.mktemp("live"), fake_upstream_server) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def signed_in_page(browser, server: LiveServer, username: str = "alice", **context_options):
    """A page of a fresh browser context, signed in through the form; a script error on
    it fails the test."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    yield page
    context.close()
    assert errors == []


@pytest.fixture
def page(browser, webchat_server) -> Iterator:
    with signed_in_page(browser, webchat_server) as page:
        yield page
