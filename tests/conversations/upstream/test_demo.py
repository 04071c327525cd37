"""The built-in demo model continues its own canned reply after Stop, as a model would."""

import functools

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from conversations import services
from conversations.models import Message
from conversations.upstream import client as upstream
from conversations.upstream import demo
from tests.factories import MessageFactory
from tests.generation_helpers import HTMX, finished

QUESTION = {"role": "user", "content": "Hello there"}
WHOLE = demo.demo_reply([QUESTION])


def _continuing(partial: str) -> list[dict]:
    return [
        QUESTION,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": services.CONTINUE_INSTRUCTION},
    ]


def _stopped_exchange(conversation, partial: str) -> Message:
    MessageFactory(conversation=conversation, role="user", content=QUESTION["content"])
    return MessageFactory(
        conversation=conversation, role="assistant", status="stopped", content=partial
    )


@pytest.fixture
def demo_mode(settings, monkeypatch):
    """The app's own client on the demo model, without its pauses between words."""
    settings.WEBCHAT_DEMO_MODE = True
    instant = functools.partial(demo.DemoTransport, first_token_delay=0, token_interval=0)
    monkeypatch.setattr(demo, "DemoTransport", instant)
    upstream.reset_clients()
    yield
    upstream.reset_clients()


@pytest.mark.parametrize("cut", [1, 40, len(WHOLE) // 2, len(WHOLE) - 1])
def test_continuing_the_canned_reply_sends_the_rest_of_it(cut):
    assert demo.demo_reply(_continuing(WHOLE[:cut])) == WHOLE[cut:]


@pytest.mark.parametrize("partial", ["Something the demo never wrote", WHOLE])
def test_continuing_any_other_reply_ends_it_briefly(partial):
    rest = demo.demo_reply(_continuing(partial))

    assert rest == demo.NOTHING_TO_ADD
    assert services.CONTINUE_INSTRUCTION not in rest


def test_a_new_question_after_a_reply_is_answered_afresh():
    later = {"role": "user", "content": "And again"}

    reply = demo.demo_reply([QUESTION, {"role": "assistant", "content": WHOLE}, later])

    assert reply == demo.demo_reply([later])
    assert "“And again”" in reply


@pytest.mark.django_db(transaction=True)
async def test_stop_then_continue_completes_the_canned_reply_once(
    async_owner_client, conversation, demo_mode
):
    stopped = await sync_to_async(_stopped_exchange)(conversation, WHOLE[:50])
    url = reverse("conversations:reply-continue", args=[conversation.pk, stopped.pk])

    response = await async_owner_client.post(url, headers=HTMX)
    reply = await finished(stopped)

    assert response.status_code == 200
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, WHOLE)
