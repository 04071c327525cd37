"""Real providers' recordings (tests/data/recordings) replayed through the whole chat path:
the view sends the message, the generation reads the recording over HTTP, the socket shows
it, and what is stored matches the manifest's independent reading."""

import html
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from accounts import limits
from conversations.models import Message
from conversations.upstream import failures, finish_reasons
from conversations.upstream.error_bodies import shorten
from review.models import ModelPrice
from tests.generation_helpers import (
    HTMX,
    reply_followed,
)
from tests.recordings import ERRORS, STREAMS, StoredUsage, error_recording, stream_recording

pytestmark = pytest.mark.django_db(transaction=True)


def _by_file(entries: list[dict], name: str) -> dict:
    (entry,) = [entry for entry in entries if entry["file"] == name]
    return entry


@pytest.mark.parametrize("entry", STREAMS, ids=[entry["file"] for entry in STREAMS])
async def test_a_recorded_stream_is_stored_and_shown_as_recorded(
    entry, async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(recording=stream_recording(entry, seed=entry["file"]))

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert reply.content == entry["answer"]
    assert reply.reasoning == entry["reasoning"]
    assert (reply.thinking_ms is not None) == bool(reply.reasoning)
    final = frames[-1]
    assert f'data-status="{reply.status}"' in final
    assert "&lt;thought&gt;" not in final
    if entry["error"]:
        assert reply.status == ("interrupted" if reply.content or reply.reasoning else "error")
        assert reply.error_detail == shorten(entry["error"])
        assert html.escape(reply.error_detail) in final
        return
    expected_usage = StoredUsage.of(entry)
    if expected_usage is not None:
        assert StoredUsage.read(reply) == expected_usage
    assert reply.finish_reason == entry["finish_reason"].lower()
    if entry["answer"]:
        assert (reply.status, reply.error) == ("complete", "")
    else:  # an empty reply says why, and offers Retry
        assert reply.status == ("interrupted" if reply.reasoning else "error")
        assert reply.error_code == finish_reasons.EMPTY
        assert reply.error
        assert html.escape(reply.error) in final
        assert "Retry" in final


async def test_a_reply_that_spent_its_tokens_thinking_says_so(
    async_owner_client, conversation, owner, fake_upstream
):
    entry = _by_file(STREAMS, "openai-gpt-5-nano-length-reasoning-only.sse")
    fake_upstream.reset(recording=stream_recording(entry, seed="length"))

    reply, _frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.content, reply.finish_reason, reply.error_code) == ("", "length", "empty")
    assert "token limit" in reply.error
    assert reply.reasoning_tokens == entry["reasoning_tokens"]


async def test_hidden_reasoning_counts_towards_quotas_and_cost(
    async_owner_client, conversation, owner, fake_upstream
):
    entry = _by_file(STREAMS, "xai-grok-4-fast-hidden-reasoning.sse")
    await ModelPrice.objects.acreate(
        model="recorded-model", input_price_per_million=1, output_price_per_million=10
    )
    fake_upstream.reset(recording=stream_recording(entry, seed="quota"))

    reply, frames = await reply_followed(async_owner_client, conversation, owner)
    await Message.objects.filter(pk=reply.pk).aupdate(model="recorded-model")
    usage = await sync_to_async(limits.usage_for)(owner.pk)

    hidden = entry["total_tokens"] - entry["prompt_tokens"] - entry["completion_tokens"]
    assert hidden > 0
    assert reply.reasoning_tokens == hidden
    assert usage.today.tokens == entry["total_tokens"]
    output = entry["completion_tokens"] + hidden
    assert usage.today.cost == (entry["prompt_tokens"] * 1 + output * 10) / Decimal(10**6)
    assert f"{hidden} reasoning" in frames[-1]


async def test_thinking_is_never_sent_back_to_the_model(
    async_owner_client, conversation, owner, fake_upstream
):
    entry = _by_file(STREAMS, "mistral-magistral-medium-thinking-and-text-parts.sse")
    fake_upstream.reset(recording=stream_recording(entry, seed="history"))
    first, _frames = await reply_followed(async_owner_client, conversation, owner)
    assert first.reasoning
    assert first.content == entry["answer"]

    fake_upstream.reset()
    await reply_followed(async_owner_client, conversation, owner, "And then?")

    sent = fake_upstream.requests[-1].body["messages"]
    assert {"role": "assistant", "content": entry["answer"]} in sent
    assert not [message for message in sent if first.reasoning[:40] in str(message["content"])]


async def test_gemini_thoughts_in_tags_or_flagged_are_thinking_not_the_answer(
    async_owner_client, conversation, owner, fake_upstream
):
    # The fake speaks Gemini's dialect here: a thought wrapped in tags, then the answer.
    fake_upstream.reset(reply="<thought>Adding up: 2 plus 2.</thought>It is **4**.")

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert reply.reasoning == "Adding up: 2 plus 2."
    assert reply.content == "It is **4**."
    assert not [frame for frame in frames if "thought&gt;" in frame]


@pytest.mark.parametrize(
    ("name", "code", "says"),
    [
        ("openai-insufficient-quota.json", failures.QUOTA, "credit or quota is used up"),
        ("gemini-openai-compat-429-list.json", failures.QUOTA, "credit or quota is used up"),
        ("deepseek-402-insufficient-balance.json", failures.QUOTA, "credit or quota is used up"),
        ("gemini-openai-compat-400-api-key-invalid-list.json", failures.AUTH, "API key"),
        ("azure-400-content-filter.json", failures.CONTENT_FILTER, "content filter"),
        ("openai-400-context-length-exceeded.json", failures.CONTEXT_LENGTH, "too long"),
    ],
)
async def test_a_recorded_refusal_is_explained_with_the_providers_words(
    name, code, says, async_owner_client, conversation, owner, fake_upstream, caplog
):
    entry = _by_file(ERRORS, name)
    fake_upstream.reset(recording=error_recording(entry))

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.error_code) == ("error", code)
    assert says in reply.error
    assert reply.error_detail == shorten(entry["message"])
    assert html.escape(reply.error_detail) in frames[-1]
    assert "Retry" not in frames[-1]
    assert len(fake_upstream.requests) == 1
    if code in (failures.QUOTA, failures.AUTH):
        assert [record for record in caplog.records if record.levelname == "ERROR"]


async def test_a_body_only_retry_delay_is_waited_for(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    entry = _by_file(ERRORS, "gemini-429-retryinfo-34.4s.json")
    settings.WEBCHAT_RATE_LIMIT_MAX_WAIT = 30.0  # shorter than the 34.4 s asked for
    fake_upstream.reset(recording=error_recording(entry))

    reply, _frames = await reply_followed(async_owner_client, conversation, owner)

    assert len(fake_upstream.requests) == 1  # no retry before the provider's time
    assert reply.error_code == failures.RATE_LIMITED
    assert "try again in 35 s" in reply.error


async def test_an_unknown_finish_reason_is_named_in_a_sentence(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(finish_reason="MALFORMED_FUNCTION_CALL")

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.finish_reason) == ("complete", "malformed_function_call")
    assert "a reason this chat does not know" in frames[-1]
    page = await async_owner_client.get(reverse("conversations:detail", args=[conversation.pk]))
    assert "malformed_function_call" in page.content.decode()


async def test_a_reply_stopped_by_a_content_filter_keeps_its_text_and_says_why(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(finish_reason="content_filter")

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert reply.status == "complete"
    assert reply.content
    assert "Stopped by the provider&#x27;s content filter." in frames[-1]


async def test_an_empty_reply_filtered_by_the_provider_says_why_and_offers_retry(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(reply="", finish_reason="content_filter")

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.error_code) == ("error", finish_reasons.EMPTY)
    assert reply.error == "The provider's content filter blocked this reply."
    assert "Retry" in frames[-1]
    response = await async_owner_client.post(
        reverse("conversations:reply-regenerate", args=[conversation.pk, reply.pk]), headers=HTMX
    )
    assert response.status_code == 200
