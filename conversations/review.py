"""Reviewing conversations: flags, the audit of staff reads, and usage per user and day.

Whether staff may read other users' conversations at all is the deployment's choice
(WEBCHAT_STAFF_CAN_READ_CONVERSATIONS); when they may, every read is recorded.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext

from conversations.models import Conversation, Flag, Message, ReviewAccess

NOTE_MAX_CHARS = 2000
FAILED_STATUSES = (Message.Status.ERROR, Message.Status.INTERRUPTED)


class FlagRefused(Exception):
    """A flag that cannot be made; ``str(error)`` says why."""


def staff_can_read() -> bool:
    return settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS


def review_accesses_record(
    *, viewer: AbstractBaseUser, conversations: Iterable[Conversation]
) -> list[ReviewAccess]:
    """Record that ``viewer`` read ``conversations`` (their owners loaded); reading one's
    own is not recorded."""
    return ReviewAccess.objects.bulk_create(
        ReviewAccess(
            viewer=viewer,
            viewer_username=viewer.get_username(),
            conversation=conversation,
            conversation_ref=conversation.pk,
            owner_username=conversation.owner.get_username(),
        )
        for conversation in conversations
        if conversation.owner_id != viewer.pk
    )


def flag_create(
    *,
    conversation: Conversation,
    flagged_by: AbstractBaseUser,
    note: str,
    message_id: int | None = None,
) -> Flag:
    """Flag ``conversation``, or one message of it, with a note saying why."""
    note = note.strip()
    if not note:
        raise FlagRefused(gettext("Write a note saying why you flag it."))
    if len(note) > NOTE_MAX_CHARS:
        raise FlagRefused(
            gettext("The note is %(length)s characters long; the limit is %(limit)s.")
            % {"length": f"{len(note):,}", "limit": f"{NOTE_MAX_CHARS:,}"}
        )
    message = None
    if message_id is not None:
        message = Message.objects.filter(pk=message_id, conversation=conversation).first()
        if message is None:
            raise FlagRefused(gettext("That message is not part of this conversation."))
    return Flag.objects.create(
        conversation=conversation, message=message, note=note, flagged_by=flagged_by
    )


def flags_clear(*, flags, cleared_by: AbstractBaseUser) -> int:
    """Clear the open ones of ``flags`` (a queryset); return how many were open."""
    return flags.filter(cleared_at__isnull=True).update(
        cleared_by=cleared_by, cleared_at=timezone.now()
    )


@dataclass(frozen=True)
class UsageRow:
    """One user's use on one day (in TIME_ZONE)."""

    day: date
    user_id: int
    username: str
    messages: int  # sent by the user
    replies: int
    tokens_in: int
    tokens_out: int
    reasoning_tokens: int
    errors: int  # replies that failed or were cut off by a failure


def usage_report(*, start: date, end: date, user_id: int | None = None) -> list[UsageRow]:
    """Usage per user and day from ``start`` to ``end``, both included, in one query."""
    since = timezone.make_aware(datetime.combine(start, time.min))
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))
    messages = Message.objects.filter(created_at__gte=since, created_at__lt=until)
    if user_id is not None:
        messages = messages.filter(conversation__owner_id=user_id)
    assistant = Q(role=Message.Role.ASSISTANT)
    rows = (
        messages.annotate(day=TruncDate("created_at"))
        .values("day", "conversation__owner_id", "conversation__owner__username")
        .annotate(
            messages=Count("pk", filter=Q(role=Message.Role.USER)),
            replies=Count("pk", filter=assistant),
            tokens_in=Sum("prompt_tokens", filter=assistant, default=0),
            tokens_out=Sum("completion_tokens", filter=assistant, default=0),
            reasoning_tokens=Sum("reasoning_tokens", filter=assistant, default=0),
            errors=Count("pk", filter=assistant & Q(status__in=FAILED_STATUSES)),
        )
        .order_by("day", "conversation__owner__username")
    )
    return [
        UsageRow(
            day=row["day"],
            user_id=row["conversation__owner_id"],
            username=row["conversation__owner__username"],
            messages=row["messages"],
            replies=row["replies"],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            reasoning_tokens=row["reasoning_tokens"],
            errors=row["errors"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class DayTotal:
    day: date
    tokens_in: int
    tokens_out: int

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


def usage_per_day(rows: list[UsageRow], *, start: date, end: date) -> list[DayTotal]:
    """Tokens in and out per day, every day of the range included (idle ones as zero)."""
    totals = {start + timedelta(days=n): [0, 0] for n in range((end - start).days + 1)}
    for row in rows:
        totals[row.day][0] += row.tokens_in
        totals[row.day][1] += row.tokens_out
    return [DayTotal(day, tokens_in, tokens_out) for day, (tokens_in, tokens_out) in totals.items()]


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    in_y: float
    in_height: float
    out_y: float
    out_height: float
    total: DayTotal


@dataclass(frozen=True)
class Chart:
    """A bar chart of tokens per day, laid out for an SVG of ``width`` by ``height``."""

    width: int
    height: int
    plot_top: int
    plot_bottom: int
    peak: int
    bars: list[Bar]
    first_day: date
    last_day: date


def usage_chart(days: list[DayTotal], *, width: int = 720, height: int = 200) -> Chart:
    """Stacked bars (tokens in below, out above) scaled to the busiest day."""
    plot_top, plot_bottom = 16, height - 24
    plot_height = plot_bottom - plot_top
    peak = max((day.tokens for day in days), default=0)
    slot = width / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        in_height = plot_height * day.tokens_in / peak if peak else 0
        out_height = plot_height * day.tokens_out / peak if peak else 0
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.1, 2),
                width=round(max(slot * 0.8, 1), 2),
                in_y=round(plot_bottom - in_height, 2),
                in_height=round(in_height, 2),
                out_y=round(plot_bottom - in_height - out_height, 2),
                out_height=round(out_height, 2),
                total=day,
            )
        )
    return Chart(
        width=width,
        height=height,
        plot_top=plot_top,
        plot_bottom=plot_bottom,
        peak=peak,
        bars=bars,
        first_day=days[0].day,
        last_day=days[-1].day,
    )
