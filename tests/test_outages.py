"""Outages of Redis and PostgreSQL, against a real server (``manage.py serve``, as in
production) and Redis and PostgreSQL processes of the tests' own (README, "Outages").

While Redis is stopped, signing in, pages and sending work, replies are written and saved,
and /healthz says degraded; once it is back, frames flow again and pages that missed some
are sent the stored state. While PostgreSQL cannot be reached, pages answer a clear 503.
"""

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.generation_helpers import FINAL_STATUSES, STREAMING_STATUSES, Page
from tests.live_server import LiveServer, sign_in, wait_for
from tests.tcp_proxy import TcpProxy
from tests.upstream_fixtures import TEST_API_KEY

PASSWORD = "correct horse battery"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
OUTAGE_WARNING = "The channel layer (Redis) is unreachable"


@pytest.fixture
def server(tmp_path_factory, redis_server, fake_upstream_server) -> Iterator[LiveServer]:
    """A server on SQLite and the test's own Redis."""
    live = LiveServer(
        tmp_path_factory.mktemp("server"),
        env={
            "REDIS_URL": redis_server.url,
            "WEBCHAT_API_BASE": fake_upstream_server.base_url,
            "WEBCHAT_API_KEY": TEST_API_KEY,
            "WEBCHAT_MODELS": "fake-model",
            "WEBCHAT_SAVE_INTERVAL": "0.1",
        },
    )
    try:
        live.start()
        live.create_user("alice", PASSWORD)
        yield live
    finally:
        live.stop()


@pytest.fixture
def alice(server, fake_upstream_server) -> Iterator[httpx.Client]:
    fake_upstream_server.reset()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        sign_in(client, "alice", PASSWORD)
        yield client


def _latest_reply(server: LiveServer) -> tuple[int, str, str]:
    with sqlite3.connect(server.log.parent / "live.sqlite3") as database:
        return database.execute(
            "SELECT id, status, content FROM conversations_message "
            "WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        ).fetchone()


def _post(client: httpx.Client, url: str, text: str) -> str:
    response = client.post(
        url, data={"text": text}, headers={"X-CSRFToken": client.cookies["csrftoken"]}
    )
    assert response.status_code == 302, response.text
    return response.headers["location"]


def _health(server: LiveServer) -> tuple[int, str]:
    response = httpx.get(f"{server.url}/healthz", timeout=10)
    return response.status_code, response.text


def _open_socket(server: LiveServer, client: httpx.Client, conversation_url: str):
    conversation_id = conversation_url.strip("/").split("/")[-1]
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation_id}/",
        additional_headers={"Cookie": f"sessionid={client.cookies['sessionid']}"},
        origin=server.url,
        open_timeout=10,
    )


def _follow(socket: ClientConnection, page: Page, until, *, timeout: float = 30) -> None:
    """Apply the socket's frames until ``until(page)``, asking for the live state when a
    frame would leave a gap, as the page does."""
    deadline = time.monotonic() + timeout
    while not until(page):
        asked = page.sync_requested
        page.apply(socket.recv(timeout=deadline - time.monotonic()))
        if page.sync_requested > asked:
            socket.send(json.dumps({"sync": True}))


def _finished(page: Page) -> bool:
    return page.status in FINAL_STATUSES


def test_while_redis_is_stopped_signing_in_pages_and_sending_work_and_health_says_degraded(
    server, alice, redis_server, fake_upstream_server
):
    fake_upstream_server.reset(reply="Hello.")
    conversation_url = _post(alice, "/c/new/", "Hi")
    wait_for(lambda: _latest_reply(server)[1] == "complete", what="the first reply")
    wait_for(lambda: _health(server) == (200, "ok"), what="health to be ok")
    logged_before = len(server.log.read_text())

    redis_server.stop()
    assert _health(server) == (200, "degraded")
    # Sessions come from the database: the signed-in user's pages, and signing in again.
    assert alice.get(conversation_url).status_code == 200
    assert alice.get("/").status_code == 200
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        browser.get("/accounts/login/")
        token = browser.cookies["csrftoken"]
        credentials = {"username": "alice", "csrfmiddlewaretoken": token}
        wrong = browser.post("/accounts/login/", data={**credentials, "password": "wrong"})
        assert wrong.status_code == 200  # refused as usual, and counted in this process
        assert 'role="alert"' in wrong.text
        sign_in(browser, "alice", PASSWORD)
        assert browser.get(conversation_url).status_code == 200
    # Sending works, and the reply is written and saved.
    fake_upstream_server.reset(reply="Still here.")
    _post(alice, f"{conversation_url}messages/", "Are you there?")
    wait_for(lambda: _latest_reply(server)[1:] == ("complete", "Still here."), what="the reply")

    redis_server.start()
    wait_for(lambda: _health(server) == (200, "ok"), what="health to be ok again")
    assert alice.get(conversation_url).status_code == 200
    recovered = "The channel layer (Redis) is reachable again"
    wait_for(
        lambda: recovered in server.log.read_text()[logged_before:],
        what="the recovery to be logged",
    )
    log = server.log.read_text()[logged_before:]
    assert log.count(OUTAGE_WARNING) == 1, log  # once per outage, not per frame
    assert log.count("The login throttle's cache (Redis) is unreachable") == 1, log


def test_a_reply_started_before_redis_stops_is_saved_whole_and_its_page_catches_up_after(
    server, alice, redis_server, fake_upstream_server
):
    fake_upstream_server.reset(token_count=40, hold_after=10)
    expected = fake_upstream_server.config.reply_text()
    conversation_url = _post(alice, "/c/new/", "Count for me")
    with _open_socket(server, alice, conversation_url) as socket:
        page = Page(f"message-{_latest_reply(server)[0]}")
        _follow(socket, page, lambda page: len(page.words) >= 10)  # the upstream holds here

        redis_server.stop()
        fake_upstream_server.release()
        wait_for(lambda: _latest_reply(server)[1] == "complete", what="the reply to end")
        assert _latest_reply(server)[2] == expected
        assert page.status in STREAMING_STATUSES  # it has not learned of the end

        redis_server.start()
        _follow(socket, page, _finished)  # the stored state, sent once Redis is back

    assert page.status == "complete"
    assert page.words == expected.split()


def test_frames_of_a_reply_still_being_written_flow_again_once_redis_is_back(
    server, alice, redis_server, fake_upstream_server
):
    fake_upstream_server.reset(token_count=40, hold_after=10)
    expected = fake_upstream_server.config.reply_text()
    conversation_url = _post(alice, "/c/new/", "Count for me")
    with _open_socket(server, alice, conversation_url) as socket:
        page = Page(f"message-{_latest_reply(server)[0]}")
        _follow(socket, page, lambda page: len(page.words) >= 10)

        redis_server.stop()
        redis_server.start()
        wait_for(lambda: _health(server) == (200, "ok"), what="health to be ok again")
        fake_upstream_server.release()
        _follow(socket, page, _finished)

    assert page.status == "complete"
    assert page.words == expected.split()
    assert _latest_reply(server)[1:] == ("complete", expected)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database of the test's own on the machine's server."""
    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=2, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust): {error}")
    name = f"webchat_outage_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_while_postgresql_is_unreachable_requests_answer_a_clear_503_and_nothing_is_stored(
    tmp_path, postgres_database, fake_upstream_server
):
    # The server reaches PostgreSQL through a proxy the test closes: the shared server
    # itself is never touched.
    with TcpProxy(5432) as proxy:
        live = LiveServer(
            tmp_path,
            env={
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/{postgres_database}",
                "WEBCHAT_DB_POOL_TIMEOUT": "1",
                "WEBCHAT_API_BASE": fake_upstream_server.base_url,
                "WEBCHAT_API_KEY": TEST_API_KEY,
                "WEBCHAT_MODELS": "fake-model",
            },
        )
        try:
            live.start()
            live.create_user("alice", PASSWORD)
            with httpx.Client(base_url=live.url, timeout=10) as alice:
                sign_in(alice, "alice", PASSWORD)
                fake_upstream_server.reset(reply="Hello.")
                conversation_url = _post(alice, "/c/new/", "Hi")

                proxy.refuse()
                page = alice.get(conversation_url)
                assert page.status_code == 503
                assert "Webchat is briefly unavailable" in page.text
                assert "cannot reach its database" in page.text
                assert page.headers["Retry-After"] == "10"
                sent = alice.post(
                    f"{conversation_url}messages/",
                    data={"text": "Lost?"},
                    headers={"X-CSRFToken": alice.cookies["csrftoken"]},
                )
                assert sent.status_code == 503
                assert _health(live) == (503, "unavailable")

                proxy.accept_again()
                wait_for(lambda: _health(live)[0] == 200, what="the database to be back")
                assert alice.get(conversation_url).status_code == 200
        finally:
            live.stop()
    with psycopg.connect(f"{POSTGRES}/{postgres_database}") as database:
        texts = database.execute(
            "SELECT content FROM conversations_message WHERE role = 'user'"
        ).fetchall()
    assert texts == [("Hi",)]
