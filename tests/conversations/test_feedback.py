"""Feedback on replies: thumbs up or down with a note, given by the conversation's owner on
finished replies only; the admin's filter and report of it, and its privacy."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from conversations import feedback, frames
from conversations.models import Feedback, Message
from tests.factories import ConversationFactory, MessageFactory, user_with_role
from tests.generation_helpers import (
    communicator_for,
    finished,
    frames_until_final,
    frames_until_render,
    latest_reply,
    send_message,
)

HTMX = {"HX-Request": "true"}
CHANGELIST = reverse("admin:conversations_conversation_changelist")
USAGE = reverse("admin:conversations_conversation_usage")


def _reply(conversation, **fields) -> Message:
    MessageFactory(conversation=conversation, content="A question")
    values = {"role": Message.Role.ASSISTANT, "content": "An answer", "model": "test-model"}
    return MessageFactory(conversation=conversation, **(values | fields))


def _url(reply: Message) -> str:
    return reverse("conversations:reply-feedback", args=[reply.conversation_id, reply.pk])


def _stored(reply: Message) -> tuple[int, str] | None:
    return Feedback.objects.filter(message=reply).values_list("rating", "note").first()


def _pressed(html: str) -> dict[str, str]:
    """Each thumb's aria-pressed, from a rendered feedback fragment."""
    found = {}
    for value in ("up", "down"):
        start = html.index(f'value="{value}" aria-pressed="') + len(f'value="{value}" ')
        found[value] = html[start:].split('"')[1]
    return found


@pytest.fixture
def reply(conversation) -> Message:
    return _reply(conversation)


def test_a_thumb_sets_the_same_again_clears_and_the_other_switches(owner_client, reply):
    response = owner_client.post(_url(reply), {"rating": "up"}, headers=HTMX)
    assert response.status_code == 200
    assert _stored(reply) == (Feedback.Rating.UP, "")
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div class="feedback" id="{reply.dom_id}-feedback"')
    assert _pressed(html) == {"up": "true", "down": "false"}
    assert '<details class="feedback-note">' in html  # a note is offered, closed

    response = owner_client.post(_url(reply), {"rating": "down"}, headers=HTMX)
    assert _stored(reply) == (Feedback.Rating.DOWN, "")
    assert _pressed(response.content.decode()) == {"up": "false", "down": "true"}
    # A thumb down asks what was wrong at once.
    assert '<details class="feedback-note" open>' in response.content.decode()

    response = owner_client.post(_url(reply), {"rating": "down"}, headers=HTMX)
    assert _stored(reply) is None
    assert _pressed(response.content.decode()) == {"up": "false", "down": "false"}
    assert "feedback-note" not in response.content.decode()


def test_a_note_is_saved_with_the_rating_and_kept_when_the_thumb_switches(owner_client, reply):
    owner_client.post(_url(reply), {"rating": "down"}, headers=HTMX)
    response = owner_client.post(
        _url(reply), {"rating": "down", "note": "  It made up a function.  "}, headers=HTMX
    )
    assert response.status_code == 200
    assert _stored(reply) == (Feedback.Rating.DOWN, "It made up a function.")
    assert "It made up a function.</textarea>" in response.content.decode()
    owner_client.post(_url(reply), {"rating": "up"}, headers=HTMX)
    assert _stored(reply) == (Feedback.Rating.UP, "It made up a function.")


def test_a_too_long_note_is_refused_with_a_clear_error_and_its_text_kept(owner_client, reply):
    owner_client.post(_url(reply), {"rating": "down", "note": "Wrong."}, headers=HTMX)
    long_note = "x" * 1001
    response = owner_client.post(_url(reply), {"rating": "down", "note": long_note}, headers=HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert "A note may have at most 1000 characters; this one has 1001." in html
    assert f"{long_note}</textarea>" in html
    assert 'aria-invalid="true"' in html
    assert _stored(reply) == (Feedback.Rating.DOWN, "Wrong.")
    # Without htmx, a page says the same.
    response = owner_client.post(_url(reply), {"rating": "down", "note": long_note})
    assert response.status_code == 422
    assert "at most 1000 characters" in response.content.decode()
    owner_client.post(_url(reply), {"rating": "down", "note": "y" * 1000}, headers=HTMX)
    assert _stored(reply) == (Feedback.Rating.DOWN, "y" * 1000)


def test_without_htmx_it_goes_back_to_the_reply(owner_client, reply):
    response = owner_client.post(_url(reply), {"rating": "up"})
    assert response.status_code == 302
    assert response.url == f"{reply.conversation.get_absolute_url()}#{reply.dom_id}"
    assert _stored(reply) == (Feedback.Rating.UP, "")


def test_a_rating_must_be_up_or_down(owner_client, reply):
    response = owner_client.post(_url(reply), {"rating": "sideways"}, headers=HTMX)
    assert response.status_code == 400
    assert _stored(reply) is None


def test_nobody_else_may_rate_a_reply(outsider_client, reply, db):
    reviewer = user_with_role(roles.REVIEWER, username="reviewer")
    staff_client = Client()
    staff_client.force_login(reviewer)
    for client in (outsider_client, staff_client):
        response = client.post(_url(reply), {"rating": "down", "note": "Mine"}, headers=HTMX)
        assert response.status_code == 404
    assert _stored(reply) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"role": Message.Role.USER},
        {"status": Message.Status.PENDING, "content": ""},
        {"status": Message.Status.STREAMING},
        {"status": Message.Status.ERROR, "error": "It failed."},
        {"status": Message.Status.INTERRUPTED},
        {"status": Message.Status.STOPPED},
        {"finish_reason": "length"},  # cut short by the token limit
    ],
)
def test_only_finished_replies_can_be_rated(owner_client, conversation, fields):
    message = _reply(conversation, **fields)
    assert not message.accepts_feedback
    response = owner_client.post(_url(message), {"rating": "up"}, headers=HTMX)
    assert response.status_code == 404
    assert _stored(message) is None
    with pytest.raises(feedback.FeedbackRefused):
        feedback.feedback_set(message=message, user=conversation.owner, rating=1)
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    assert f'id="{message.dom_id}-feedback"' not in page


def test_the_page_shows_the_thumbs_of_finished_replies_as_given(owner_client, conversation):
    rated, unrated = _reply(conversation), _reply(conversation)
    feedback.feedback_set(message=rated, user=conversation.owner, rating=-1, note="Too long")
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    rated_html = page[page.index(f'id="{rated.dom_id}-feedback"') :]
    assert _pressed(rated_html) == {"up": "false", "down": "true"}
    assert "Too long</textarea>" in rated_html
    unrated_html = page[page.index(f'id="{unrated.dom_id}-feedback"') :]
    assert _pressed(unrated_html) == {"up": "false", "down": "false"}
    question = conversation.messages.filter(role=Message.Role.USER).first()
    assert f'id="{question.dom_id}-feedback"' not in page


def test_the_stored_state_sent_to_a_page_shows_the_feedback_given(conversation):
    reply = _reply(conversation)
    feedback.feedback_set(message=reply, user=conversation.owner, rating=1)
    state, active = frames.page_state_frames(conversation.pk)
    assert active is None
    final = state[-1]
    assert f'id="{reply.dom_id}-feedback"' in final
    assert _pressed(final[final.index(f'id="{reply.dom_id}-feedback"') :])["up"] == "true"


@pytest.mark.django_db(transaction=True)
async def test_a_reply_shows_its_thumbs_once_it_is_complete_not_while_streaming(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(reply="Streaming *works* fine", token_count=3, token_interval=0.01)
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]
    await send_message(async_owner_client, conversation, "hi")
    reply = await latest_reply(conversation)
    received = await frames_until_final(communicator, reply)
    reply = await finished(reply)
    await communicator.disconnect()
    assert reply.status == Message.Status.COMPLETE
    assert all("feedback" not in frame for frame in received[:-1])
    final = received[-1]
    assert f'id="{reply.dom_id}-feedback"' in final
    assert f'action="{_url(reply)}"' in final
    # Rendered outside any request: the page's htmx headers carry the CSRF token.
    assert "csrfmiddlewaretoken" not in final


@pytest.mark.django_db(transaction=True)
async def test_the_conversations_other_tabs_are_shown_the_change(async_owner_client, owner):
    conversation = await sync_to_async(ConversationFactory)(owner=owner)
    reply = await sync_to_async(_reply)(conversation)
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]
    await frames_until_render(communicator, reply)  # the stored state, sent on connect

    response = await async_owner_client.post(_url(reply), {"rating": "up"}, headers=HTMX)
    frame = await communicator.receive_from(timeout=10)
    await communicator.disconnect()
    assert frame.lstrip().startswith(
        f'<div class="feedback" id="{reply.dom_id}-feedback" data-state="1:'
    )
    assert 'hx-swap-oob="outerHTML"' in frame
    assert _pressed(frame) == {"up": "true", "down": "false"}
    # The tab that gave it has the same state, and so keeps what it shows (chat.js).
    state = response.content.decode().split('data-state="')[1].split('"')[0]
    assert f'data-state="{state}"' in frame


# --- The admin ------------------------------------------------------------------------------


@pytest.fixture
def reviewer_client(db) -> Client:
    client = Client()
    client.force_login(user_with_role(roles.REVIEWER, username="reviewer"))
    return client


def _rated_conversations(owner) -> dict[str, object]:
    conversations = {}
    for name, rating in (("liked", 1), ("disliked", -1), ("unrated", None)):
        conversation = ConversationFactory(owner=owner, title=f"The {name} one")
        reply = _reply(conversation)
        if rating is not None:
            feedback.feedback_set(message=reply, user=owner, rating=rating, note=f"Note {name}")
        conversations[name] = conversation
    return conversations


@pytest.mark.parametrize(
    ("value", "found"), [("up", {"liked"}), ("down", {"disliked"}), ("none", {"unrated"})]
)
def test_reviewers_filter_conversations_by_feedback(reviewer_client, owner, value, found):
    conversations = _rated_conversations(owner)
    response = reviewer_client.get(CHANGELIST, {"feedback": value})
    assert response.status_code == 200
    shown = {row.pk for row in response.context["cl"].result_list}
    assert shown == {conversations[name].pk for name in found}
    html = response.content.decode()
    assert "Thumbs up</a>" in html
    assert "Thumbs down</a>" in html


def test_the_review_page_shows_the_rating_and_its_note_only_while_staff_may_read(
    reviewer_client, owner, settings
):
    conversation = _rated_conversations(owner)["disliked"]
    page = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    html = reviewer_client.get(page).content.decode()
    assert "The user rated this reply down." in html
    assert "Note disliked" in html

    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    html = reviewer_client.get(page).content.decode()
    assert "The user rated this reply down." in html
    assert "Note disliked" not in html
    assert "(with a note)" in html


def test_the_note_cannot_be_guessed_through_the_list_filters(reviewer_client, owner, settings):
    _rated_conversations(owner)
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    for lookup in ("messages__feedback__note", "messages__feedback__note__startswith"):
        response = reviewer_client.get(CHANGELIST, {lookup: "Note"})
        assert response.status_code == 400, lookup


def test_the_usage_report_shows_feedback_per_model_and_day(reviewer_client, owner, settings):
    conversation = ConversationFactory(owner=owner)
    yesterday = timezone.now() - timedelta(days=1)
    ratings = [
        ("model-a", 1, None),
        ("model-a", 1, None),
        ("model-a", -1, None),
        ("model-a", None, None),
        ("model-b", -1, None),
        ("model-a", -1, yesterday),
    ]
    for model, rating, when in ratings:
        reply = _reply(conversation, model=model, prompt_tokens=10, completion_tokens=5)
        if rating is not None:
            feedback.feedback_set(message=reply, user=owner, rating=rating)
        if when is not None:
            Message.objects.filter(pk=reply.pk).update(created_at=when)
    today, day_before = timezone.localdate(), timezone.localdate() - timedelta(days=1)

    response = reviewer_client.get(USAGE)
    assert response.status_code == 200
    rows = [
        (row.day, row.model, row.replies, row.tokens, row.up, row.down, row.satisfaction)
        for row in response.context["feedback_rows"]
    ]
    assert rows == [
        (day_before, "model-a", 1, 15, 0, 1, 0),
        (today, "model-a", 4, 60, 2, 1, 67),
        (today, "model-b", 1, 15, 0, 1, 0),
    ]
    total = response.context["feedback_total"]
    figures = (total.replies, total.tokens, total.up, total.down, total.satisfaction)
    assert figures == (6, 90, 2, 3, 40)
    html = response.content.decode()
    assert "Replies and feedback per model and day" in html
    assert "<td>67 %</td>" in html
    assert "<td>40 %</td>" in html

    # Replies nobody rated have no satisfaction to show.
    _reply(ConversationFactory(owner=owner), model="model-c")
    response = reviewer_client.get(USAGE, {"start": today.isoformat(), "user": owner.pk})
    unrated = response.context["feedback_rows"][-1]
    assert (unrated.model, unrated.replies, unrated.satisfaction) == ("model-c", 1, None)
    assert "<td>\N{EN DASH}</td>" in response.content.decode()
