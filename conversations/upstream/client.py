"""Async client for the upstream OpenAI-compatible chat-completions API.

It knows nothing about Django models; only ``get_client()`` reads Django settings.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Self
from weakref import WeakKeyDictionary

import httpx
from httpx_sse import EventSource, ServerSentEvent

from conversations.upstream.chunks import ChunkReader, StreamEvent, Usage, message_texts
from conversations.upstream.error_bodies import (
    read_error_body,
    read_error_payload,
    retry_after_from_headers,
)
from conversations.upstream.transport import upstream_transport

logger = logging.getLogger(__name__)

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

    ``code`` is the upstream's own error code, type or status when it sent one (e.g.
    "context_length_exceeded", "insufficient_quota", "RESOURCE_EXHAUSTED"), and
    ``from_provider`` says whether ``message`` is the provider's own words.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        from_provider: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code
        self.retry_after = retry_after
        self.code = code
        self.from_provider = from_provider


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
        # Without ``transport``, aiohttp's or, with a proxy set, httpx's own (transport.py).
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
            transport=transport or upstream_transport(LIMITS),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

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
                    body = read_error_body(self._redacted(response.text))
                    raise self._error(
                        body.message or NOT_AN_EVENT_STREAM,
                        kind="stream",
                        code=body.code,
                        from_provider=body.message is not None,
                    )
                reader = ChunkReader()
                sse_events = EventSource(response).aiter_sse()
                async for sse in sse_events:
                    data = sse.data
                    if not data:
                        continue
                    if data == "[DONE]":
                        for event in reader.rest():
                            yield event
                        await _drain(sse_events)
                        return
                    try:
                        chunk = json.loads(data)
                        if chunk.get("error"):
                            body = read_error_payload(json.loads(self._redacted(data)))
                            raise self._error(
                                body.message or "The upstream reported an error.",
                                kind="stream",
                                code=body.code,
                                from_provider=body.message is not None,
                            )
                        events = reader.events(chunk)
                    except (ValueError, LookupError, TypeError, AttributeError):
                        raise self._error(MALFORMED_CHUNK, kind="stream") from None
                    for event in events:
                        yield event
                for event in reader.rest():
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
            content, reasoning = message_texts(choice.get("message"))
            return Completion(
                content=content,
                reasoning=reasoning,
                finish_reason=choice.get("finish_reason"),
                usage=Usage.from_api(data.get("usage")) or Usage(),
                model=data.get("model") or request.model,
            )
        except (ValueError, LookupError, TypeError, AttributeError):
            body = read_error_body(self._redacted(response.text))
            raise self._error(
                body.message or "The upstream sent a malformed reply.",
                kind="stream",
                code=body.code,
                from_provider=body.message is not None,
            ) from None

    def _redacted(self, text: str) -> str:
        # Error bodies and transport messages may echo the key back; never pass it on. Bodies
        # are redacted before they are read and shortened, so that no cut leaves part of it.
        return text.replace(self._api_key, REDACTED) if self._api_key else text

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
        body = read_error_body(self._redacted(response.text))
        retry_after = retry_after_from_headers(response.headers)
        raise self._error(
            body.message or f"HTTP {status} from the upstream",
            kind="http",
            status_code=status,
            retry_after=body.retry_after if retry_after is None else retry_after,
            code=body.code,
            from_provider=body.message is not None,
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
        from_provider: bool = False,
    ) -> UpstreamError:
        return UpstreamError(
            self._redacted(message),
            kind=kind,
            status_code=status_code,
            retry_after=retry_after,
            code=code,
            from_provider=from_provider,
        )


async def _drain(sse_events: AsyncIterator[ServerSentEvent]) -> None:
    """Read the rest of a finished stream (normally just the body's end).

    A connection is only reused when its response was read to the end; a gateway
    that keeps the stream open after ``[DONE]`` costs at most DRAIN_SECONDS.
    """
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in sse_events:
                pass


_clients: WeakKeyDictionary[asyncio.AbstractEventLoop, UpstreamClient] = WeakKeyDictionary()
# The tasks that close the clients (get_client), held here: asyncio holds tasks weakly.
_closers: set[asyncio.Task] = set()


def get_client() -> UpstreamClient:
    """The shared client of the running event loop, built from Django settings.

    Call it from async code: an httpx client must not outlive or leave its loop. The client
    is closed when its loop ends (asyncio.run and asyncio.Runner cancel the tasks left
    then), or by ``client_close()``.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A client's open connections refer to their loop, so a closed loop can stay
        # alive as a key; forget those whenever a new loop comes along.
        for stale in [known for known in _clients if known.is_closed()]:
            del _clients[stale]
        client = _clients[loop] = _client_from_settings()
        closer = loop.create_task(_closed_when_cancelled(client), name="upstream-client")
        _closers.add(closer)
        closer.add_done_callback(_closers.discard)
    return client


async def client_close() -> None:
    """Close the running loop's client now (a stopping server does)."""
    loop = asyncio.get_running_loop()
    _clients.pop(loop, None)
    closers = [task for task in _closers if task.get_loop() is loop]
    for closer in closers:
        closer.cancel()
    if closers:
        await asyncio.wait(closers)


async def _closed_when_cancelled(client: UpstreamClient) -> None:
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await client.aclose()


def reset_clients() -> None:
    """Forget the cached clients, e.g. after a test changed the settings; each is still
    closed when its loop ends."""
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
