"""Frames that keep a page's controls current without a reload: the actions of the reply
at the end of the shown branch only, the header's token total, the sidebar's order."""

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from conversations import frames, services
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import (
    HTMX,
    communicator_for,
    finished,
    latest_reply,
    send_message,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _answered(conversation, **reply_fields):
    MessageFactory(conversation=conversation, role="user", content="Hello")
    fields = {"role": "assistant", "content": "Hi.", "prompt_tokens": 10, "completion_tokens": 5}
    return MessageFactory(conversation=conversation, **fields | reply_fields)


async def _connected(conversation, user):
    """A tab of ``conversation``, past the state it is sent on connecting."""
    communicator = communicator_for(conversation.pk, user)
    connected, _code = await communicator.connect()
    assert connected
    if await sync_to_async(conversation.messages.exists)():
        await _frames_until(communicator, 'id="chat-usage"')  # the last one carries the total
    return communicator


async def _frames_until(communicator, marker: str) -> list[str]:
    """The frames a tab receives up to the first one containing ``marker``."""
    received: list[str] = []
    while not received or marker not in received[-1]:
        received.append(await communicator.receive_from(timeout=10))
    return received


async def test_a_second_message_takes_the_actions_off_the_earlier_reply_in_every_tab(
    async_owner_client, owner, conversation, fake_upstream
):
    earlier = await sync_to_async(_answered)(conversation)
    tab = await _connected(conversation, owner)

    await send_message(async_owner_client, conversation, "And then?")
    received = await _frames_until(tab, 'id="chat-usage"')
    await tab.disconnect()

    emptied = f'<div class="message-actions" id="{earlier.dom_id}-actions" hx-swap-oob="true">'
    assert any(f"{emptied}</div>" in frame for frame in received)
    reply = await finished(await latest_reply(conversation))
    final = [f for f in received if f.startswith(f'<article id="{reply.dom_id}"')][-1]
    assert 'data-status="complete"' in final
    assert ">Regenerate</button>" in final


async def test_the_token_total_follows_each_finished_reply(
    async_owner_client, owner, conversation, fake_upstream
):
    await sync_to_async(_answered)(conversation)
    tab = await _connected(conversation, owner)

    await send_message(async_owner_client, conversation, "And then?")
    usage = (await _frames_until(tab, 'id="chat-usage"'))[-1]
    await tab.disconnect()

    reply = await finished(await latest_reply(conversation))
    assert reply.prompt_tokens
    assert reply.completion_tokens
    totals = f"{10 + reply.prompt_tokens} in · {5 + reply.completion_tokens} out"
    assert totals in usage
    assert 'hx-swap-oob="true"' in usage
    assert " hidden" not in usage


async def test_regenerating_counts_the_replaced_version_too(
    async_owner_client, owner, conversation, fake_upstream
):
    earlier = await sync_to_async(_answered)(conversation)
    tab = await _connected(conversation, owner)

    url = reverse("conversations:reply-regenerate", args=[conversation.pk, earlier.pk])
    await async_owner_client.post(url, headers=HTMX)
    usage = (await _frames_until(tab, 'id="chat-usage"'))[-1]
    await tab.disconnect()

    again = await finished(await latest_reply(conversation))
    assert f"{10 + again.prompt_tokens} in · {5 + again.completion_tokens} out" in usage


async def test_an_exchange_brings_the_conversation_to_every_tab_of_its_owner_only(
    async_owner_client, owner, outsider, conversation, fake_upstream
):
    other = await sync_to_async(ConversationFactory)(owner=owner, title="Another one")
    elsewhere = await _connected(other, owner)
    outsiders = await sync_to_async(ConversationFactory)(owner=outsider)
    outsider_tab = await _connected(outsiders, outsider)

    await send_message(async_owner_client, conversation, "Move me up")
    entry = (await _frames_until(elsewhere, "afterbegin:#conversation-list"))[-1]
    await finished(await latest_reply(conversation))
    await elsewhere.disconnect()

    assert entry.startswith('<div hx-swap-oob="afterbegin:#conversation-list">')
    assert f'id="conversation-{conversation.pk}-item"' in entry
    assert f'<span id="conversation-{conversation.pk}-title">Owner&#x27;s chat</span>' in entry
    assert f'id="conversation-{other.pk}-item"' not in entry
    assert await outsider_tab.receive_nothing(timeout=0.5)
    await outsider_tab.disconnect()


def test_a_pinned_conversation_keeps_its_mark_in_the_sidebar_frame(owner):
    pinned = ConversationFactory(owner=owner, pinned=True)
    assert 'class="conversation-item is-pinned"' in frames.sidebar_entry_frame(pinned)


def test_a_new_conversation_has_a_hidden_token_total_until_a_reply_reports_usage(
    owner_client, conversation
):
    MessageFactory(conversation=conversation, role="user", content="Hello")
    MessageFactory(conversation=conversation, role="assistant", status="pending", content="")

    page = owner_client.get(conversation.get_absolute_url()).content.decode()

    assert '<span class="chat-usage" id="chat-usage"' in page
    usage = page[page.index('id="chat-usage"') :]
    assert usage[: usage.index(">")].endswith(" hidden")


def test_the_page_shows_the_token_total_of_every_version(owner_client, conversation):
    reply = _answered(conversation)
    MessageFactory(
        conversation=conversation,
        parent=reply.parent,
        role="assistant",
        prompt_tokens=3,
        completion_tokens=4,
        reasoning_tokens=2,
    )

    page = owner_client.get(conversation.get_absolute_url()).content.decode()

    assert "13 in · 9 out · 2 reasoning</span>" in page
    assert services.conversation_usage(conversation_id=conversation.pk)["prompt_tokens"] == 13


def test_only_the_reply_at_the_end_of_the_branch_renders_actions(owner_client, conversation):
    first = _answered(conversation)
    second = _answered(conversation)

    page = owner_client.get(conversation.get_absolute_url()).content.decode()

    assert f'<div class="message-actions" id="{first.dom_id}-actions"></div>' in page
    actions = page[page.index(f'id="{second.dom_id}-actions"') :]
    assert ">Regenerate</button>" in actions[: actions.index("</div>")]
