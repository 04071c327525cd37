"""Reading the error bodies providers send, in the shapes they send them.

``{"error": {"message", "code" | "type" | "status"}}`` (OpenAI, EvoLink, OpenRouter,
Anthropic), the same wrapped in a list (Gemini's OpenAI-compatible endpoint), ``{"error":
"..."}``, ``{"message": ...}``, ``{"detail": ...}`` and plain text. Gemini states how long
to wait in the body only, as a ``google.rpc.RetryInfo`` detail.
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_ERROR_MESSAGE_CHARS = 300
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s*$")


@dataclass(frozen=True)
class ErrorBody:
    # The provider's own words, shortened; None when it gave none (or an HTML page).
    message: str | None = None
    # Its code when a string, else its type or status ("insufficient_quota",
    # "RESOURCE_EXHAUSTED", "overloaded_error").
    code: str | None = None
    # Seconds to wait before trying again, when the body says.
    retry_after: float | None = None


def read_error_body(body: str) -> ErrorBody:
    text = body.strip()
    if not text:
        return ErrorBody()
    try:
        data = json.loads(text)
    except ValueError:
        return ErrorBody(None if text.startswith("<") else shorten(text))
    return read_error_payload(data)


def read_error_payload(data: object) -> ErrorBody:
    """Read a parsed error object (see ``read_error_body``)."""
    if isinstance(data, list):
        data = data[0] if data else None
    if isinstance(data, str):
        return ErrorBody(shorten(data) if data.strip() else None)
    if not isinstance(data, dict):
        return ErrorBody()
    error = data.get("error")
    if isinstance(error, str | list):
        return read_error_payload(error)
    source = error if isinstance(error, dict) else data
    if isinstance(source.get("error"), dict) and not _text(source, "message"):
        return read_error_payload(source)  # a gateway's error around its provider's
    message = _text(source, "message") or _text(source, "detail")
    code = _code(source)
    retry_after = _retry_delay(source.get("details"))
    if message and message.lstrip().startswith(("{", "[")):
        # A gateway (OpenRouter) passing its provider's error body on as its message.
        passed_on = read_error_body(message)
        if passed_on.message:
            message = passed_on.message
            code = code or passed_on.code
            retry_after = passed_on.retry_after if retry_after is None else retry_after
    return ErrorBody(shorten(message) if message else None, code, retry_after)


def _text(source: dict, key: str) -> str | None:
    value = source.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _code(source: dict) -> str | None:
    """The error's own code, else its type; Google's reason (``API_KEY_INVALID``), else its
    status (``RESOURCE_EXHAUSTED``). Numbers repeat the HTTP status and say nothing more."""
    for key in ("code", "type"):
        value = _text(source, key)
        if value and not value.strip().isdigit():
            return value.strip()
    details = source.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and (reason := _text(detail, "reason")):
            return reason.strip()
    status = _text(source, "status")
    return status.strip() if status else None


def _retry_delay(details: object) -> float | None:
    """The ``retryDelay`` of a ``google.rpc.RetryInfo`` detail ("34s", "34.4s")."""
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and (match := _DURATION.match(delay)):
                return float(match[1])
    return None


def shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_ERROR_MESSAGE_CHARS:
        return text
    return text[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"


def retry_after_from_headers(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``Retry-After``."""
    milliseconds = _seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    return parse_retry_after(headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is None:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0)


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
