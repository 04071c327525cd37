"""The admin's usage report: usage per user and day, as a table and a chart, and the
feedback users gave replies, per model and day."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from conversations.models import Feedback, Message, UnstoredReply

FAILED_STATUSES = (Message.Status.ERROR, Message.Status.INTERRUPTED)


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


def _period(start: date, end: date) -> tuple[ZoneInfo, datetime, datetime]:
    """From the start of ``start`` to the end of ``end`` in WEBCHAT_TIME_ZONE, as quotas
    count days, whatever the reader's zone."""
    zone = ZoneInfo(settings.TIME_ZONE)
    since = timezone.make_aware(datetime.combine(start, time.min), zone)
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), zone)
    return zone, since, until


def _messages_of(start: date, end: date, user_id: int | None) -> tuple[QuerySet, ZoneInfo]:
    """The messages written from ``start`` to ``end``, both included, in conversations of
    ``user_id`` (or anyone's)."""
    zone, since, until = _period(start, end)
    messages = Message.objects.filter(created_at__gte=since, created_at__lt=until)
    if user_id is not None:
        messages = messages.filter(conversation__owner_id=user_id)
    return messages, zone


def usage_report(*, start: date, end: date, user_id: int | None = None) -> list[UsageRow]:
    """Usage per user and day from ``start`` to ``end``, both included. The API's replies
    that were not stored (WEBCHAT_API_STORE off) count with the stored ones."""
    messages, zone = _messages_of(start, end, user_id)
    assistant = Q(role=Message.Role.ASSISTANT)
    rows = (
        messages.annotate(day=TruncDate("created_at", tzinfo=zone))
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
    report = {
        (row["day"], row["conversation__owner_id"]): UsageRow(
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
    }
    unstored = list(_unstored_rows(start, end, user_id))
    if not unstored:
        return list(report.values())  # in the database's order
    for row in unstored:
        key = (row["day"], row["owner_id"])
        known = report.get(key)
        report[key] = UsageRow(
            day=row["day"],
            user_id=row["owner_id"],
            username=row["owner__username"],
            # Each unstored reply answered one message of the user's.
            messages=row["replies"] + (known.messages if known else 0),
            replies=row["replies"] + (known.replies if known else 0),
            tokens_in=row["tokens_in"] + (known.tokens_in if known else 0),
            tokens_out=row["tokens_out"] + (known.tokens_out if known else 0),
            reasoning_tokens=row["reasoning_tokens"] + (known.reasoning_tokens if known else 0),
            errors=row["errors"] + (known.errors if known else 0),
        )
    return sorted(report.values(), key=lambda row: (row.day, row.username))


def _unstored_rows(start: date, end: date, user_id: int | None):
    zone, since, until = _period(start, end)
    replies = UnstoredReply.objects.filter(created_at__gte=since, created_at__lt=until)
    if user_id is not None:
        replies = replies.filter(owner_id=user_id)
    return (
        replies.annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", "owner_id", "owner__username")
        .annotate(
            replies=Count("pk"),
            tokens_in=Sum("prompt_tokens", default=0),
            tokens_out=Sum("completion_tokens", default=0),
            reasoning_tokens=Sum("reasoning_tokens", default=0),
            errors=Count("pk", filter=Q(status__in=FAILED_STATUSES)),
        )
        .order_by()
    )


@dataclass(frozen=True)
class Ratings:
    """Thumbs up and down given to some replies."""

    up: int
    down: int

    @property
    def satisfaction(self) -> int | None:
        """Thumbs up, as a whole percentage of the ratings; None without any."""
        rated = self.up + self.down
        return round(100 * self.up / rated) if rated else None


@dataclass(frozen=True)
class FeedbackRow(Ratings):
    """One model's replies of one day, their tokens and how their owners rated them."""

    day: date
    model: str
    replies: int
    tokens: int


def feedback_report(*, start: date, end: date, user_id: int | None = None) -> list[FeedbackRow]:
    """Replies, tokens, thumbs up and down per model and day, for the replies written from
    ``start`` to ``end``; in one query."""
    messages, zone = _messages_of(start, end, user_id)
    # A reply has one feedback at most (only its owner rates it): the join adds no rows.
    rows = (
        messages.filter(role=Message.Role.ASSISTANT)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", "model")
        .annotate(
            replies=Count("pk"),
            tokens=Sum(Coalesce("prompt_tokens", 0) + Coalesce("completion_tokens", 0)),
            up=Count("feedback", filter=Q(feedback__rating=Feedback.Rating.UP)),
            down=Count("feedback", filter=Q(feedback__rating=Feedback.Rating.DOWN)),
        )
        .order_by("day", "model")
    )
    return [
        FeedbackRow(
            day=row["day"],
            model=row["model"],
            replies=row["replies"],
            tokens=row["tokens"] or 0,
            up=row["up"],
            down=row["down"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class FeedbackTotal(Ratings):
    replies: int
    tokens: int


def feedback_total(rows: list[FeedbackRow]) -> FeedbackTotal:
    """The rows added up: every model's replies, tokens and ratings of every day."""
    return FeedbackTotal(
        replies=sum(row.replies for row in rows),
        tokens=sum(row.tokens for row in rows),
        up=sum(row.up for row in rows),
        down=sum(row.down for row in rows),
    )


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
