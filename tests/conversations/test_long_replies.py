"""A reply of any length streams to its end in frames of bounded size, and a reply whose
final save fails still keeps its text."""

import asyncio

import pytest
from django.db import OperationalError

from conversations import frames, generation
from conversations.models import Message
from conversations.upstream import failures
from tests.generation_helpers import communicator_for, finished, latest_reply, send_message

pytestmark = pytest.mark.django_db(transaction=True)


def _long_code_reply(size: int) -> str:
    lines = []
    while sum(map(len, lines)) < size:
        number = len(lines)
        lines.append(f"    total_{number} = compute(values[{number}], scale={number % 7})\n")
    return "Here is the module:\n\n```python\ndef build(values):\n" + "".join(lines) + "```\n"


async def test_a_300_kb_reply_streams_to_its_end_in_frames_under_the_limit(
    async_owner_client, conversation, owner, fake_upstream
):
    text = _long_code_reply(300_000)
    fake_upstream.reset(reply=text)
    communicator = communicator_for(conversation.pk, owner)
    connected, _ = await communicator.connect()
    assert connected

    await send_message(async_owner_client, conversation, "Write a long module")
    reply = await finished(await latest_reply(conversation))

    assert reply.status == Message.Status.COMPLETE
    assert reply.content == text
    received = []
    while not await communicator.receive_nothing(timeout=0.5):
        received.append(await communicator.receive_from())
    await communicator.disconnect()
    assert received
    # A frame's size is bounded by the limit plus its markup, however long the reply.
    assert max(map(len, received)) <= frames.FRAME_LIMIT + 4096
    assert any(
        f'id="{reply.dom_id}"' in frame and 'data-status="complete"' in frame for frame in received
    )


async def test_a_failed_final_save_keeps_the_text_with_an_error_that_says_so(
    async_owner_client, conversation, fake_upstream, monkeypatch
):
    fake_upstream.reset(token_count=8)
    # A count no column takes: the full final save fails, as an absurd number once did.
    original = generation.ReplyRun._final_fields

    def unstorable(run):
        return {**original(run), "prompt_tokens": -1}

    monkeypatch.setattr(generation.ReplyRun, "_final_fields", unstorable)

    await send_message(async_owner_client, conversation, "Hello")
    reply = await finished(await latest_reply(conversation))

    assert reply.content == " ".join(f"word{i}" for i in range(8))
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.error == failures.SAVE_FAILED_MESSAGE
    assert reply.prompt_tokens is None
    assert not reply.runner


def _unreachable_for(
    monkeypatch, tries: int, *, saves: str = "completed_at"
) -> tuple[list[dict], asyncio.Event]:
    """Saves of ``saves`` (the final one's field by default) find the database unreachable
    ``tries`` times; the event is set at the last refusal."""
    store, attempts, refused = generation.ReplyRun._store, [], asyncio.Event()

    async def flaky(run, fields):
        if saves in fields:
            attempts.append(fields)
            if len(attempts) <= tries:
                if len(attempts) == tries:
                    refused.set()
                raise OperationalError("the connection is closed")
        return await store(run, fields)

    monkeypatch.setattr(generation.ReplyRun, "_store", flaky)
    monkeypatch.setattr(generation, "FINAL_SAVE_WAITS", (0.01, 0.02))
    return attempts, refused


async def test_a_final_save_during_a_database_outage_is_made_once_the_database_is_back(
    async_owner_client, conversation, fake_upstream, monkeypatch, caplog
):
    fake_upstream.reset(token_count=8)
    attempts, _refused = _unreachable_for(monkeypatch, tries=3)

    await send_message(async_owner_client, conversation, "Hello")
    reply = await finished(await latest_reply(conversation))

    assert len(attempts) == 4
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == " ".join(f"word{i}" for i in range(8))
    assert reply.prompt_tokens is not None
    assert "its end is saved once it can be" in caplog.text


async def test_a_reply_goes_on_when_its_progress_cannot_be_saved(
    async_owner_client, conversation, fake_upstream, monkeypatch, settings, caplog
):
    settings.WEBCHAT_SAVE_INTERVAL = 0  # a checkpoint on every round
    fake_upstream.reset(token_count=30, hold_after=10)  # the stream waits for the release
    _attempts, refused = _unreachable_for(monkeypatch, tries=1, saves="time_to_first_token_ms")

    await send_message(async_owner_client, conversation, "Hello")
    await asyncio.wait_for(refused.wait(), 10)  # the first checkpoint, while the stream waits
    fake_upstream.release()
    reply = await finished(await latest_reply(conversation))

    assert reply.status == Message.Status.COMPLETE
    assert reply.content == " ".join(f"word{i}" for i in range(30))
    assert "its progress could not be saved" in caplog.text
