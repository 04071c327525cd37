"""Async client for the upstream OpenAI-compatible chat-completions API.

It knows nothing about Django models; only ``get_client()`` reads Django settings.
"""

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Self
from weakref import WeakKeyDictionary

import httpx
from httpx_sse import EventSource, ServerSentEvent

logger = logging.getLogger(__name__)

MAX_ERROR_MESSAGE_CHARS = 300
# No reply counts more tokens than this; a larger or negative count is a gateway's error.
MAX_TOKEN_COUNT = 10**9
REDACTED = "[redacted]"
DRAIN_SECONDS = 0.5

# Messages of the "stream" errors this client detects itself.
NOT_AN_EVENT_STREAM = "The upstream did not answer with an event stream."
MALFORMED_CHUNK = "The upstream sent a malformed chunk."
ENDED_EARLY = "The upstream stream ended before it was complete."

ErrorKind = Literal["http", "stream", "timeout", "connection"]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    reasoning_effort: str | None = None

    def body(self, *, stream: bool) -> dict:
        """The JSON request body; options left as None are not sent."""
        body: dict = {"model": self.model, "messages": self.messages, "stream": stream}
        for name in ("max_tokens", "temperature", "top_p", "top_k", "reasoning_effort"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    text_tokens: int = 0
    image_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_api(cls, data: dict | None) -> "Usage":
        """Read an API ``usage`` object, treating missing or null fields as zero."""
        if not isinstance(data, dict):
            return cls()
        prompt = data.get("prompt_tokens_details")
        prompt = prompt if isinstance(prompt, dict) else {}
        completion = data.get("completion_tokens_details")
        completion = completion if isinstance(completion, dict) else {}
        prompt_tokens = _count(data.get("prompt_tokens"))
        completion_tokens = _count(data.get("completion_tokens"))
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=_count(data.get("total_tokens")) or prompt_tokens + completion_tokens,
            cached_tokens=_count(prompt.get("cached_tokens")),
            text_tokens=_count(prompt.get("text_tokens")),
            image_tokens=_count(prompt.get("image_tokens")),
            reasoning_tokens=_count(completion.get("reasoning_tokens")),
        )

    def __add__(self, other: "Usage") -> "Usage":
        names = [field.name for field in fields(self)]
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in names})


def _count(value: object) -> int:
    try:
        count = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
    if not 0 <= count <= MAX_TOKEN_COUNT:
        logger.warning("The upstream reported a token count of %s; it is taken as 0.", count)
        return 0
    return count


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    reason: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


StreamEvent = ContentDelta | ReasoningDelta | Finished | UsageReport


@dataclass(frozen=True)
class Completion:
    content: str
    reasoning: str
    finish_reason: str | None
    usage: Usage
    model: str


class UpstreamError(Exception):
    """A failed upstream call; ``str(error)`` is ``message``, fit to show a person.

    ``kind`` says what failed:
    - "http": the upstream answered with an error status (``status_code`` is set);
    - "stream": the reply broke the protocol (an error event, malformed JSON, a
      stream that ended without ``[DONE]``, or a body that is not what was asked for);
    - "timeout": connecting or waiting for data took too long;
    - "connection": the upstream could not be reached, or dropped the connection.

    ``code`` is the upstream's own error code or type when it sent one (e.g.
    "context_length_exceeded", "rate_limit_error").
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code
        self.retry_after = retry_after
        self.code = code


def error_message_from_body(body: str) -> str | None:
    """A readable message from an error response body, or None if it has none.

    Understands ``{"error": {"message": ...}}`` (EvoLink and OpenAI), the same wrapped
    in a list, ``{"error": "..."}``, ``{"message": ...}``, ``{"detail": ...}`` and plain
    text. HTML pages give None: they are noise to a person reading a chat.
    """
    text = body.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None if text.startswith("<") else _shorten(text)
    return error_message_from_payload(data)


def error_message_from_payload(data: object) -> str | None:
    """The message of a parsed error object (see ``error_message_from_body``)."""
    if isinstance(data, list):
        data = data[0] if data else None
    if isinstance(data, str):
        return _shorten(data) if data.strip() else None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, str | list):
        return error_message_from_payload(error)
    source = error if isinstance(error, dict) else data
    for key in ("message", "detail"):
        value = source.get(key)
        if isinstance(value, str) and value.strip():
            return _shorten(value)
    return None


def error_code_from_body(body: str) -> str | None:
    """The error's ``code`` (if a string) or else its ``type``, from a JSON error body."""
    try:
        return error_code_from_payload(json.loads(body))
    except ValueError:
        return None


def error_code_from_payload(data: object) -> str | None:
    """The code of a parsed error object (see ``error_code_from_body``)."""
    if isinstance(data, list):
        data = data[0] if data else None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    source = error if isinstance(error, dict) else data
    for key in ("code", "type"):
        value = source.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_ERROR_MESSAGE_CHARS:
        return text
    return text[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=30.0)


class UpstreamClient:
    """One pooled HTTP client for the chat-completions API; share it, close it once."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._chat_url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # httpx's own transport (no ``transport``): it reads HTTPS_PROXY, HTTP_PROXY,
        # ALL_PROXY, NO_PROXY and SSL_CERT_FILE or SSL_CERT_DIR from the environment.
        # Redirects are not followed (see _raise_for_status).
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(
                connect=connect_timeout,
                read=read_timeout,
                write=connect_timeout,
                pool=connect_timeout,
            ),
            limits=LIMITS,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream a reply as events; the last UsageReport holds the final usage.

        Raises UpstreamError, also after some events were yielded. A stream that ends
        without ``[DONE]`` raises even after a Finished event. Close the generator
        (``contextlib.aclosing``) to stop early: that closes the upstream connection.
        """
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        body = request.body(stream=True)
        try:
            sent = self._http.build_request("POST", self._chat_url, json=body, headers=headers)
            async with contextlib.aclosing(await self._send(sent)) as response:
                await self._raise_for_status(response)
                content_type = response.headers.get("content-type", "").lower()
                if not content_type.startswith("text/event-stream"):
                    await response.aread()
                    message = error_message_from_body(response.text)
                    raise self._error(
                        message or NOT_AN_EVENT_STREAM,
                        kind="stream",
                    )
                content, reasoning = _StreamedText(), _StreamedText()
                sse_events = EventSource(response).aiter_sse()
                async for sse in sse_events:
                    data = sse.data
                    if not data:
                        continue
                    if data == "[DONE]":
                        for event in _held_back(content, reasoning):
                            yield event
                        await _drain(sse_events)
                        return
                    try:
                        chunk = json.loads(data)
                        if chunk.get("error"):
                            message = error_message_from_payload(chunk)
                            raise self._error(
                                message or "The upstream reported an error.",
                                kind="stream",
                                code=error_code_from_payload(chunk),
                            )
                        events = _chunk_events(chunk, content=content, reasoning=reasoning)
                    except (ValueError, LookupError, TypeError, AttributeError):
                        raise self._error(MALFORMED_CHUNK, kind="stream") from None
                    for event in events:
                        yield event
                for event in _held_back(content, reasoning):
                    yield event
            raise self._error(ENDED_EARLY, kind="stream")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Send, trying once more on a fresh connection when the one used was closed or
        reset before any answer: an upstream may drop a kept-alive connection just as it is
        used again."""
        try:
            return await self._http.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            return await self._http.send(request, stream=True)

    async def complete_chat(self, request: ChatRequest) -> Completion:
        """Ask for a whole reply in one response."""
        try:
            sent = self._http.build_request("POST", self._chat_url, json=request.body(stream=False))
            async with contextlib.aclosing(await self._send(sent)) as response:
                await response.aread()
            await self._raise_for_status(response)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
            return Completion(
                content=_text_of(message.get("content")),
                reasoning=_text_of(message.get("reasoning_content") or message.get("reasoning")),
                finish_reason=choice.get("finish_reason"),
                usage=Usage.from_api(data.get("usage")),
                model=data.get("model") or request.model,
            )
        except (ValueError, LookupError, TypeError, AttributeError):
            error = error_message_from_body(response.text)
            raise self._error(
                error or "The upstream sent a malformed reply.", kind="stream"
            ) from None

    async def _raise_for_status(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        await response.aread()
        status = response.status_code
        if response.has_redirect_location:
            # Never followed: the key would go along to wherever it points.
            location = response.url.join(response.headers["location"])
            raise self._error(
                f"The upstream answered HTTP {status}, moved to {location}: set "
                "WEBCHAT_API_BASE to the new address if it is to be trusted.",
                kind="http",
                status_code=status,
            )
        raise self._error(
            error_message_from_body(response.text) or f"HTTP {status} from the upstream",
            kind="http",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            code=error_code_from_body(response.text),
        )

    def _transport_error(self, exc: httpx.HTTPError) -> UpstreamError:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return self._error(f"The upstream timed out ({detail}).", kind="timeout")
        if isinstance(exc, httpx.ConnectError):
            return self._error(f"Could not connect to the upstream ({detail}).", kind="connection")
        return self._error(f"The connection to the upstream failed ({detail}).", kind="connection")

    def _error(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> UpstreamError:
        # Error bodies and transport messages may echo the key back; never pass it on.
        if self._api_key:
            message = message.replace(self._api_key, REDACTED)
        return UpstreamError(
            message, kind=kind, status_code=status_code, retry_after=retry_after, code=code
        )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_text(text: str) -> str:
    """``text`` with its surrogate pairs joined and any lone surrogate made U+FFFD.

    JSON writes a character beyond the Basic Multilingual Plane (most emoji) as two
    ``\\uXXXX`` halves; text holding a half cannot be encoded, so it could not be stored.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class _StreamedText:
    """One stream's text, delta by delta: a character whose halves a gateway split across
    two deltas is held back until its second half comes."""

    def __init__(self) -> None:
        self.held = ""

    def take(self, text: str) -> str:
        text, self.held = self.held + text, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self.held = text[:-1], text[-1]
        return _valid_text(text)

    def rest(self) -> str:
        held, self.held = self.held, ""
        return _valid_text(held)


def _held_back(content: _StreamedText, reasoning: _StreamedText) -> list[StreamEvent]:
    """What the stream's end leaves held back: a lone first half, as U+FFFD."""
    events: list[StreamEvent] = []
    if text := reasoning.rest():
        events.append(ReasoningDelta(text))
    if text := content.rest():
        events.append(ContentDelta(text))
    return events


def _chunk_events(
    chunk: dict, *, content: _StreamedText, reasoning: _StreamedText
) -> list[StreamEvent]:
    """The events in one parsed stream chunk (a dict without an error object)."""
    events: list[StreamEvent] = []
    choices = chunk.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought and isinstance(thought, str) and (text := reasoning.take(thought)):
                events.append(ReasoningDelta(text))
            answer = delta.get("content")
            if answer and isinstance(answer, str) and (text := content.take(answer)):
                events.append(ContentDelta(text))
        finish_reason = choice.get("finish_reason")
        if finish_reason:
            events.append(Finished(finish_reason))
    usage = chunk.get("usage")
    if usage:
        events.append(UsageReport(Usage.from_api(usage)))
    return events


async def _drain(sse_events: AsyncIterator[ServerSentEvent]) -> None:
    """Read the rest of a finished stream (normally just the body's end).

    A connection is only reused when its response was read to the end; a gateway
    that keeps the stream open after ``[DONE]`` costs at most DRAIN_SECONDS.
    """
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in sse_events:
                pass


def _text_of(content: object) -> str:
    """Text of a message ``content``: a string, a list of parts, or None."""
    if isinstance(content, str):
        return _valid_text(content)
    if isinstance(content, list):
        return _valid_text(
            "".join(part.get("text") or "" for part in content if isinstance(part, dict))
        )
    return ""


_clients: WeakKeyDictionary[asyncio.AbstractEventLoop, UpstreamClient] = WeakKeyDictionary()


def get_client() -> UpstreamClient:
    """The shared client of the running event loop, built from Django settings.

    Call it from async code: an httpx client must not outlive or leave its loop.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A client's open connections refer to their loop, so a closed loop can stay
        # alive as a key; forget those whenever a new loop comes along.
        for stale in [known for known in _clients if known.is_closed()]:
            del _clients[stale]
        client = _clients[loop] = _client_from_settings()
    return client


def reset_clients() -> None:
    """Forget the cached clients, e.g. after a test changed the settings."""
    _clients.clear()


def _client_from_settings() -> UpstreamClient:
    from django.conf import settings

    if settings.WEBCHAT_DEMO_MODE:
        from conversations.upstream.demo import DemoTransport

        return UpstreamClient(
            base_url="http://demo.invalid/v1",
            api_key="",
            connect_timeout=settings.WEBCHAT_CONNECT_TIMEOUT,
            read_timeout=settings.WEBCHAT_READ_TIMEOUT,
            transport=DemoTransport(),
        )
    return UpstreamClient(
        base_url=settings.WEBCHAT_API_BASE,
        api_key=settings.WEBCHAT_API_KEY,
        connect_timeout=settings.WEBCHAT_CONNECT_TIMEOUT,
        read_timeout=settings.WEBCHAT_READ_TIMEOUT,
    )
