"""Rate limits and token quotas: refused before anything is stored or sent upstream."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from accounts import limits
from accounts.models import UserLimits
from conversations import services
from conversations.models import Conversation, Message
from review.models import ModelPrice
from tests.factories import MessageFactory
from tests.generation_helpers import finished

HTMX = {"HX-Request": "true"}


def _earlier_reply(conversation, *, prompt=0, completion=0, ago=timedelta(0), **fields):
    reply = MessageFactory(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        model=conversation.model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        **fields,
    )
    Message.objects.filter(pk=reply.pk).update(created_at=timezone.now() - ago)
    return reply


def _assert_refused(response, error: str, fake_upstream, messages_before: int) -> None:
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#composer-error"
    assert error in response.content.decode()
    assert Message.objects.count() == messages_before
    assert fake_upstream.requests == []


def test_a_message_over_the_rate_limit_is_refused_without_an_upstream_call(
    owner_client, conversation, fake_upstream, settings
):
    settings.WEBCHAT_MESSAGES_PER_MINUTE = 2
    _earlier_reply(conversation)
    _earlier_reply(conversation, ago=timedelta(seconds=30))
    response = owner_client.post(
        reverse("conversations:message-create", args=[conversation.pk]),
        {"text": "One more"},
        headers=HTMX,
    )
    _assert_refused(response, "You have sent 2 messages in the last minute", fake_upstream, 2)


def test_replies_older_than_a_minute_do_not_count_towards_the_rate(conversation, settings):
    settings.WEBCHAT_MESSAGES_PER_MINUTE = 1
    _earlier_reply(conversation, ago=timedelta(seconds=61))
    services.message_send(conversation=conversation, text="Hello")


def test_a_message_over_the_daily_quota_is_refused_without_an_upstream_call(
    owner_client, conversation, fake_upstream, settings
):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 100
    _earlier_reply(conversation, prompt=60, completion=40)
    response = owner_client.post(
        reverse("conversations:message-create", args=[conversation.pk]),
        {"text": "One more"},
        headers=HTMX,
    )
    _assert_refused(response, "You have used your daily quota of 100 tokens", fake_upstream, 1)


def test_a_new_conversation_over_the_monthly_quota_is_refused_and_creates_nothing(
    owner, owner_client, conversation, fake_upstream
):
    UserLimits.objects.create(user=owner, monthly_token_quota=50)
    _earlier_reply(conversation, prompt=50)
    response = owner_client.post(reverse("conversations:create"), {"text": "Hi"}, headers=HTMX)
    _assert_refused(response, "You have used your monthly quota of 50 tokens", fake_upstream, 1)
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("action", ["reply-regenerate", "reply-continue"])
def test_retry_and_continue_over_the_quota_are_refused_without_an_upstream_call(
    action, owner_client, conversation, fake_upstream, settings
):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 10
    MessageFactory(conversation=conversation, content="Question")
    reply = _earlier_reply(
        conversation, prompt=10, status=Message.Status.INTERRUPTED, content="Partial"
    )
    response = owner_client.post(
        reverse(f"conversations:{action}", args=[conversation.pk, reply.pk]), headers=HTMX
    )
    _assert_refused(response, "daily quota", fake_upstream, 2)
    reply.refresh_from_db()
    assert (reply.status, reply.content) == (Message.Status.INTERRUPTED, "Partial")


def test_yesterdays_tokens_count_for_the_month_but_not_for_today(conversation, settings):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 100
    _earlier_reply(conversation, prompt=100, ago=timedelta(days=1))
    services.message_send(conversation=conversation, text="Hello")
    usage = limits.usage_for(conversation.owner_id)
    assert usage.today.tokens == 0
    now = timezone.localtime()
    assert usage.month.tokens == (0 if now.day == 1 else 100)


def test_an_admins_override_replaces_the_default(owner, conversation, settings):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 10
    UserLimits.objects.create(user=owner, daily_token_quota=0)  # unlimited for this user
    _earlier_reply(conversation, prompt=1000)
    services.message_send(conversation=conversation, text="Still allowed")


def test_another_users_usage_does_not_count(conversation, outsider, settings):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 10
    _earlier_reply(conversation, prompt=1000)
    assert limits.usage_for(outsider.pk).today.tokens == 0


def test_usage_is_read_in_one_query_of_messages(owner, conversation, django_assert_num_queries):
    _earlier_reply(conversation, prompt=5, completion=5)
    # The user's overrides, the replies' aggregate (stored and unstored), and the prices.
    with django_assert_num_queries(3):
        limits.usage_for(owner.pk)


def test_the_usage_page_shows_what_is_used_what_is_left_and_the_cost(
    owner_client, conversation, settings
):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 10_000
    ModelPrice.objects.create(
        model=conversation.model,
        input_price_per_million=Decimal("1.00"),
        output_price_per_million=Decimal("2.00"),
    )
    _earlier_reply(conversation, prompt=1000, completion=500)
    page = owner_client.get(reverse("usage")).content.decode()
    assert "1500 tokens" in page
    assert "8500" in page  # left today
    assert "0.0020" in page  # 1000 * 1.00 / 1M + 500 * 2.00 / 1M
    assert "unlimited" in page  # the monthly quota


def test_the_usage_page_shows_no_cost_without_prices(owner_client, conversation):
    _earlier_reply(conversation, prompt=1000)
    page = owner_client.get(reverse("usage")).content.decode()
    assert "1000 tokens" in page
    assert "Cost" not in page


# --- Replies being written, and days in the configured time zone --------------------------


def test_a_reply_being_written_holds_its_maximum_length_against_the_quota(
    owner_client, conversation, fake_upstream, settings
):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 3000
    conversation.max_tokens = 2500
    conversation.save()
    _earlier_reply(conversation, status=Message.Status.STREAMING)
    other = Conversation.objects.create(owner=conversation.owner, model=conversation.model)
    _earlier_reply(other, status=Message.Status.STREAMING)  # holds the default reservation

    usage = limits.usage_for(conversation.owner_id)

    assert usage.today.tokens == 0
    assert usage.today.reserved == 2500 + settings.WEBCHAT_RESERVED_TOKENS_PER_REPLY
    assert usage.today.left == 0
    third = Conversation.objects.create(owner=conversation.owner, model=conversation.model)
    response = owner_client.post(
        reverse("conversations:message-create", args=[third.pk]), {"text": "More"}, headers=HTMX
    )
    _assert_refused(response, "You have used your daily quota", fake_upstream, 2)


@pytest.mark.django_db(transaction=True)
async def test_replies_sent_at_once_overshoot_the_quota_by_one_reply_at_most(
    async_owner_client, owner, fake_upstream, settings
):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 3000
    settings.WEBCHAT_RESERVED_TOKENS_PER_REPLY = 2500
    fake_upstream.reset(token_count=400, token_interval=0.02)  # all three are still running
    conversations = [
        await Conversation.objects.acreate(owner=owner, model="fake-model") for _ in range(3)
    ]

    responses = await asyncio.gather(
        *[
            async_owner_client.post(
                reverse("conversations:message-create", args=[each.pk]),
                {"text": "A long answer, please"},
                headers=HTMX,
            )
            for each in conversations
        ]
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 200, 422]  # 2,500 held, 500 left: one more; then none
    async for reply in Message.objects.filter(role=Message.Role.ASSISTANT):
        await finished(reply)


def test_days_begin_at_midnight_in_the_configured_time_zone(conversation, settings):
    settings.TIME_ZONE = "Asia/Seoul"
    with time_machine.travel("2026-12-07 15:30:00+00:00", tick=False):  # 00:30 in Seoul
        _earlier_reply(conversation, prompt=100, ago=timedelta(hours=1))  # 23:30 yesterday
        _earlier_reply(conversation, prompt=7, ago=timedelta(minutes=20))  # 00:10 today

        usage = limits.usage_for(conversation.owner_id)

    assert usage.today.tokens == 7
    assert usage.month.tokens == 107


def test_a_browsers_time_zone_moves_the_sidebars_days_but_not_the_quotas(
    owner_client, conversation, settings
):
    settings.TIME_ZONE = "UTC"
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 100
    with time_machine.travel("2026-12-07 15:30:00+00:00", tick=False):  # 00:30 in Seoul
        _earlier_reply(conversation, prompt=100, ago=timedelta(hours=1))  # 14:30 UTC today
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=timezone.now() - timedelta(hours=1)
        )
        owner_client.cookies["webchat_time_zone"] = "Asia/Seoul"
        page = owner_client.get(reverse("conversations:index")).content.decode()
        usage = limits.usage_for(conversation.owner_id)
        owner_client.cookies["webchat_time_zone"] = "Not/AZone"
        elsewhere = owner_client.get(reverse("conversations:index")).content.decode()

    assert 'data-group="yesterday"' in page  # 23:30 yesterday, in Seoul
    assert usage.today.left == 0  # today, in the server's zone
    assert 'data-group="yesterday"' not in elsewhere  # an unknown zone is ignored
