"""``manage.py serve``: how ``make run`` and the systemd unit start the server."""

import asyncio

import pytest
from daphne.server import Server
from django.core.management import call_command

from conversations import generation
from conversations.management.commands import serve
from conversations.management.commands.serve import RequestsInFlight
from conversations.models import Message
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import latest_reply, send_message

# serve closes its database connections before serving, which a test's transaction forbids.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daphne_runs(monkeypatch) -> list[Server]:
    """The daphne servers started; the test ends where each would serve."""
    runs: list[Server] = []
    monkeypatch.setattr(Server, "run", lambda server: runs.append(server))
    return runs


@pytest.fixture
def collected_static(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    return settings.STATIC_ROOT


def test_it_marks_dead_replies_interrupted_then_serves_with_a_30_second_handshake(daphne_runs):
    dead = MessageFactory(conversation=ConversationFactory(), role="assistant", status="streaming")

    call_command("serve", "--host", "127.0.0.1", "--port", "8123")

    dead.refresh_from_db()
    assert dead.status == Message.Status.INTERRUPTED
    [server] = daphne_runs
    assert server.endpoints == ["tcp:port=8123:interface=127.0.0.1"]
    assert server.websocket_connect_timeout == server.websocket_handshake_timeout == 30


def test_prepare_migrates_and_collects_static_files_before_serving(
    daphne_runs, collected_static, capsys
):
    call_command("serve", "--prepare")

    assert "No migrations to apply." in capsys.readouterr().out
    assert (collected_static / "staticfiles.json").exists()
    assert daphne_runs[0].endpoints == ["tcp:port=8000:interface=127.0.0.1"]


def test_without_prepare_static_files_are_left_as_they_are(daphne_runs, collected_static):
    call_command("serve")

    assert not collected_static.exists()
    assert len(daphne_runs) == 1


async def test_the_drain_answers_the_requests_received_and_waits_for_the_replies_they_start(
    async_owner_client, conversation, fake_upstream, monkeypatch
):
    monkeypatch.setattr(generation, "_draining", False)
    fake_upstream.reset(token_count=20, token_interval=0.01)
    requests = RequestsInFlight()
    requests.started()  # a message received just before the process stopped listening
    drain = asyncio.create_task(serve.drain(requests, grace=30))
    await asyncio.sleep(0)  # lets the drain begin: it waits for that request
    assert not drain.done()

    response = await send_message(async_owner_client, conversation)  # its view runs now
    requests.finished()
    await drain

    assert response.status_code == 200
    reply = await latest_reply(conversation)
    await reply.arefresh_from_db()
    assert reply.status == Message.Status.COMPLETE
    assert not generation.accepting_replies()
