"""A reply ends even when a cancellation is lost on the way.

Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives as the awaited
operation completes, and redis-py awaits it while connecting: a reply task cancelled there
runs on as if nothing happened. Closing an event loop cancels every task at once, the
reply's reader included, so a reply that then waited for its reader waited for ever (as the
test client's temporary loops did on PostgreSQL and Redis). Shutdown asks replies to stop
instead of cancelling them.
"""

import asyncio

import pytest

from conversations import generation
from conversations.upstream import failures
from tests.generation_helpers import finished, streaming_reply

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_reply_whose_reader_is_cancelled_ends_though_its_own_cancellation_was_lost(
    async_owner_client, conversation, owner, fake_upstream
):
    communicator, reply = await streaming_reply(
        async_owner_client, conversation, owner, fake_upstream
    )
    run = generation.running_reply(reply.pk)

    run.reader.cancel()  # as closing the loop does; the reply's own task is left running
    async with asyncio.timeout(10):
        reply = await finished(reply)
    await communicator.disconnect()

    assert reply.status == "interrupted"
    assert reply.error == str(failures.SERVER_STOPPED_MESSAGE)
    assert reply.content.startswith("word0")


async def test_shutdown_asks_replies_to_stop_and_keeps_their_text(
    async_owner_client, conversation, owner, fake_upstream, monkeypatch
):
    monkeypatch.setattr(generation, "_draining", False)
    communicator, reply = await streaming_reply(
        async_owner_client, conversation, owner, fake_upstream
    )
    run = generation.running_reply(reply.pk)

    async with asyncio.timeout(10):
        await generation.replies_drain(grace=0)
    reply = await finished(reply)
    await communicator.disconnect()

    assert not run.task.cancelled()
    assert reply.status == "interrupted"
    assert reply.error == str(failures.SERVER_STOPPED_MESSAGE)
    assert reply.content.startswith("word0")
    assert not generation.accepting_replies()
