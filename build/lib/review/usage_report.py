"""The admin's usage report: usage per user and day, as a table and a chart."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from conversations.models import Message

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
