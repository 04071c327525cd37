"""Stop: the upstream request is cancelled, the text that arrived is kept, marked stopped."""

import asyncio

import pytest
from django.urls import reverse

from conversations.models import Message
from tests.generation_helpers import (
    HTMX,
    Page,
    communicator_for,
    finished,
    first_text,
    frames_until_final,
    latest_reply,
    send_message,
    streaming_reply,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _stop_url(conversation) -> str:
    return reverse("conversations:reply-stop", args=[conversation.pk])


async def test_stop_closes_the_upstream_connection_and_keeps_the_partial_text(
    async_owner_client, conversation, owner, fake_upstream
):
    communicator, reply = await streaming_reply(
        async_owner_client, conversation, owner, fake_upstream
    )

    response = await async_owner_client.post(_stop_url(conversation), headers=HTMX)
    frames = await frames_until_final(communicator, reply)
    await communicator.disconnect()

    assert response.status_code == 204
    assert 'data-status="stopped"' in frames[-1]
    assert "Stopped." in frames[-1]
    reply = await finished(reply)
    assert reply.status == "stopped"
    page = Page(reply.dom_id)
    page.apply(frames[-1])
    assert page.text.strip() == reply.content.strip()
    assert reply.content.startswith("word0")
    assert len(reply.content) < len(fake_upstream.config.reply_text())
    await asyncio.to_thread(fake_upstream.wait_idle)
    (request,) = fake_upstream.requests
    assert request.disconnected


async def test_stop_before_the_first_token_leaves_an_empty_stopped_reply(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(first_token_delay=30)
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    await asyncio.to_thread(fake_upstream.wait_for_requests)

    await async_owner_client.post(_stop_url(conversation), headers=HTMX)

    reply = await asyncio.wait_for(finished(reply), 5)
    assert (reply.status, reply.content, reply.error) == ("stopped", "", "")
    await asyncio.to_thread(fake_upstream.wait_idle)
    assert fake_upstream.requests[0].disconnected


async def test_stop_pressed_in_another_tab_stops_the_reply_in_every_tab(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(token_count=400, token_interval=0.02)
    sender, other_tab = (
        communicator_for(conversation.pk, owner),
        communicator_for(conversation.pk, owner),
    )
    await sender.connect()
    await other_tab.connect()
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    await first_text(other_tab, reply)

    await async_owner_client.post(_stop_url(conversation))

    for tab in (sender, other_tab):
        assert 'data-status="stopped"' in (await frames_until_final(tab, reply))[-1]
        await tab.disconnect()


async def test_a_stopped_reply_can_be_continued_or_regenerated(
    async_owner_client, conversation, owner, fake_upstream
):
    communicator, reply = await streaming_reply(
        async_owner_client, conversation, owner, fake_upstream
    )
    await async_owner_client.post(_stop_url(conversation))
    await communicator.disconnect()
    reply = await finished(reply)
    reply.is_branch_end = True
    assert reply.offers_continue
    assert reply.offers_retry

    fake_upstream.reset(reply=" More.")
    url = reverse("conversations:reply-continue", args=[conversation.pk, reply.pk])
    await async_owner_client.post(url, headers=HTMX)
    assert (await finished(reply)).content.endswith("More.")


async def test_stop_with_nothing_being_written_changes_nothing(
    async_owner_client, conversation, fake_upstream
):
    await send_message(async_owner_client, conversation)
    reply = await finished(await latest_reply(conversation))

    response = await async_owner_client.post(_stop_url(conversation), headers=HTMX)

    assert response.status_code == 204
    assert (await Message.objects.aget(pk=reply.pk)).status == "complete"


async def test_the_stop_button_is_a_form_shown_while_the_reply_streams(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(first_token_delay=30)
    response = await send_message(async_owner_client, conversation)
    url = _stop_url(conversation)
    assert f'<form method="post" action="{url}" hx-post="{url}"' in response.content.decode()
    assert 'data-action="stop"' in response.content.decode()
    reply = await latest_reply(conversation)
    await async_owner_client.post(url)
    reply = await finished(reply)
    page = (await async_owner_client.get(conversation.get_absolute_url())).content.decode()
    assert 'data-action="stop"' not in page
