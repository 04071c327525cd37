"""At most WEBCHAT_MAX_SOCKETS_PER_USER open sockets per user, in one process and across
several (conversations/socket_limits.py); two real processes: test_multiprocess.py."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from conversations import reply_runners, socket_limits
from conversations.consumers import TOO_MANY_SOCKETS
from conversations.models import ReplyRunner
from tests.factories import ConversationFactory
from tests.generation_helpers import communicator_for

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(conversation, user) -> WebsocketCommunicator:
    return communicator_for(conversation.pk, user)


async def _open(conversation, user) -> WebsocketCommunicator:
    communicator = _communicator(conversation, user)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _refused(conversation, user) -> dict:
    """The close a refused socket gets, right after it was accepted."""
    communicator = _communicator(conversation, user)
    connected, _ = await communicator.connect()
    assert connected
    closed = await communicator.receive_output()
    await communicator.wait()
    return closed


async def test_a_users_21st_socket_is_closed_with_a_code_that_says_why(
    conversation, owner, outsider
):
    sockets = [await _open(conversation, owner) for _ in range(20)]

    closed = await _refused(conversation, owner)

    assert closed == {
        "type": "websocket.close",
        "code": TOO_MANY_SOCKETS,
        "reason": "Too many open pages",
    }
    # Another user is not affected.
    theirs = await sync_to_async(ConversationFactory)(owner=outsider)
    await (await _open(theirs, outsider)).disconnect()
    for socket in sockets:
        await socket.disconnect()


async def test_a_closed_socket_frees_its_place(conversation, owner, settings):
    settings.WEBCHAT_MAX_SOCKETS_PER_USER = 2
    first, second = await _open(conversation, owner), await _open(conversation, owner)
    assert (await _refused(conversation, owner))["code"] == TOO_MANY_SOCKETS

    await first.disconnect()

    third = await _open(conversation, owner)
    assert (await _refused(conversation, owner))["code"] == TOO_MANY_SOCKETS
    for socket in (second, third):
        await socket.disconnect()


async def test_a_refused_socket_is_not_counted(conversation, owner, settings):
    settings.WEBCHAT_MAX_SOCKETS_PER_USER = 1
    only = await _open(conversation, owner)
    for _ in range(3):
        await _refused(conversation, owner)
    runner = await reply_runners.this_runner()
    assert runner.sockets[owner.pk] == 1
    await only.disconnect()
    assert owner.pk not in runner.sockets


# --- Several processes: each runner's counts in the cache ---------------------------------


@pytest.fixture
def several_processes(monkeypatch):
    monkeypatch.setattr(reply_runners, "shared_layer", lambda: True)


async def _runner(channel: str, *, seen: timedelta = timedelta(0)) -> reply_runners.Runner:
    await ReplyRunner.objects.acreate(channel=channel, seen_at=timezone.now() - seen)
    return reply_runners.Runner(channel=channel)


async def test_the_cap_counts_the_sockets_of_every_live_process(several_processes, owner):
    here, there = await _runner("runner.here"), await _runner("runner.there")
    for _ in range(10):
        assert await socket_limits.socket_admit(here, owner.pk)
        assert await socket_limits.socket_admit(there, owner.pk)

    assert not await socket_limits.socket_admit(here, owner.pk)
    assert not await socket_limits.socket_admit(there, owner.pk)

    await socket_limits.socket_release(there, owner.pk)
    assert await socket_limits.socket_admit(here, owner.pk)
    assert (here.sockets[owner.pk], there.sockets[owner.pk]) == (11, 9)


async def test_the_sockets_of_a_process_that_died_stop_counting(several_processes, owner):
    dead = await _runner("runner.dead", seen=reply_runners.LAPSE + timedelta(seconds=1))
    for _ in range(20):
        assert await socket_limits.socket_admit(dead, owner.pk)
    here = await _runner("runner.here")

    assert await socket_limits.socket_admit(here, owner.pk)


async def test_a_process_forgets_a_user_once_their_sockets_close(several_processes, owner):
    here, there = await _runner("runner.here"), await _runner("runner.there")
    for _ in range(20):
        assert await socket_limits.socket_admit(there, owner.pk)
    for _ in range(20):
        await socket_limits.socket_release(there, owner.pk)

    for _ in range(20):
        assert await socket_limits.socket_admit(here, owner.pk)
    assert owner.pk not in there.sockets
