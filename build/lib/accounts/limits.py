"""Per-user rate limits and token quotas, and the usage they are measured against.

Usage is read from the token counts stored on replies, so nothing else has to be kept in
step. Days and months start at midnight in TIME_ZONE. Zero means unlimited.
"""

from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext

from accounts.models import UserLimits
from conversations.models import Message
from review.models import ModelPrice

MILLION = Decimal(1_000_000)


class LimitReached(Exception):
    """The user may not start another reply now; ``str(error)`` says why and until when."""


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

    @property
    def left(self) -> int | None:
        """Tokens left; None when unlimited."""
        return max(self.quota - self.tokens, 0) if self.quota else None


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
    day = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def usage_for(user_id: int, limits: Limits | None = None) -> Usage:
    """The user's usage today, this month and in the last minute, in one query."""
    now = timezone.now()
    day_start, month_start = _period_starts(now)
    today = Q(created_at__gte=day_start)
    prompt, completion = Coalesce("prompt_tokens", 0), Coalesce("completion_tokens", 0)
    rows = (
        Message.objects.filter(
            conversation__owner_id=user_id,
            role=Message.Role.ASSISTANT,
            created_at__gte=min(month_start, now - timedelta(minutes=1)),
        )
        .values("model")
        .annotate(
            month_prompt=Sum(prompt, filter=Q(created_at__gte=month_start), default=0),
            month_completion=Sum(completion, filter=Q(created_at__gte=month_start), default=0),
            day_prompt=Sum(prompt, filter=today, default=0),
            day_completion=Sum(completion, filter=today, default=0),
            last_minute=Count("pk", filter=Q(created_at__gte=now - timedelta(minutes=1))),
        )
        .order_by()
    )
    rows = list(rows)
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
        return Period(tokens=tokens, quota=quota, cost=cost if priced else None)

    return Usage(
        today=period("day", limits.daily_token_quota),
        month=period("month", limits.monthly_token_quota),
        replies_last_minute=sum(row["last_minute"] for row in rows),
        messages_per_minute=limits.messages_per_minute,
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
            % {"count": rate}
        )
    if usage.today.left == 0:
        raise LimitReached(
            gettext("You have used your daily quota of %(quota)s tokens. It renews at midnight.")
            % {"quota": f"{usage.today.quota:,}"}
        )
    if usage.month.left == 0:
        raise LimitReached(
            gettext(
                "You have used your monthly quota of %(quota)s tokens. "
                "It renews on the first of next month."
            )
            % {"quota": f"{usage.month.quota:,}"}
        )
