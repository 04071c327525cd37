"""``/metrics``: this process's numbers in Prometheus's text format (prometheus-client).

Each server process counts for itself and serves its own numbers: Prometheus scrapes
every process (``127.0.0.1:8001/metrics``, ``:8002``, ...) and adds them up, as it does for
any set of instances. The gauges (replies streaming, sockets open) are true per process,
which prometheus-client's multiprocess mode, made for forking servers, could not give.

The generation and the socket call the functions below at the points they describe, once
per reply or per frame, never per token. The page is open to the client addresses in
``WEBCHAT_METRICS_ALLOWED`` and to a bearer of ``WEBCHAT_METRICS_TOKEN``; anyone else gets a
404, as if it did not exist.
"""

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from accounts.login_throttle import client_address
from conversations.models import Message
from conversations.upstream.chunks import Usage

REPLIES_STREAMING = Gauge(
    "webchat_replies_streaming", "Replies this process is writing now, waiting ones included."
)
TIME_TO_FIRST_TOKEN = Histogram(
    "webchat_reply_time_to_first_token_seconds",
    "From a reply's start to its first text (or thinking) from the upstream.",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
REPLY_DURATION = Histogram(
    "webchat_reply_duration_seconds",
    "From a reply's start to its end, by how it ended.",
    ["status"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
UPSTREAM_ERRORS = Counter(
    "webchat_upstream_errors",
    "Upstream failures, retried or not, by kind (as stored in a reply's error_code) and "
    "HTTP status (none for timeouts, stalls and broken streams).",
    ["kind", "code"],
)
PROMPT_TOKENS = Counter("webchat_prompt_tokens", "Prompt tokens of replies, by model.", ["model"])
COMPLETION_TOKENS = Counter(
    "webchat_completion_tokens",
    "Completion tokens (thinking included) of replies, by model.",
    ["model"],
)
SOCKETS_OPEN = Gauge("webchat_sockets_open", "Conversation sockets open on this process.")
FRAMES_SENT = Counter("webchat_frames_sent", "Frames sent to conversation sockets.")


def reply_started() -> None:
    REPLIES_STREAMING.inc()


def reply_ended(*, status: str, seconds: float) -> None:
    REPLIES_STREAMING.dec()
    REPLY_DURATION.labels(status).observe(seconds)


def reply_first_token(seconds: float) -> None:
    TIME_TO_FIRST_TOKEN.observe(seconds)


def reply_tokens_used(reply: Message, *, before: Usage) -> None:
    """Count the tokens ``reply`` used since it (re)started, counted ``before`` then."""
    model = reply.model or "unknown"
    PROMPT_TOKENS.labels(model).inc(max((reply.prompt_tokens or 0) - before.prompt_tokens, 0))
    COMPLETION_TOKENS.labels(model).inc(
        max((reply.completion_tokens or 0) - before.completion_tokens, 0)
    )


def upstream_error(*, kind: str, status_code: int | None) -> None:
    UPSTREAM_ERRORS.labels(kind, str(status_code or "none")).inc()


def socket_opened() -> None:
    SOCKETS_OPEN.inc()


def socket_closed() -> None:
    SOCKETS_OPEN.dec()


def frames_sent(count: int = 1) -> None:
    FRAMES_SENT.inc(count)


def _may_read(request: HttpRequest) -> bool:
    token = settings.WEBCHAT_METRICS_TOKEN
    offered = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in settings.WEBCHAT_METRICS_ALLOWED)


@login_not_required
@require_safe
@never_cache
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    if not _may_read(request):
        raise Http404
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
