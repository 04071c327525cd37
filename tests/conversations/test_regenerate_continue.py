"""Regenerate (a new version of a reply; "Retry" after a failure) and Continue (more text
in the same reply)."""

import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from conversations import services
from conversations.models import Message
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import (
    HTMX,
    Page,
    communicator_for,
    finished,
    frames_until_final,
    frames_until_progress,
    frames_until_render,
)

PARTIAL = "The first half of an answer"


def _exchange(conversation, **reply_fields) -> Message:
    MessageFactory(conversation=conversation, role="user", content="Hello")
    fields = {
        "role": "assistant",
        "status": "interrupted",
        "content": PARTIAL,
        "error": "It broke.",
        "error_code": "stream",
    }
    return MessageFactory(conversation=conversation, **fields | reply_fields)


def _url(action: str, reply: Message) -> str:
    return reverse(f"conversations:reply-{action}", args=[reply.conversation_id, reply.pk])


# --- The services ----------------------------------------------------------------------


def test_retry_adds_a_new_version_of_the_reply_and_keeps_the_failed_one(conversation):
    failed = _exchange(conversation)

    retry = services.reply_regenerate(reply=failed, runner="runner.here!1")

    assert (retry.status, retry.role, retry.content) == ("pending", "assistant", "")
    assert retry.parent_id == failed.parent_id
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == retry.pk
    assert retry.runner == "runner.here!1"
    failed.refresh_from_db()
    assert (failed.status, failed.content) == ("interrupted", PARTIAL)


def test_continue_reopens_the_same_reply_keeping_its_text(conversation):
    partial = _exchange(conversation, finish_reason="", time_to_first_token_ms=900)

    continued = services.reply_continue(reply=partial, runner="runner.here!1")

    assert continued.pk == partial.pk
    stored = Message.objects.get(pk=partial.pk)
    assert (stored.status, stored.content, stored.error, stored.error_code) == (
        "pending",
        PARTIAL,
        "",
        "",
    )
    assert stored.time_to_first_token_ms is None
    assert stored.runner == continued.runner == "runner.here!1"


def test_a_reply_cut_short_by_the_token_limit_can_be_continued_and_retried(conversation):
    cut = _exchange(conversation, status="complete", finish_reason="length", error="")
    cut.is_branch_end = True
    assert cut.offers_continue
    assert cut.offers_retry
    services.reply_continue(reply=cut)


def test_a_complete_reply_can_be_regenerated(conversation):
    complete = _exchange(conversation, status="complete", error="", error_code="")
    complete.is_branch_end = True
    assert complete.offers_regenerate
    assert not complete.offers_retry
    regenerated = services.reply_regenerate(reply=complete)
    assert regenerated.parent_id == complete.parent_id


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"status": "streaming"}, "Only a finished reply"),
        ({"role": "user"}, "Only a finished reply"),
    ],
)
def test_regenerate_refuses_a_reply_being_written_or_a_user_message(conversation, fields, refusal):
    reply = _exchange(conversation, **fields)
    with pytest.raises(services.MessageRefused, match=refusal):
        services.reply_regenerate(reply=reply)
    assert conversation.messages.count() == 2


@pytest.mark.parametrize(
    "fields",
    [{"status": "error", "content": ""}, {"status": "complete"}, {"status": "pending"}],
)
def test_continue_refuses_a_reply_without_text_or_that_did_not_stop_early(conversation, fields):
    reply = _exchange(conversation, **fields)
    with pytest.raises(services.MessageRefused, match="Only a reply that was stopped"):
        services.reply_continue(reply=reply)
    reply.refresh_from_db()
    assert reply.status == fields["status"]


def test_only_the_latest_reply_can_be_regenerated_or_continued(conversation):
    older = _exchange(conversation)
    MessageFactory(conversation=conversation, role="user", content="Never mind")
    for action in (services.reply_regenerate, services.reply_continue):
        with pytest.raises(services.MessageRefused, match="Only the latest reply"):
            action(reply=older)
    assert conversation.messages.count() == 3


def test_a_second_retry_is_refused_while_the_first_is_being_written(conversation):
    failed = _exchange(conversation)
    services.reply_regenerate(reply=failed)
    for action in (services.reply_regenerate, services.reply_continue):
        with pytest.raises(services.MessageRefused, match="still being written"):
            action(reply=failed)
    assert conversation.messages.count() == 3


def test_history_forwards_only_the_shown_version_of_each_answer(conversation):
    question = MessageFactory(conversation=conversation, role="user", content="one")
    for content, status in (("cut", "interrupted"), ("", "error"), ("two", "complete")):
        MessageFactory(
            conversation=conversation,
            parent=question,
            role="assistant",
            content=content,
            status=status,
        )
    _user_message, reply = services.message_send(conversation=conversation, text="three")

    assert services.history_for_reply(reply) == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]


def test_a_retried_reply_is_not_shown_to_the_model_answering_again(conversation):
    failed = _exchange(conversation)
    retry = services.reply_regenerate(reply=failed)

    assert services.history_for_reply(retry) == [{"role": "user", "content": "Hello"}]


def test_a_continued_reply_shows_the_model_its_own_text_and_asks_it_to_go_on(conversation):
    partial = services.reply_continue(reply=_exchange(conversation))

    history = services.history_for_reply(partial)

    assert history == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": PARTIAL},
        {"role": "user", "content": services.CONTINUE_INSTRUCTION},
    ]
    # The instruction is sent, never stored.
    assert conversation.messages.count() == 2


# --- Through the views, the fake upstream and a socket ---------------------------------


@pytest.mark.django_db(transaction=True)
async def test_retry_answers_again_in_a_new_reply(async_owner_client, conversation, fake_upstream):
    failed = await sync_to_async(_exchange)(conversation)
    fake_upstream.reset(reply="A fresh answer.")

    response = await async_owner_client.post(_url("regenerate", failed), headers=HTMX)

    assert response.status_code == 200
    retry = await Message.objects.filter(conversation=conversation).alast()
    assert retry.pk != failed.pk
    shown = response.content.decode()
    assert f'id="{retry.dom_id}"' in shown
    assert f'id="{failed.dom_id}"' not in shown
    assert "2 / 2" in shown
    retry = await finished(retry)
    assert (retry.status, retry.content) == ("complete", "A fresh answer.")
    await failed.arefresh_from_db()
    assert (failed.status, failed.content) == ("interrupted", PARTIAL)
    assert fake_upstream.requests[0].body["messages"] == [{"role": "user", "content": "Hello"}]


def _progress_ends(frames: list[str], reply) -> list[int]:
    """The text offsets at which the frames' progress parts (open text or code) end."""
    progress = rf'id="{reply.dom_id}-(?:tail|code)" [^>]*data-end="(\d+)"'
    return [int(end) for frame in frames for end in re.findall(progress, frame)]


@pytest.mark.django_db(transaction=True)
async def test_continue_appends_to_the_reply_with_offsets_after_its_text(
    async_owner_client, conversation, owner, fake_upstream
):
    partial = await sync_to_async(_exchange)(conversation, prompt_tokens=10, completion_tokens=5)
    # Held after two tokens, so that a frame shows the reply while it is being written.
    fake_upstream.reset(reply=" and the second half.", hold_after=2)
    communicator = communicator_for(conversation.pk, owner)
    await communicator.connect()
    page = Page(partial.dom_id)
    for frame in await frames_until_render(communicator, partial):  # the state on connect
        page.apply(frame)

    response = await async_owner_client.post(_url("continue", partial), headers=HTMX)
    frames = await frames_until_progress(communicator, partial)
    fake_upstream.release()
    frames += await frames_until_final(communicator, partial)
    await communicator.disconnect()

    assert response.status_code == 200
    assert 'data-status="pending"' in response.content.decode()
    partial = await finished(partial)
    assert partial.status == "complete"
    assert partial.content == PARTIAL + " and the second half."
    assert partial.completion_tokens == 5 + len(fake_upstream.config.reply_tokens())
    assert min(_progress_ends(frames, partial)) > len(PARTIAL)
    for frame in frames:
        page.apply(frame)
        assert page.text.strip().startswith(PARTIAL)
    assert (page.status, page.text.strip()) == ("complete", partial.content)
    sent = fake_upstream.requests[0].body["messages"]
    assert sent[-2:] == [
        {"role": "assistant", "content": PARTIAL},
        {"role": "user", "content": services.CONTINUE_INSTRUCTION},
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["regenerate", "continue"])
async def test_without_htmx_regenerate_and_continue_redirect_to_the_conversation(
    async_owner_client, conversation, fake_upstream, action
):
    reply = await sync_to_async(_exchange)(conversation)

    response = await async_owner_client.post(_url(action, reply))

    assert response.status_code == 302
    assert response.url == conversation.get_absolute_url()
    await finished(await Message.objects.filter(conversation=conversation).alast())


@pytest.mark.parametrize("action", ["regenerate", "continue"])
@pytest.mark.parametrize("fields", [{"status": "streaming"}, {"role": "user"}])
def test_a_refused_regenerate_or_continue_is_explained_and_changes_nothing(
    owner_client, conversation, action, fields
):
    reply = _exchange(conversation, **fields)

    response = owner_client.post(_url(action, reply), headers=HTMX)

    assert response.status_code == 422
    assert response["HX-Retarget"] == "#composer-error"
    assert "Only a" in response.content.decode()
    assert conversation.messages.count() == 2
    assert Message.objects.get(pk=reply.pk).status == fields.get("status", "interrupted")


@pytest.mark.parametrize("action", ["regenerate", "continue"])
def test_another_users_reply_answers_404_and_changes_nothing(outsider_client, conversation, action):
    reply = _exchange(conversation)
    assert outsider_client.post(_url(action, reply), headers=HTMX).status_code == 404
    assert conversation.messages.count() == 2
    assert Message.objects.get(pk=reply.pk).status == "interrupted"


@pytest.mark.parametrize("action", ["regenerate", "continue"])
def test_a_reply_from_another_of_my_conversations_answers_404(
    owner_client, owner, conversation, action
):
    reply = _exchange(ConversationFactory(owner=owner))
    url = reverse(f"conversations:reply-{action}", args=[conversation.pk, reply.pk])
    assert owner_client.post(url, headers=HTMX).status_code == 404


@pytest.mark.parametrize("action", ["regenerate", "continue"])
def test_regenerate_and_continue_require_post(owner_client, conversation, action):
    reply = _exchange(conversation)
    assert owner_client.get(_url(action, reply)).status_code == 405


def test_the_buttons_are_forms_that_post_with_htmx(owner_client, conversation):
    reply = _exchange(conversation)
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    for action in ("regenerate", "continue"):
        url = _url(action, reply)
        assert f'<form method="post" action="{url}" hx-post="{url}"' in page
    assert "csrfmiddlewaretoken" in page
