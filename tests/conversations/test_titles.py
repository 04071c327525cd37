"""A new conversation is named by the model after its first reply, in a separate request."""

import pytest
from asgiref.sync import sync_to_async

from conversations import frames, titles
from conversations.models import Conversation
from conversations.upstream import client as upstream
from tests.factories import MessageFactory
from tests.generation_helpers import communicator_for, send_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _titles_on(settings):
    settings.WEBCHAT_MODEL_TITLES = True


async def _exchange(conversation, question: str = "Plan a trip to Seoul", answer: str = "Sure."):
    """A first question and its complete reply, stored."""
    question_message = await sync_to_async(MessageFactory)(
        conversation=conversation, role="user", content=question
    )
    reply = await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", content=answer
    )
    return question_message, reply


def _title_requests(fake_upstream) -> list[dict]:
    return [request.body for request in fake_upstream.requests if not request.body.get("stream")]


async def test_a_new_conversation_is_named_by_the_model_after_its_first_reply(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(reply="Here is a plan for Seoul.", completion='"Seoul Trip Plan"\n')
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]

    await send_message(async_owner_client, conversation, "Plan a trip to Seoul, please")
    frame = ""
    while 'id="chat-title"' not in frame:
        frame = await communicator.receive_from(timeout=10)
    await communicator.disconnect()

    await conversation.arefresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Seoul Trip Plan", "model")
    assert frame == (
        '<span id="chat-title" hx-swap-oob="innerHTML">Seoul Trip Plan</span>'
        f'<span id="conversation-{conversation.pk}-title" hx-swap-oob="innerHTML">'
        "Seoul Trip Plan</span>"
    )
    [request] = _title_requests(fake_upstream)
    assert request["stream"] is False
    assert "stream_options" not in request
    assert request["model"] == conversation.model
    assert request["messages"] == [
        {"role": "system", "content": titles.INSTRUCTION},
        {"role": "user", "content": "Plan a trip to Seoul, please"},
    ]
    page = (await async_owner_client.get(conversation.get_absolute_url())).content.decode()
    assert '<h1 class="chat-title" id="chat-title">Seoul Trip Plan</h1>' in page
    assert f'<span id="conversation-{conversation.pk}-title">Seoul Trip Plan</span>' in page


async def test_the_request_is_short_however_long_the_first_message(conversation, fake_upstream):
    await _exchange(conversation, question="word " * 5000)

    await titles.title_generate(conversation.pk)

    [request] = _title_requests(fake_upstream)
    assert len(request["messages"][1]["content"]) == titles.PROMPT_MAX_CHARS


async def test_the_title_is_escaped_in_the_page_and_the_frame(conversation, fake_upstream):
    fake_upstream.reset(completion="<img src=x onerror=alert(1)>")
    await _exchange(conversation)

    frame = frames.title_frame(conversation.pk, "<img src=x onerror=alert(1)>")
    await titles.title_generate(conversation.pk)

    await conversation.arefresh_from_db()
    assert conversation.title == "<img src=x onerror=alert(1)>"
    assert "<img" not in frame
    assert "&lt;img src=x onerror=alert(1)&gt;" in frame


@pytest.mark.parametrize("failure", ["http_500", "http_401", "malformed_chunk"])
async def test_the_first_words_stay_when_the_title_request_fails(
    conversation, fake_upstream, failure
):
    fake_upstream.reset(failure=failure)
    await _exchange(conversation)
    before = conversation.title

    await titles.title_generate(conversation.pk)

    await conversation.arefresh_from_db()
    assert (conversation.title, conversation.title_source) == (before, "first_words")
    assert len(_title_requests(fake_upstream)) == 1


async def test_the_first_words_stay_when_the_model_is_too_slow(
    conversation, fake_upstream, monkeypatch
):
    monkeypatch.setattr(titles, "TIMEOUT_SECONDS", 0.2)
    fake_upstream.reset(first_token_delay=5.0, completion="Too late")
    await _exchange(conversation)

    await titles.title_generate(conversation.pk)

    await conversation.arefresh_from_db()
    assert conversation.title_source == "first_words"


@pytest.mark.parametrize("answer", ["", "   \n\n", '""', "“ ”", "**"])
async def test_an_empty_title_is_refused(conversation, fake_upstream, answer):
    fake_upstream.reset(completion=answer)
    await _exchange(conversation)
    before = conversation.title

    await titles.title_generate(conversation.pk)

    await conversation.arefresh_from_db()
    assert (conversation.title, conversation.title_source) == (before, "first_words")


async def test_a_title_the_user_chose_is_never_replaced(conversation, fake_upstream):
    await _exchange(conversation)
    await Conversation.objects.filter(pk=conversation.pk).aupdate(
        title="My own title", title_source="user"
    )

    await titles.title_generate(conversation.pk)

    await conversation.arefresh_from_db()
    assert (conversation.title, conversation.title_source) == ("My own title", "user")
    assert _title_requests(fake_upstream) == []


async def test_a_rename_while_the_model_writes_wins(conversation, fake_upstream, monkeypatch):
    fake_upstream.reset(completion="Model title")
    await _exchange(conversation)
    client = upstream.get_client()

    class RenamedMeanwhile:
        async def complete_chat(self, request):
            await Conversation.objects.filter(pk=conversation.pk).aupdate(
                title="Renamed meanwhile", title_source="user"
            )
            return await client.complete_chat(request)

    monkeypatch.setattr(titles, "get_client", RenamedMeanwhile)
    await titles.title_generate(conversation.pk)

    await conversation.arefresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Renamed meanwhile", "user")


async def test_only_the_first_reply_names_the_conversation(conversation, fake_upstream):
    await _exchange(conversation)
    _question, second = await _exchange(conversation, "And then?", "Then Busan.")

    await titles.title_after_reply(second)

    assert _title_requests(fake_upstream) == []


async def test_a_conversation_of_images_only_is_named_after_its_first_reply(
    conversation, fake_upstream
):
    fake_upstream.reset(completion="A whiteboard sketch")
    await _exchange(conversation, question="", answer="A **whiteboard** with a sketch of a bridge.")

    await titles.title_generate(conversation.pk)

    (request,) = _title_requests(fake_upstream)
    assert request["messages"][-1]["content"] == "A whiteboard with a sketch of a bridge."
    await conversation.arefresh_from_db()
    assert conversation.title == "A whiteboard sketch"


async def test_a_title_written_in_markdown_is_stored_as_plain_text(conversation, fake_upstream):
    fake_upstream.reset(completion="Here is a **longer** answer about `asyncio`")
    await _exchange(conversation)

    await titles.title_generate(conversation.pk)

    await conversation.arefresh_from_db()
    assert conversation.title == "Here is a longer answer about asyncio"


async def test_the_demo_model_names_conversations_too(conversation, settings):
    settings.WEBCHAT_DEMO_MODE = True
    upstream.reset_clients()
    await _exchange(conversation, question="Plan a trip to Seoul next spring")
    try:
        await titles.title_generate(conversation.pk)
    finally:
        upstream.reset_clients()

    await conversation.arefresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Plan a trip to Seoul", "model")


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Seoul Trip Plan", "Seoul Trip Plan"),
        ('"Seoul Trip Plan"', "Seoul Trip Plan"),
        ("“Seoul Trip Plan”.", "Seoul Trip Plan"),
        ("**Title:** Seoul Trip Plan", "Seoul Trip Plan"),
        ("# Seoul Trip Plan\n\nA plan for a trip.", "Seoul Trip Plan"),
        ("\n\n  Seoul   Trip\tPlan  \n", "Seoul Trip Plan"),
        ('The "best" trip', "The best trip"),
        ("Mom's recipe", "Mom's recipe"),
        ("서울 여행 계획", "서울 여행 계획"),
        ("Zero\u200bwidth\x07bell", "Zerowidthbell"),
        ("word " * 30, "word word word word word word word word word word word…"),
        ("x" * 100, "x" * 59 + "…"),
        ("", None),
        ('""', None),
        ("Title:", None),
    ],
)
def test_the_answer_is_cleaned_into_a_title(answer, title):
    cleaned = titles.title_clean(answer)

    assert cleaned == title
    assert cleaned is None or len(cleaned) <= titles.TITLE_MAX_CHARS
