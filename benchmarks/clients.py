"""Clients that do what a browser does, and a client of the upstream itself.

A ``Browser`` signs in through the login form (CSRF cookie and all). Each ``Tab`` is one
open conversation page: it loads the page, opens the conversation's websocket, posts
messages as htmx does (multipart, ``X-CSRFToken``, ``HX-Request``) and reads the reply's
frames as they arrive. ``direct_reply`` asks the fake upstream for the same reply with
httpx-sse, so that every figure has the physical limit next to it.
"""

import asyncio
import json
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from httpx_sse import SSEError, aconnect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

TIMEOUT = httpx.Timeout(60.0)
# Keep connections open between requests, as a browser keeps its connection to a page.
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=600)
FINAL_STATUSES = "complete|error|interrupted|stopped"
FINAL_STATUS = re.compile(rf'\sdata-status="({FINAL_STATUSES})"')
DATA_END = re.compile(r'\sdata-end="(\d+)"')
MESSAGE_ID = re.compile(r'\sid="message-(\d+)(?:-[a-z]+)*"')
# What a browser sends for a file input left empty.
NO_IMAGES = {"images": ("", b"", "application/octet-stream")}


@dataclass
class Reply:
    """One reply as a client saw it; times are ``time.monotonic()``."""

    prompt: str
    # Just before the POST (or, direct, before the request to the upstream).
    started_at: float
    posted_at: float | None = None
    first_text_at: float | None = None
    done_at: float | None = None
    status: str = ""
    error: str = ""
    # Websocket frames about this reply (through Webchat) or SSE events (direct).
    frames: int = 0
    # Of those, the ones from its first text up to its final one (excluded).
    streaming_frames: int = 0
    # The servers' CPU seconds just before the POST and at the first text, when probed.
    cpu_at_start: float | None = None
    cpu_at_first_text: float | None = None

    @property
    def duration(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.started_at


class Browser:
    """A signed-in person: one session, shared by all their tabs."""

    def __init__(
        self, username: str, *, verify: ssl.SSLContext | bool = True, origin: str = ""
    ) -> None:
        self.username = username
        # Over HTTPS, Django's CSRF check wants the Origin a browser sends with its POSTs.
        self.http = httpx.AsyncClient(
            timeout=TIMEOUT,
            limits=LIMITS,
            follow_redirects=False,
            verify=verify,
            headers={"Origin": origin} if origin else None,
        )

    async def sign_in(self, base_url: str, password: str) -> None:
        login = f"{base_url}/accounts/login/"
        (await self.http.get(login)).raise_for_status()
        response = await self.http.post(
            login,
            data={
                "username": self.username,
                "password": password,
                "csrfmiddlewaretoken": self.http.cookies["csrftoken"],
            },
        )
        if response.status_code != 302 or "sessionid" not in self.http.cookies:
            raise RuntimeError(f"Signing in {self.username} failed: {response.status_code}")

    @property
    def csrf_token(self) -> str:
        return self.http.cookies["csrftoken"]

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    async def aclose(self) -> None:
        await self.http.aclose()


class Tab:
    """One conversation open in a browser: its page, its socket and the reply awaited."""

    def __init__(
        self, browser: Browser, conversation_id: int, *, http_url: str, socket_url: str
    ) -> None:
        self.browser = browser
        self.conversation_id = conversation_id
        self.http_url = http_url
        self.page_url = f"{http_url}/c/{conversation_id}/"
        self.socket_url = socket_url.replace("http://", "ws://", 1)
        self.origin = socket_url
        self.socket: ClientConnection | None = None
        self.reader: asyncio.Task | None = None
        self.watch: _ReplyWatch | None = None
        self.backlog: list[tuple[float, str]] = []
        self.closed_reason = ""
        # Reads the servers' CPU seconds, for the cost of a send (one user only: it blocks).
        self.cpu_probe: Callable[[], float] | None = None

    async def open(self, *, load_page: bool = True) -> None:
        """Load the page and open its socket; a failure is the reply's error, later."""
        try:
            await self._open(load_page=load_page)
        except (httpx.HTTPError, OSError, TimeoutError, WebSocketException) as error:
            self.closed_reason = f"opening the conversation failed: {error!r}"

    async def _open(self, *, load_page: bool) -> None:
        if load_page:
            (await self.browser.http.get(self.page_url)).raise_for_status()
        self.socket = await connect(
            f"{self.socket_url}/ws/conversations/{self.conversation_id}/",
            additional_headers={"Cookie": self.browser.cookie_header},
            origin=self.origin,
            open_timeout=60,
            max_size=None,
            ping_interval=None,
        )
        self.reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            await self.reader

    async def send(self, prompt: str, *, within: float) -> Reply:
        """Post ``prompt`` as the composer does; return when its reply is finished."""
        self.backlog.clear()
        cpu_at_start = self.cpu_probe() if self.cpu_probe else None
        reply = Reply(prompt, started_at=time.monotonic(), cpu_at_start=cpu_at_start)
        if self.socket is None:
            reply.error = self.closed_reason
            return reply
        try:
            response = await self.browser.http.post(
                f"{self.page_url}messages/",
                data={"text": prompt},
                files=NO_IMAGES,
                headers={
                    "X-CSRFToken": self.browser.csrf_token,
                    "HX-Request": "true",
                    "HX-Current-URL": self.page_url,
                    "HX-Target": "messages",
                },
            )
        except httpx.HTTPError as error:
            reply.error = f"POST failed: {error!r}"
            return reply
        reply.posted_at = time.monotonic()
        # The reply is made after the message: the highest message id in the answer.
        reply_ids = [int(found) for found in MESSAGE_ID.findall(response.text)]
        if response.status_code != 200 or not reply_ids:
            reply.error = f"POST answered {response.status_code}"
            return reply
        watch = _ReplyWatch(max(reply_ids), reply, self.cpu_probe)
        for arrived_at, frame in self.backlog:
            watch.see(arrived_at, frame)
        self.backlog.clear()
        self.watch = watch
        if self.closed_reason:
            watch.lost(self.closed_reason)
        try:
            await asyncio.wait_for(watch.done.wait(), within)
        except TimeoutError:
            reply.error = f"no final frame within {within:.0f} s"
        finally:
            self.watch = None
        if not reply.error and reply.status != "complete":
            reply.error = f"the reply ended {reply.status}"
        return reply

    async def _read(self) -> None:
        assert self.socket is not None
        try:
            async for frame in self.socket:
                arrived_at = time.monotonic()
                if self.watch is None:
                    self.backlog.append((arrived_at, str(frame)))
                else:
                    self.watch.see(arrived_at, str(frame))
        except WebSocketException as error:
            self.closed_reason = f"socket closed: {error!r}"
        else:
            self.closed_reason = "socket closed"
        if self.watch is not None:
            self.watch.lost(self.closed_reason)


class _ReplyWatch:
    """Reads frames for one reply: when its first text came, and its final state.

    Only what the reply protocol promises is relied on, whatever the rest of a frame
    looks like: an element ``message-N``, ``message-N-tail`` or ``message-N-blocks``
    with ``data-end`` above 0 means the reply has text; its final state is an element
    ``message-N`` or ``message-N-status`` with a final ``data-status``. Attributes may
    come in any order.
    """

    def __init__(
        self, reply_id: int, reply: Reply, cpu_probe: Callable[[], float] | None = None
    ) -> None:
        self.marker = f'"message-{reply_id}'
        self.text_tag = _tag_with_id(rf"message-{reply_id}(?:-tail|-blocks)?")
        self.final_tag = _tag_with_id(rf"message-{reply_id}(?:-status)?")
        self.reply = reply
        self.cpu_probe = cpu_probe
        self.done = asyncio.Event()

    def see(self, arrived_at: float, frame: str) -> None:
        if self.marker not in frame:
            return
        reply = self.reply
        reply.frames += 1
        if status := self._final_status(frame):
            reply.status = status
            reply.done_at = arrived_at
            self.done.set()
        elif reply.first_text_at is None:
            if self._has_text(frame):
                reply.first_text_at = arrived_at
                reply.streaming_frames = 1
                if self.cpu_probe:
                    reply.cpu_at_first_text = self.cpu_probe()
        else:
            reply.streaming_frames += 1

    def _has_text(self, frame: str) -> bool:
        for tag in self.text_tag.findall(frame):
            end = DATA_END.search(tag)
            if end and int(end[1]) > 0:
                return True
        return False

    def _final_status(self, frame: str) -> str:
        for tag in self.final_tag.findall(frame):
            if status := FINAL_STATUS.search(tag):
                return status[1]
        return ""

    def lost(self, reason: str) -> None:
        if not self.done.is_set():
            self.reply.error = reason
            self.done.set()


def _tag_with_id(element_id: str) -> re.Pattern[str]:
    """A start tag whose id matches ``element_id``, its attributes in any order."""
    return re.compile(rf'<[a-zA-Z][^<>]*?\sid="{element_id}"[^<>]*>')


def upstream_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=TIMEOUT, limits=LIMITS, headers={"Authorization": "Bearer bench"}
    )


async def direct_reply(
    http: httpx.AsyncClient, base_url: str, *, model: str, prompt: str, within: float
) -> Reply:
    """The same reply straight from the upstream, read as Webchat reads it (httpx-sse)."""
    reply = Reply(prompt, started_at=time.monotonic())
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    try:
        async with (
            asyncio.timeout(within),
            aconnect_sse(http, "POST", f"{base_url}/chat/completions", json=body) as source,
        ):
            source.response.raise_for_status()
            reply.posted_at = time.monotonic()
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    reply.done_at = time.monotonic()
                    reply.status = "complete"
                    break
                reply.frames += 1
                if reply.first_text_at is None and _has_text(event.data):
                    reply.first_text_at = time.monotonic()
    except (httpx.HTTPError, SSEError, TimeoutError) as error:
        reply.error = f"upstream request failed: {error!r}"
    if not reply.error and reply.status != "complete":
        reply.error = "the stream ended without [DONE]"
    return reply


def _has_text(data: str) -> bool:
    choices = json.loads(data).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))
