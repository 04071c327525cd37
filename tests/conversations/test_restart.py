"""A real server stopped mid-reply, then started again.

Killed with SIGKILL, the partial text survives and the restart marks the reply interrupted
(the embedded set-up runs one process: every reply still being written at its start was
left by a dead one). Stopped with SIGTERM, the reply finishes within
WEBCHAT_SHUTDOWN_GRACE, or is saved as interrupted with its text. Either way no reply is
left streaming, a reconnected page shows it so, and the conversation goes on. Meanwhile a
page connected to the stopping server follows its reply to the end over its socket, which
then drops, as a network failure does, so that the page reconnects (elsewhere).
"""

import json
import re
import signal
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect

from tests.generation_helpers import FINAL_STATUSES, Page
from tests.live_server import LiveServer, sign_in
from tests.upstream_fixtures import TEST_API_KEY

PASSWORD = "correct horse battery"


def _reply_row(database: Path) -> dict:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT id, status, content, error, error_code, runner "
            "FROM conversations_message WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return dict(row) if row else {}


def _wait_for(condition, *, timeout: float = 30.0, what: str):
    """Poll the database, which the server writes and nothing signals."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"Timed out waiting for {what}.")


@pytest.fixture
def start_server(tmp_path, fake_upstream_server):
    """Start a server with a shutdown grace of its own; stopped at the test's end."""
    started = []

    def start(grace: float = 20.0) -> LiveServer:
        server = LiveServer(
            tmp_path,
            env={
                "WEBCHAT_API_BASE": fake_upstream_server.base_url,
                "WEBCHAT_API_KEY": TEST_API_KEY,
                "WEBCHAT_MODELS": "fake-model",
                "WEBCHAT_SAVE_INTERVAL": "0.1",
                "WEBCHAT_SHUTDOWN_GRACE": str(grace),
                # The embedded set-up, even where the tests run on Redis: one process, whose
                # start-up marks what it left (tests/conversations/test_multiprocess.py
                # kills one of two processes sharing Redis).
                "REDIS_URL": "",
            },
        )
        started.append(server)
        server.start()
        server.create_user("alice", PASSWORD)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def database(tmp_path) -> Path:
    return tmp_path / "live.sqlite3"


def _send_and_wait_for_text(client: httpx.Client, database: Path) -> str:
    """Start a conversation; return its address once some of the reply is saved."""
    response = client.post(
        "/c/new/",
        data={"text": "Tell me a long story"},
        headers={"X-CSRFToken": client.cookies["csrftoken"]},
    )
    assert response.status_code == 302
    _wait_for(
        lambda: (row := _reply_row(database)) and row["content"].count("word") >= 5,
        what="some of the reply to be saved",
    )
    return response.headers["location"]


def _open_socket(server: LiveServer, client: httpx.Client, url: str):
    conversation_id = url.strip("/").split("/")[-1]
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation_id}/",
        additional_headers={"Cookie": f"sessionid={client.cookies['sessionid']}"},
        origin=server.url,
        open_timeout=10,
    )


def _state_on_reconnecting(server: LiveServer, client: httpx.Client, url: str) -> str:
    with _open_socket(server, client, url) as socket:
        return socket.recv(timeout=10) + socket.recv(timeout=10)


def _until_closed(socket_on_server) -> ConnectionClosed:
    """Read the socket's frames until it closes; how it closed."""
    try:
        while True:
            socket_on_server.recv(timeout=30)
    except ConnectionClosed as closed:
        return closed


def _refuses_connections(server: LiveServer) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _conversation_goes_on(client, url: str, upstream, database: Path) -> None:
    upstream.reset(reply="Back again.")
    response = client.post(
        f"{url}messages/",
        data={"text": "Are you back?"},
        headers={"X-CSRFToken": client.cookies["csrftoken"]},
    )
    assert response.status_code == 302
    _wait_for(lambda: _reply_row(database)["content"] == "Back again.", what="the next reply")


def test_a_reply_cut_off_by_sigkill_keeps_its_text_and_is_interrupted_after_a_restart(
    start_server, fake_upstream_server, database
):
    fake_upstream_server.reset(token_count=400, token_interval=0.02)
    server = start_server()
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, "alice", PASSWORD)
        url = _send_and_wait_for_text(client, database)
        server.process.kill()  # SIGKILL: no clean-up of any kind runs
        server.process.wait()
        killed = _reply_row(database)
        assert killed["status"] == "streaming"
        assert killed["content"].startswith("word0 word1 word2 word3 word4")
        assert killed["runner"]

        # At once: the restart marks it before it serves.
        server.start(prepare=False)

        interrupted = _reply_row(database)
        assert interrupted["status"] == "interrupted"
        assert interrupted["error_code"] == "interrupted"
        assert interrupted["content"] == killed["content"]
        assert interrupted["runner"] == ""
        page = client.get(url).text
        last_word = killed["content"].split()[-1]
        assert re.search(rf"\b{last_word}\b", page)
        assert "the server stopped while writing it" in page
        assert 'data-status="interrupted"' in page
        _conversation_goes_on(client, url, fake_upstream_server, database)


def test_on_sigterm_a_reply_finishes_within_the_grace_period(
    start_server, fake_upstream_server, database
):
    fake_upstream_server.reset(token_count=60, token_interval=0.02)
    server = start_server(grace=60)
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, "alice", PASSWORD)
        url = _send_and_wait_for_text(client, database)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)

        finished = _reply_row(database)
        assert finished["status"] == "complete"
        assert finished["content"].split() == [f"word{i}" for i in range(60)]

        server.start(prepare=False)
        state = _state_on_reconnecting(server, client, url)
        assert f'id="message-{finished["id"]}"' in state
        assert set(re.findall(r'data-status="(\w+)"', state)) == {"complete"}


def test_on_sigterm_a_reply_past_the_grace_period_is_saved_interrupted_with_its_text(
    start_server, fake_upstream_server, database
):
    fake_upstream_server.reset(token_count=100_000, token_interval=0.02)
    server = start_server(grace=0)
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, "alice", PASSWORD)
        url = _send_and_wait_for_text(client, database)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)

        interrupted = _reply_row(database)
        assert interrupted["status"] == "interrupted"
        assert interrupted["error_code"] == "interrupted"
        assert "the server stopped while writing it" in interrupted["error"]
        assert interrupted["content"].startswith("word0 word1 word2 word3 word4")
        assert "Task exception was never retrieved" not in server.log.read_text()

        server.start(prepare=False)
        state = _state_on_reconnecting(server, client, url)
        assert 'data-status="interrupted"' in state
        assert re.search(rf"\b{interrupted['content'].split()[-1]}\b", state)
        _conversation_goes_on(client, url, fake_upstream_server, database)


def test_on_sigterm_a_page_on_the_stopping_server_follows_its_reply_to_the_end_then_drops(
    start_server, fake_upstream_server, database
):
    expected = [f"word{i}" for i in range(200)]
    # A fixed pace, whatever the machine's: the upstream writes for 6 s.
    fake_upstream_server.reset(token_count=len(expected), token_interval=0.03)
    server = start_server(grace=60)
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, "alice", PASSWORD)
        url = _send_and_wait_for_text(client, database)
        with _open_socket(server, client, url) as socket_on_server:
            page = Page(f"message-{_reply_row(database)['id']}")
            while page.status != "streaming" or not page.words:
                page.apply(socket_on_server.recv(timeout=10))
            server.process.send_signal(signal.SIGTERM)
            # New connections are refused at once (nginx then tries another process)...
            _wait_for(lambda: _refuses_connections(server), what="the port to be closed")
            refused_at = time.monotonic()
            # ... while this socket is still served, its reply to the end.
            while page.status not in FINAL_STATUSES:
                asked = page.sync_requested
                page.apply(socket_on_server.recv(timeout=30))
                if page.sync_requested > asked:
                    socket_on_server.send(json.dumps({"sync": True}))
            assert (page.status, page.words) == ("complete", expected)
            # Then the process exits without a close frame: a browser sees 1006 and its
            # htmx socket reconnects by itself.
            closed = _until_closed(socket_on_server)
            assert isinstance(closed, ConnectionClosedError)
            assert closed.rcvd is None
        assert server.process.wait(timeout=30) == 0

    # Both happened while the upstream was still writing the reply.
    reply_request = next(r for r in fake_upstream_server.requests if r.body.get("stream"))
    assert refused_at < reply_request.last_token_at
    assert _reply_row(database)["status"] == "complete"
