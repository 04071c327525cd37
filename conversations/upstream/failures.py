"""What to do when getting a reply fails: what to tell the user, and whether to try again.

Plain domain logic, without the network (and of Django only its translations): ``failure_for``
maps an upstream error, and whether any text of this attempt has arrived, to a ``Failure``.
Its messages are in the language active where it runs: a generation keeps the one of the page
that started it.
"""

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from django.utils.translation import gettext, gettext_lazy

from conversations.upstream.chunks import valid_text
from conversations.upstream.client import (
    ENDED_EARLY,
    MALFORMED_CHUNK,
    NOT_AN_EVENT_STREAM,
    UpstreamError,
)

# Stored in ``Message.error_code``.
AUTH = "auth"
QUOTA = "quota"
BAD_REQUEST = "bad_request"
CONTEXT_LENGTH = "context_length"
CONTENT_FILTER = "content_filter"
RATE_LIMITED = "rate_limited"
SERVER = "server"
TIMEOUT = "timeout"
STALLED = "stalled"
CONNECTION = "connection"
STREAM = "stream"
INTERRUPTED = "interrupted"
INTERNAL = "internal"

# Trying the same request again cannot help until something else changes.
HOPELESS_CODES = frozenset({AUTH, QUOTA, BAD_REQUEST, CONTEXT_LENGTH, CONTENT_FILTER})

INTERRUPTED_MESSAGE = gettext_lazy("The reply was interrupted before it finished.")
SERVER_STOPPED_MESSAGE = gettext_lazy(
    "The reply was interrupted: the server stopped while writing it."
)
INTERNAL_MESSAGE = gettext_lazy("Something went wrong while getting the reply.")
SAVE_FAILED_MESSAGE = gettext_lazy(
    "The reply could not be saved in full: its text is kept, but its token counts are not."
)
SHUTTING_DOWN_MESSAGE = gettext_lazy(
    "The server is restarting and takes no new replies. Send again in a moment."
)
WAITING_FOR_SLOT = gettext_lazy("Waiting for a free slot…")

# A rejected key, whatever the status (Gemini answers 400).
_AUTH_CODES = frozenset({"invalid_api_key", "api_key_invalid", "authentication_error"})
# A spent account: retrying cannot help until someone pays or raises the quota.
_QUOTA_CODES = frozenset(
    {"insufficient_quota", "insufficient_balance", "insufficient_credits", "billing_not_active"}
)
_QUOTA_WORDS = re.compile(
    r"insufficient[ _-]?(quota|balance|credits?|funds)|exceeded your current quota"
    r"|resource has been exhausted|credit balance is too low|out of credits",
    re.IGNORECASE,
)
_CONTEXT_LENGTH_WORDS = re.compile(
    r"context[ _-]?(length|window)|maximum number of tokens|prompt is too long"
    r"|too large for model|reduce the length of the messages",
    re.IGNORECASE,
)


class StreamStalled(Exception):
    """The stream went quiet mid-reply for longer than the stall timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Nothing arrived for {seconds:g} seconds.")
        self.seconds = seconds


@dataclass(frozen=True)
class RetryPolicy:
    rate_limit_retries: int
    server_error_retries: int
    # The longest wait before an automatic retry; asked to wait longer, give up.
    max_wait: float
    # Backoff without a Retry-After: base_delay, then twice that, and so on.
    base_delay: float

    def backoff(self, retries: int) -> float:
        return self.base_delay * 2**retries


@dataclass(frozen=True)
class Failure:
    code: str
    # Shown to the user in the reply bubble.
    message: str
    # Seconds to wait before trying again by itself; None: give up.
    retry_in: float | None = None
    # Worth a log line at ERROR: only an administrator can fix it.
    alert_admin: bool = False
    # The provider's own words, shown beneath ``message``.
    detail: str = ""


def failure_for(
    error: UpstreamError | StreamStalled,
    *,
    text_arrived: bool,
    retries: Mapping[str, int],
    policy: RetryPolicy,
) -> Failure:
    """The decision for ``error``; ``retries`` counts automatic retries so far, by code."""
    if isinstance(error, StreamStalled):
        return Failure(
            STALLED,
            gettext("The reply stalled: nothing arrived for %(seconds)s s.")
            % {"seconds": f"{error.seconds:g}"},
        )
    if error.kind == "http":
        failure = _http_failure(error, text_arrived=text_arrived, retries=retries, policy=policy)
        return _with_detail(failure, error)
    if error.kind == "timeout":
        if isinstance(error.__cause__, httpx.ConnectTimeout):
            return Failure(TIMEOUT, gettext("The chat service could not be reached in time."))
        return Failure(TIMEOUT, gettext("The chat service took too long to answer."))
    if error.kind == "connection":
        if isinstance(error.__cause__, httpx.ConnectError):
            return Failure(CONNECTION, gettext("The chat service could not be reached."))
        lost = gettext("The connection to the chat service was lost.")
        # A connection kept from an earlier request may be closed by the service just as it
        # is used again (servers close idle ones after a few seconds). Nothing was answered
        # yet, so the request is sent again at once, once, on a new connection.
        if not text_arrived and not retries.get(CONNECTION):
            return Failure(CONNECTION, lost, retry_in=0.0)
        return Failure(CONNECTION, lost)
    if _is_context_length(error):
        return _with_detail(_too_long(), error)
    return _with_detail(Failure(STREAM, _stream_message(error)), error)


def _with_detail(failure: Failure, error: UpstreamError) -> Failure:
    if not error.from_provider:
        return failure
    # Stored with the reply, so made storable as streamed text is (no NUL, no half character).
    return dataclasses.replace(failure, detail=valid_text(error.message))


def retry_notice(code: str, seconds_left: float) -> str:
    """What the reply bubble says while waiting to try again."""
    seconds = max(math.ceil(seconds_left), 1)
    if code == RATE_LIMITED:
        return gettext("Rate limited, retrying in %(seconds)s s…") % {"seconds": seconds}
    return gettext("The chat service had a problem, retrying in %(seconds)s s…") % {
        "seconds": seconds
    }


def _http_failure(
    error: UpstreamError, *, text_arrived: bool, retries: Mapping[str, int], policy: RetryPolicy
) -> Failure:
    status = error.status_code or 0
    if status in (401, 403) or (error.code or "").lower() in _AUTH_CODES:
        return Failure(
            AUTH,
            gettext(
                "The chat service rejected this server's API key. "
                "Please contact your administrator."
            ),
            alert_admin=True,
        )
    if status == 402 or _is_quota_spent(error):
        return Failure(
            QUOTA,
            gettext(
                "The chat service's credit or quota is used up. Please tell your administrator."
            ),
            alert_admin=True,
        )
    if status == 413 or _is_context_length(error):
        return _too_long()
    if (error.code or "").lower() == "content_filter":
        return Failure(
            CONTENT_FILTER,
            gettext("The provider's content filter refused this message. Try rephrasing it."),
        )
    if status == 429:
        return _rate_limited(error, retries=retries.get(RATE_LIMITED, 0), policy=policy)
    if status >= 500:
        done = retries.get(SERVER, 0)
        wait = error.retry_after if error.retry_after is not None else policy.backoff(done)
        if not text_arrived and done < policy.server_error_retries and wait <= policy.max_wait:
            return Failure(SERVER, _server_message(status), retry_in=wait)
        return Failure(SERVER, _server_message(status))
    return Failure(BAD_REQUEST, gettext("The chat service refused the request."))


def _rate_limited(error: UpstreamError, *, retries: int, policy: RetryPolicy) -> Failure:
    wait = error.retry_after if error.retry_after is not None else policy.backoff(retries)
    if retries < policy.rate_limit_retries and wait <= policy.max_wait:
        return Failure(
            RATE_LIMITED, gettext("The chat service is rate limiting requests."), retry_in=wait
        )
    if error.retry_after is not None and wait > policy.max_wait:
        message = gettext(
            "The chat service is rate limiting requests. Please try again in %(seconds)s s."
        ) % {"seconds": math.ceil(wait)}
    else:
        message = gettext(
            "The chat service is rate limiting requests. Please try again in a minute."
        )
    return Failure(RATE_LIMITED, message)


def _server_message(status: int) -> str:
    return gettext("The chat service had a server error (HTTP %(status)s). Please try again.") % {
        "status": status
    }


def _too_long() -> Failure:
    return Failure(
        CONTEXT_LENGTH,
        gettext(
            "This conversation is too long for the model. Please start a new conversation to go on."
        ),
    )


def _is_quota_spent(error: UpstreamError) -> bool:
    """An error that means the account is spent, not that requests came too fast: OpenAI's
    429 ``insufficient_quota``, Gemini's "Resource has been exhausted" with no time to wait,
    a gateway's "Insufficient balance" (MiniMax sends it as a 500)."""
    if error.code and error.code.lower() in _QUOTA_CODES:
        return True
    return error.retry_after is None and bool(_QUOTA_WORDS.search(error.message))


def _is_context_length(error: UpstreamError) -> bool:
    if error.code and "context_length" in error.code:
        return True
    return bool(_CONTEXT_LENGTH_WORDS.search(error.message))


def _stream_message(error: UpstreamError) -> str:
    if error.from_provider:
        return gettext("The chat service reported an error.")
    message = error.message
    if message == MALFORMED_CHUNK:
        return gettext("The chat service sent part of the reply in a form that could not be read.")
    if message == ENDED_EARLY:
        return gettext("The chat service ended the reply before it was complete.")
    if message == NOT_AN_EVENT_STREAM:
        return gettext("The chat service answered in an unexpected form.")
    return gettext("The chat service reported an error.")
