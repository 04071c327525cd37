"""Per-user rate limits and token quotas, and the usage they are measured against.

Usage is read from the token counts stored on replies, so nothing else has to be kept in
step; a reply being written holds its conversation's maximum length (or
WEBCHAT_RESERVED_TOKENS_PER_REPLY) against the quotas until its count is stored, so replies
sent in parallel overshoot a quota by one reply at most. Replies written through the API
without being stored (WEBCHAT_API_STORE off) count the same, from ``UnstoredReply``. Days
and months start at midnight in TIME_ZONE (WEBCHAT_TIME_ZONE). Zero means unlimited.
"""

from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext

from accounts.models import UserLimits
from conversations.models import Message, UnstoredReply
from review.models import ModelPrice

MILLION = Decimal(1_000_000)


class LimitReached(Exception):
    """The user may not start another reply now; ``str(error)`` says why and until when.

    ``kind`` is ``RATE`` or ``QUOTA``: the API answers them with different codes."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


RATE = "rate"
QUOTA = "quota"


@dataclass(frozen=True)
class Limits:
    messages_per_minute: int
    daily_token_quota: int
    monthly_token_quota: int


@dataclass(frozen=True)
class Period:
    tokens: int
    quota: int
    cost: Decimal | None  # None when no used model has a price
    # Held by replies being written, whose count is not stored yet.
    reserved: int = 0

    @property
    def left(self) -> int | None:
        """Tokens left; None when unlimited."""
        return max(self.quota - self.tokens - self.reserved, 0) if self.quota else None


@dataclass(frozen=True)
class Usage:
    today: Period
    month: Period
    replies_last_minute: int
    messages_per_minute: int


def limits_for(user_id: int) -> Limits:
    overrides = UserLimits.objects.filter(user_id=user_id).first()

    def pick(name: str, setting: str) -> int:
        value = getattr(overrides, name, None)
        return getattr(settings, setting) if value is None else value

    return Limits(
        messages_per_minute=pick("messages_per_minute", "WEBCHAT_MESSAGES_PER_MINUTE"),
        daily_token_quota=pick("daily_token_quota", "WEBCHAT_DAILY_TOKEN_QUOTA"),
        monthly_token_quota=pick("monthly_token_quota", "WEBCHAT_MONTHLY_TOKEN_QUOTA"),
    )


def _period_starts(now: datetime) -> tuple[datetime, datetime]:
    # The server's zone, not the one a browser made active (accounts/time_zone.py).
    zone = ZoneInfo(settings.TIME_ZONE)
    day = timezone.localtime(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def usage_for(user_id: int, limits: Limits | None = None) -> Usage:
    """The user's usage today, this month and in the last minute, in one query (the stored
    replies' sums and the unstored ones', by model)."""
    now = timezone.now()
    day_start, month_start = _period_starts(now)
    since = {
        "month_start": month_start,
        "day_start": day_start,
        "minute_ago": now - timedelta(minutes=1),
    }
    stored = _usage_sums(
        Message.objects.filter(conversation__owner_id=user_id, role=Message.Role.ASSISTANT),
        reservation=Coalesce(
            "conversation__max_tokens", settings.WEBCHAT_RESERVED_TOKENS_PER_REPLY
        ),
        **since,
    )
    unstored = _usage_sums(
        UnstoredReply.objects.filter(owner_id=user_id),
        reservation=F("reserved_tokens"),
        **since,
    )
    rows = list(stored.union(unstored, all=True))
    prices = {price.model: price for price in ModelPrice.objects.all()} if rows else {}
    limits = limits or limits_for(user_id)

    def period(prefix: str, quota: int) -> Period:
        tokens, cost, priced = 0, Decimal(0), False
        for row in rows:
            used_in, used_out = row[f"{prefix}_prompt"], row[f"{prefix}_completion"]
            tokens += used_in + used_out
            if price := prices.get(row["model"]):
                priced = True
                cost += (
                    used_in * price.input_price_per_million
                    + used_out * price.output_price_per_million
                ) / MILLION
        reserved = sum(row["reserved"] for row in rows)
        return Period(tokens=tokens, quota=quota, cost=cost if priced else None, reserved=reserved)

    return Usage(
        today=period("day", limits.daily_token_quota),
        month=period("month", limits.monthly_token_quota),
        replies_last_minute=sum(row["last_minute"] for row in rows),
        messages_per_minute=limits.messages_per_minute,
    )


def _usage_sums(
    replies: QuerySet,
    *,
    reservation,
    month_start: datetime,
    day_start: datetime,
    minute_ago: datetime,
) -> QuerySet:
    """Per model, the replies' tokens this month and today, what those being written hold
    (``reservation`` each), and how many began in the last minute."""
    this_month, today = Q(created_at__gte=month_start), Q(created_at__gte=day_start)
    prompt, completion = Coalesce("prompt_tokens", 0), Coalesce("completion_tokens", 0)
    return (
        replies.filter(created_at__gte=min(month_start, minute_ago))
        .values("model")
        .annotate(
            month_prompt=Sum(prompt, filter=this_month, default=0),
            month_completion=Sum(completion, filter=this_month, default=0),
            day_prompt=Sum(prompt, filter=today, default=0),
            day_completion=Sum(completion, filter=today, default=0),
            reserved=Sum(reservation, filter=Q(status__in=Message.ACTIVE_STATUSES), default=0),
            last_minute=Count("pk", filter=Q(created_at__gte=minute_ago)),
        )
        .order_by()
    )


def reply_allowed_check(user_id: int) -> None:
    """Refuse a new reply (a message, Retry or Continue) when a limit is reached."""
    limits = limits_for(user_id)
    if not any(astuple(limits)):
        return  # all unlimited: no need to add anything up
    usage = usage_for(user_id, limits)
    rate = usage.messages_per_minute
    if rate and usage.replies_last_minute >= rate:
        raise LimitReached(
            gettext(
                "You have sent %(count)s messages in the last minute, the most allowed. "
                "Wait a minute, then try again."
            )
            % {"count": rate},
            kind=RATE,
        )
    if usage.today.left == 0:
        raise LimitReached(
            gettext("You have used your daily quota of %(quota)s tokens. It renews at midnight.")
            % {"quota": f"{usage.today.quota:,}"},
            kind=QUOTA,
        )
    if usage.month.left == 0:
        raise LimitReached(
            gettext(
                "You have used your monthly quota of %(quota)s tokens. "
                "It renews on the first of next month."
            )
            % {"quota": f"{usage.month.quota:,}"},
            kind=QUOTA,
        )
