"""A page that loses its socket mid-reply catches up, then follows the stream live again,
with no text duplicated or missing; several tabs show the same stream."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from tests.factories import MessageFactory
from tests.generation_helpers import (
    PROGRESS,
    Page,
    communicator_for,
    finished,
    frames_until_final,
    frames_until_render,
    latest_reply,
    send_message,
)

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = [f"word{i}" for i in range(60)]


def _assert_a_prefix_of(words: list[str], expected: list[str]) -> None:
    assert words == expected[: len(words)], words


async def test_a_page_that_reconnects_mid_reply_catches_up_without_duplicates(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    settings.WEBCHAT_SAVE_INTERVAL = 0.1
    fake_upstream.reset(token_count=len(WORDS), token_interval=0.02)
    first_socket = communicator_for(conversation.pk, owner)
    await first_socket.connect()
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    page = Page(reply.dom_id)

    while len(page.words) < 10:
        page.apply(await first_socket.receive_from(timeout=5))
        _assert_a_prefix_of(page.words, WORDS)
    await first_socket.disconnect()
    seen_before_the_drop = len(page.words)
    # The reply goes on while the page is offline: the upstream writes more words.
    for _ in range(1000):
        if fake_upstream.requests[-1].tokens_sent >= seen_before_the_drop + 5:
            break
        await asyncio.sleep(0.01)

    second_socket = communicator_for(conversation.pk, owner)
    await second_socket.connect()
    frames = await frames_until_final(second_socket, reply)
    await second_socket.disconnect()
    for frame in frames:
        page.apply(frame)
        _assert_a_prefix_of(page.words, WORDS)

    assert page.words == WORDS
    assert page.status == "complete"
    # It caught up from the live state its reply's runner sent, then followed the stream.
    caught_up = next(i for i, step in enumerate(page.log) if step.startswith("sync to"))
    assert any(step.startswith(PROGRESS) for step in page.log[caught_up:])
    assert seen_before_the_drop < len(WORDS)
    await finished(reply)


async def test_the_stored_state_sent_on_reconnect_never_replaces_newer_text(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    settings.WEBCHAT_SAVE_INTERVAL = 0.5  # the database lags behind the stream
    fake_upstream.reset(token_count=len(WORDS), token_interval=0.02)
    first_socket = communicator_for(conversation.pk, owner)
    await first_socket.connect()
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    page = Page(reply.dom_id)
    while len(page.words) < 20:
        page.apply(await first_socket.receive_from(timeout=5))
    await first_socket.disconnect()

    second_socket = communicator_for(conversation.pk, owner)
    await second_socket.connect()
    for frame in await frames_until_render(second_socket, reply):  # the stored state
        page.apply(frame)
        _assert_a_prefix_of(page.words, WORDS)
    for frame in await frames_until_final(second_socket, reply):
        page.apply(frame)
        _assert_a_prefix_of(page.words, WORDS)
    await second_socket.disconnect()

    assert page.words == WORDS
    await finished(reply)


async def test_every_open_tab_shows_a_message_sent_from_another(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(token_count=8, token_interval=0.01)
    tabs = [communicator_for(conversation.pk, owner) for _ in range(2)]
    for tab in tabs:
        await tab.connect()

    await send_message(async_owner_client, conversation, "Sent from the first tab")
    reply = await latest_reply(conversation)
    received = [await frames_until_final(tab, reply) for tab in tabs]
    for tab in tabs:
        await tab.disconnect()

    for frames in received:
        exchange = frames[0]
        assert exchange.startswith('<div hx-swap-oob="beforeend:#messages">')
        assert "Sent from the first tab" in exchange
        assert f'<article id="{reply.dom_id}"' in exchange
        page = Page(reply.dom_id)
        for frame in frames:
            page.apply(frame)
        assert page.words == [f"word{i}" for i in range(8)]
    await finished(reply)


async def test_a_reply_continued_in_one_tab_streams_in_the_others(
    async_owner_client, conversation, owner, fake_upstream
):
    await sync_to_async(MessageFactory)(conversation=conversation, role="user", content="Hi")
    partial = await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", status="interrupted", content="word0 word1"
    )
    fake_upstream.reset(reply=" word2 word3")
    other_tab = communicator_for(conversation.pk, owner)
    await other_tab.connect()
    page = Page(partial.dom_id)
    for frame in await frames_until_render(other_tab, partial):
        page.apply(frame)
    assert page.status == "interrupted"

    await async_owner_client.post(
        f"/c/{conversation.pk}/messages/{partial.pk}/continue/", headers={"HX-Request": "true"}
    )
    for frame in await frames_until_final(other_tab, partial):
        page.apply(frame)
    await other_tab.disconnect()

    assert page.words == ["word0", "word1", "word2", "word3"]
    assert page.status == "complete"
    await finished(partial)
