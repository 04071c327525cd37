"""A real server killed with SIGKILL mid-reply: the partial text survives, marked interrupted."""

import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.live_server import LiveServer, sign_in
from tests.upstream_fixtures import TEST_API_KEY

PASSWORD = "correct horse battery"
STALE_REPLY_SECONDS = 1.0


def _reply_row(database: Path) -> dict:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT id, status, content, error, error_code, heartbeat_at "
            "FROM conversations_message WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return dict(row) if row else {}


def _wait_for(condition, *, timeout: float = 15.0, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"Timed out waiting for {what}.")


@pytest.fixture
def server(tmp_path, fake_upstream_server):
    server = LiveServer(
        tmp_path,
        env={
            "WEBCHAT_API_BASE": fake_upstream_server.base_url,
            "WEBCHAT_API_KEY": TEST_API_KEY,
            "WEBCHAT_MODELS": "fake-model",
            "WEBCHAT_SAVE_INTERVAL": "0.1",
            "WEBCHAT_STALE_REPLY_SECONDS": str(STALE_REPLY_SECONDS),
        },
    )
    server.start()
    server.create_user("alice", PASSWORD)
    yield server
    server.stop()


def test_a_reply_cut_off_by_sigkill_keeps_its_text_and_is_interrupted_after_a_restart(
    server, fake_upstream_server, tmp_path
):
    fake_upstream_server.reset(token_count=400, token_interval=0.02)
    database = tmp_path / "live.sqlite3"
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, "alice", PASSWORD)
        response = client.post(
            "/c/new/",
            data={"text": "Tell me a long story"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        assert response.status_code == 302
        conversation_url = response.headers["location"]

        streaming = _wait_for(
            lambda: (row := _reply_row(database))["content"].count("word") >= 5 and row,
            what="some of the reply to be saved",
        )
        assert streaming["status"] == "streaming"
        server.process.kill()  # SIGKILL: no clean-up of any kind runs
        server.process.wait()
        killed = _reply_row(database)
        assert killed["status"] == "streaming"
        assert killed["content"].startswith("word0 word1 word2 word3 word4")

        # The restart's sweep only takes a reply for dead once its heartbeat is stale.
        heartbeat = datetime.fromisoformat(killed["heartbeat_at"]).replace(tzinfo=UTC)
        stale_in = heartbeat.timestamp() + STALE_REPLY_SECONDS - time.time()
        time.sleep(max(stale_in, 0) + 0.1)
        server.start()

        interrupted = _reply_row(database)
        assert interrupted["status"] == "interrupted"
        assert interrupted["error_code"] == "interrupted"
        assert interrupted["content"] == killed["content"]
        page = client.get(conversation_url).text
        last_word = killed["content"].split()[-1]
        assert re.search(rf"\b{last_word}\b", page)
        assert "the server stopped while writing it" in page
        assert 'data-status="interrupted"' in page

        # Nothing is stuck: the conversation takes a new message.
        fake_upstream_server.reset(reply="Back again.")
        response = client.post(
            f"{conversation_url}messages/",
            data={"text": "Are you back?"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        assert response.status_code == 302
        _wait_for(lambda: _reply_row(database)["content"] == "Back again.", what="the next reply")
