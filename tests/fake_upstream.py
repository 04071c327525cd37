"""A fake of the upstream chat-completions API, served over real HTTP on loopback.

For tests, benchmarks and manual runs. It is a bare ASGI app run by uvicorn in a
background thread; the test thread may change its config at any time.

Run it by hand from the repository's root with ``python -m tests.fake_upstream --port 8001``;
uvicorn comes with the ``test`` and ``bench`` extras.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import uvicorn

HTTP_FAILURES = (
    "http_400",
    "http_401",
    "http_402",
    "http_403",
    "http_404",
    "http_413",
    "http_429",
    "http_500",
    "html_502",
    "http_503",
    "http_504",
    "context_length",
)
STREAM_FAILURES = (
    "drop_mid_stream",
    "error_mid_stream",
    "malformed_chunk",
    "no_done",
    "stall_mid_stream",
)
FAILURES = HTTP_FAILURES + STREAM_FAILURES
# A streamed request whose last user message holds this gets MARKDOWN_REPLY instead.
MARKDOWN_MARKER = "[long-markdown]"
MARKDOWN_TOKENS = 1500

DONE = b"data: [DONE]\n\n"
PING = b": PING\n\n"
KEEPALIVE = b": keep-alive\n\n"
KEEPALIVE_EVERY = 10
SPLIT_WRITE_BYTES = 7  # odd, so that pieces also cut multi-byte UTF-8 characters
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
JSON_HEADERS = [(b"content-type", b"application/json")]

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


# --- Encoding -------------------------------------------------------------------------


def encode_event(payload: dict) -> bytes:
    """One SSE ``data:`` event carrying ``payload`` as compact JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class ChunkEncoder:
    """Encodes the SSE chunks of one streamed completion (shared id, model and time)."""

    def __init__(self, model: str) -> None:
        self._head = {
            "id": f"chatcmpl-fake-{time.monotonic_ns()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return encode_event({**self._head, "choices": [choice], **extra})

    def role(self) -> bytes:
        return self.chunk({"role": "assistant", "content": ""})

    def content(self, text: str) -> bytes:
        return self.chunk({"content": text})

    def reasoning(self, text: str) -> bytes:
        return self.chunk({"reasoning_content": text, "content": None})

    def finish(self, reason: str, usage: dict | None = None) -> bytes:
        if usage is None:
            return self.chunk({}, reason)
        return self.chunk({}, reason, usage=usage)

    def usage(self, usage: dict) -> bytes:
        return encode_event({**self._head, "choices": [], "usage": usage})


def split_into_tokens(text: str) -> list[str]:
    """Word-sized pieces of ``text`` (each word with its trailing whitespace)."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def count_prompt_tokens(messages: object) -> int:
    """A deterministic stand-in for a tokenizer: the words in the messages' text."""
    words = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    words += len(part["text"].split())
    return words


def usage_payload(*, prompt_tokens: int, completion_tokens: int, reasoning_tokens: int) -> dict:
    """An API usage object; as in the real API, completion tokens include reasoning."""
    completion_tokens += reasoning_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": 0,
            "text_tokens": prompt_tokens,
            "image_tokens": 0,
        },
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def completion_payload(
    *, model: str, content: str, reasoning: str, finish_reason: str, usage: dict
) -> dict:
    """A non-streamed ``chat.completion`` reply."""
    message: dict = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }


# --- A long Markdown reply ------------------------------------------------------------

_MARKDOWN_HEAD = """# Moving slow work out of a web request

A request that sends e-mail, resizes images or calls another service keeps its worker busy \
for as long as the slowest of those takes. The usual fix is a queue: the request records \
what has to happen, answers at once, and a separate worker does the slow part. Below is \
what changes, what it costs, and a small worker you can adapt.

## What changes

- **Requests answer sooner**: the page no longer waits for the mail server.
- **Failures are retried** by the worker, with a delay that grows each time.
- **Work survives a restart**: the queue keeps jobs that were not finished.
- *Ordering is not guaranteed* unless you ask for it, so jobs must not depend on it.
- Each job needs an `id`, so that running it twice does no harm.
- Monitoring gains one more thing to watch: the length of the queue.

## How the options compare

| Approach | Median request time | p95 request time | Extra processes | Retries |
|---|---:|---:|---:|---|
| In the request | 840 ms | 2,900 ms | 0 | by the user |
| Thread pool | 35 ms | 120 ms | 0 | none |
| Database queue | 38 ms | 95 ms | 1 | yes |
| Redis queue | 31 ms | 80 ms | 2 | yes |

The database queue is usually enough below a few hundred jobs a second, and it keeps the \
job in the same transaction as the data it refers to.

## A worker

```python
import time

from django.db import transaction

from jobs.models import Job


def run_forever(poll_seconds: float = 1.0) -> None:
    while True:
        job = take_next_job()
        if job is None:
            time.sleep(poll_seconds)
            continue
        try:
            job.run()
        except Exception as error:
            job.fail(str(error))
        else:
            job.finish()


def take_next_job() -> Job | None:
    with transaction.atomic():
        return (
            Job.objects.select_for_update(skip_locked=True)
            .filter(state="waiting")
            .order_by("created_at")
            .first()
        )
```

## Running it

```bash
python manage.py migrate
python manage.py run_worker --poll-seconds 0.5
systemctl enable --now example-worker.service
```

## Notes from running it

"""
_MARKDOWN_TAIL = """

That is the whole pattern: record the job with the data, answer, and let the worker \
catch up."""
_MARKDOWN_SENTENCES = (
    "Keep each job small, so that a retry repeats little work.",
    "A worker that holds a row lock for a long time blocks the others, so commit early.",
    "Measure the time a job waits in the queue as well as the time it runs.",
    "When the queue grows for minutes, add a worker before you tune anything else.",
    "Log the job's id with every line, so that one job's story can be read back.",
    "Time limits belong on every call to another service, or one slow answer stops a worker.",
    "Jobs that send messages to people should record that they did, before they do it again.",
    "Old finished jobs can be deleted by a daily task; nobody reads them after a week.",
    "A deploy should let running jobs finish: stop taking new ones, then wait a little.",
    "Tests can run the worker's function directly, without a process or a queue.",
    "If two jobs touch the same row, give them the same key and run them one at a time.",
    "Store the arguments of a job as plain data, never as a pickled object.",
    "A failed job keeps its last error, so that the admin page can show why.",
    "Alert on the oldest waiting job's age, not on the number of jobs.",
    "Backups of the database include the queue, which is one more reason to keep it there.",
    "Most teams never need more than two workers for this kind of work.",
)
_MARKDOWN_NOTE_HEADINGS = ("Sizing jobs", "Watching it", "Deploys and tests", "Failures")


def _markdown_reply(tokens: int) -> str:
    """A reply of exactly ``tokens`` word-sized tokens: the sections above, then notes
    (short sections of the sentences above) filling it up to length."""
    fixed = len(split_into_tokens(_MARKDOWN_HEAD + _MARKDOWN_TAIL.lstrip()))
    words: list[str] = []
    sentences = 0
    while len(words) < tokens - fixed:
        if sentences % 8 == 0:
            heading = _MARKDOWN_NOTE_HEADINGS[sentences // 8 % len(_MARKDOWN_NOTE_HEADINGS)]
            if words and not words[-1].endswith("\n\n"):
                words[-1] += "\n\n"
            words += ["###", *heading.split()]
            words[-1] += "\n\n"
        words += _MARKDOWN_SENTENCES[sentences % len(_MARKDOWN_SENTENCES)].split()
        sentences += 1
        if sentences % 4 == 0:
            words[-1] += "\n\n"  # a paragraph every four sentences
    notes = " ".join(words[: tokens - fixed]).replace("\n\n ", "\n\n").strip()
    return _MARKDOWN_HEAD + notes.rstrip(".") + "." + _MARKDOWN_TAIL


MARKDOWN_REPLY = _markdown_reply(MARKDOWN_TOKENS)


# --- The fake server ------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """A response a real provider sent, replayed byte for byte: written in pieces cut at
    ``splits`` (byte offsets, which may fall inside a character), each sent on its own."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"text/event-stream"),)
    splits: tuple[int, ...] = ()

    def pieces(self) -> list[bytes]:
        edges = [0, *sorted(set(self.splits)), len(self.body)]
        return [self.body[start:end] for start, end in itertools.pairwise(edges) if end > start]


@dataclass
class FakeUpstreamConfig:
    first_token_delay: float = 0.0
    token_count: int = 5
    token_interval: float = 0.0
    # When set, streamed word by word regardless of token_count.
    reply: str | None = None
    # When set, the reply to non-streamed requests (a title, say); else theirs is the same.
    completion: str | None = None
    # When set, streamed first as ``reasoning_content`` deltas.
    reasoning: str = ""
    role_chunk: bool = True
    keepalive_comments: bool = True
    # Extra chunks with ``content: null``, ``content: ""`` and ``delta: {}``.
    empty_deltas: bool = False
    usage_on_final_empty_chunk: bool = True
    finish_reason: str = "stop"
    failure: str | None = None
    # When set, only the first this many chat requests fail; later ones succeed.
    fail_first: int | None = None
    # Sent as a Retry-After header with the HTTP failures (e.g. http_429).
    retry_after: float | None = None
    # Quote the request's Authorization header in JSON error messages, as some gateways do.
    echo_authorization: bool = False
    split_writes: bool = False
    models: tuple[str, ...] = ("fake-model", "fake-model-large")
    # Models that stream at their own pace: model name -> token_interval.
    model_token_intervals: dict[str, float] = dataclasses.field(default_factory=dict)
    # When set, every chat request is answered with this instead.
    recording: Recording | None = None
    # When set, a stream stops after this many tokens until ``FakeUpstream.release()``.
    hold_after: int | None = None

    def __post_init__(self) -> None:
        if self.failure is not None and self.failure not in FAILURES:
            raise ValueError(f"Unknown failure {self.failure!r}; choose from {FAILURES}.")

    def reply_tokens(self, *, stream: bool = True) -> list[str]:
        if not stream and self.completion is not None:
            return split_into_tokens(self.completion)
        if self.reply is not None:
            return split_into_tokens(self.reply)
        return [f"word{i}" if i == 0 else f" word{i}" for i in range(self.token_count)]

    def reply_text(self) -> str:
        return "".join(self.reply_tokens())


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict
    # When the request arrived: ``time.time()``, and ``time.monotonic()`` (see below).
    received_at: float
    arrived_at: float = 0.0
    # The client's port: requests sharing it came over one kept-alive connection.
    client_port: int = 0
    # The client went away before the reply was complete.
    disconnected: bool = False
    # When the first and the last text token were written, on ``time.monotonic()`` (one
    # clock for every process on Linux, so other processes can compare their own times).
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens_sent: int = 0


_JSON_ERRORS: dict[str, tuple[int, object]] = {
    "http_400": (
        400,
        {
            "error": {
                "message": "Invalid value for 'temperature': must be at most 2.",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": None,
            }
        },
    ),
    # OpenAI's shape, with a string code.
    "http_401": (
        401,
        {
            "error": {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
    ),
    # EvoLink's shape, with a numeric code.
    "http_402": (
        402,
        {"error": {"code": 402, "message": "Insufficient account balance.", "type": "quota"}},
    ),
    "http_403": (
        403,
        {"error": {"code": 403, "message": "This key may not use the model.", "type": "forbidden"}},
    ),
    "http_404": (
        404,
        {
            "error": {
                "message": "The model `no-such-model` does not exist.",
                "type": "invalid_request_error",
                "code": "model_not_found",
            }
        },
    ),
    # EvoLink's shape, with its advice.
    "http_429": (
        429,
        {
            "error": {
                "code": 429,
                "message": "Rate limit exceeded.",
                "type": "rate_limit_error",
                "fallback_suggestion": "retry after 60 seconds",
            }
        },
    ),
    # Wrapped in a list, as gateways relaying Google's API do.
    "http_500": (
        500,
        [{"error": {"code": 500, "message": "Internal server error.", "status": "INTERNAL"}}],
    ),
    "context_length": (
        400,
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. "
                "However, your messages resulted in 9001 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
    ),
}
# Other bodies: an nginx page, plain text, and nothing at all.
_OTHER_ERRORS: dict[str, tuple[int, bytes, bytes]] = {
    "html_502": (
        502,
        b"text/html",
        b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
        b"<body><h1>502 Bad Gateway</h1><hr><p>nginx</p></body></html>\n",
    ),
    "http_413": (
        413,
        b"text/html",
        b"<html><head><title>413 Request Entity Too Large</title></head>\n"
        b"<body><center><h1>413 Request Entity Too Large</h1></center></body></html>\n",
    ),
    "http_503": (503, b"text/plain", b"Service temporarily unavailable"),
    "http_504": (504, b"text/plain", b""),
}
# Long enough for any client to give up on a stalled stream first.
STALL_SECONDS = 3600.0
HOLD_SECONDS = 60.0


class _Hold:
    """A stream step: wait for ``FakeUpstream.release()``."""


_HOLD = _Hold()
STALL_KEEPALIVE_INTERVAL = 0.05
_STREAM_ERROR = {
    "error": {"code": 500, "message": "The model stopped unexpectedly.", "type": "server_error"}
}
_MALFORMED = b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "oops\n\n'


class FakeUpstream:
    """The fake API server; ``start()`` it, point clients at ``base_url``."""

    def __init__(
        self,
        config: FakeUpstreamConfig | None = None,
        *,
        port: int = 0,
        request_log: Path | None = None,
    ) -> None:
        self.config = config or FakeUpstreamConfig()
        self._port = port
        # One JSON line per finished chat request, for processes that cannot see ``requests``.
        self._request_log = request_log.open("a", buffering=1) if request_log else None
        self._requests: list[RecordedRequest] = []
        self._chat_requests = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._released = threading.Event()

    # -- Control, from the test thread --

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        sock.listen(2048)
        port = sock.getsockname()[1]
        ready = threading.Event()
        server = _Server(
            uvicorn.Config(
                self,
                interface="asgi3",
                lifespan="off",
                log_level="warning",
                access_log=False,
                proxy_headers=False,
                timeout_graceful_shutdown=1,
            ),
            ready,
        )
        self._thread = threading.Thread(
            target=server.run_then_signal, args=(sock,), name="fake-upstream", daemon=True
        )
        self._thread.start()
        ready.wait(timeout=10)
        if not server.started:
            sock.close()
            raise RuntimeError("The fake upstream did not start.")
        self._server = server
        self._base_url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = self._base_url = None
        if self._request_log is not None:
            self._request_log.close()
            self._request_log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("The fake upstream is not running.")
        return self._base_url

    def reset(self, **config_overrides: Any) -> None:
        """Forget recorded requests and use a fresh config with these overrides."""
        config = FakeUpstreamConfig(**config_overrides)
        with self._lock:
            self._requests = []
            self._chat_requests = 0
            self.config = config
            self._released = threading.Event()

    def release(self) -> None:
        """Let the streams held by ``hold_after`` go on to their end."""
        self._released.set()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` requests have arrived since the last reset."""
        with self._idle:
            if not self._idle.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"The fake upstream did not receive {count} request(s).")

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no request is being handled (e.g. a closed stream was noticed)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._active == 0, timeout):
                raise TimeoutError("The fake upstream is still handling requests.")

    # -- The ASGI app, in the server thread --

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        config = self.config
        received_at, arrived_at = time.time(), time.monotonic()
        raw_body = await _read_body(receive)
        try:
            body = json.loads(raw_body) if raw_body else {}
        except ValueError:
            body = None
        record = RecordedRequest(
            path=scope["path"],
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            body=body if isinstance(body, dict) else {},
            received_at=received_at,
            arrived_at=arrived_at,
            client_port=(scope.get("client") or ("", 0))[1],
        )
        with self._lock:
            self._requests.append(record)
            self._active += 1
            self._idle.notify_all()
            if scope["path"] == "/v1/chat/completions":
                self._chat_requests += 1
                if config.fail_first is not None and self._chat_requests > config.fail_first:
                    config = dataclasses.replace(config, failure=None)
        try:
            if scope["method"] == "GET" and scope["path"] == "/v1/models":
                await _send_json(send, 200, _models_payload(config.models))
            elif scope["method"] != "POST" or scope["path"] != "/v1/chat/completions":
                await _send_json(send, 404, {"error": {"message": "Not found."}})
            elif not isinstance(body, dict):
                await _send_json(send, 400, {"error": {"message": "The body is not JSON."}})
            else:
                await self._chat(config, body, record, receive, send)
        finally:
            if self._request_log is not None and scope["path"] == "/v1/chat/completions":
                self._request_log.write(json.dumps(_log_entry(record)) + "\n")
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    async def _chat(
        self,
        config: FakeUpstreamConfig,
        body: dict,
        record: RecordedRequest,
        receive: Receive,
        send: Send,
    ) -> None:
        if config.recording is not None:
            await _replay(send, config.recording)
            return
        if config.failure in HTTP_FAILURES:
            echoed = record.headers.get("authorization") if config.echo_authorization else None
            await _send_http_failure(send, config.failure, config.retry_after, echoed)
            return
        model = str(body.get("model") or config.models[0])
        if model in config.model_token_intervals:
            config = dataclasses.replace(config, token_interval=config.model_token_intervals[model])
        tokens = config.reply_tokens(stream=bool(body.get("stream")))
        if body.get("stream") and MARKDOWN_MARKER in (_last_user_prompt(body) or ""):
            tokens = split_into_tokens(MARKDOWN_REPLY)
        reasoning = split_into_tokens(config.reasoning)
        usage = usage_payload(
            prompt_tokens=count_prompt_tokens(body.get("messages")),
            completion_tokens=len(tokens),
            reasoning_tokens=len(reasoning),
        )
        if not body.get("stream"):
            await _send_completion(send, config, model, tokens, usage)
            return
        steps = _stream_steps(config, ChunkEncoder(model), tokens, reasoning, usage)
        streamer = asyncio.create_task(
            _stream(send, config.split_writes, steps, record, self._released)
        )
        watcher = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            done, _pending = await asyncio.wait(
                {streamer, watcher}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watcher.cancel()
            streamer.cancel()
        if streamer in done:
            streamer.result()
        else:
            record.disconnected = True


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._ready.set()

    def run_then_signal(self, sock: socket.socket) -> None:
        try:
            self.run(sockets=[sock])
        finally:
            self._ready.set()


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


def _last_user_prompt(body: dict) -> str | None:
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    prompt = users[-1].get("content") if users else None
    return prompt if isinstance(prompt, str) else None


def _log_entry(record: RecordedRequest) -> dict:
    """A request log line: the last user message's text names the request."""
    return {
        "prompt": _last_user_prompt(record.body),
        "stream": bool(record.body.get("stream")),
        "received_at": record.arrived_at,
        "received_at_wall": record.received_at,
        "first_token_at": record.first_token_at,
        "last_token_at": record.last_token_at,
        "tokens": record.tokens_sent,
        "disconnected": record.disconnected,
    }


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_json(send: Send, status: int, payload: object, headers: list | None = None) -> None:
    await _send_bytes(send, status, JSON_HEADERS + (headers or []), json.dumps(payload).encode())


async def _send_bytes(send: Send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _models_payload(models: tuple[str, ...]) -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in models],
    }


async def _send_http_failure(
    send: Send, failure: str, retry_after: float | None, echoed: str | None = None
) -> None:
    headers = []
    if retry_after is not None:
        headers.append((b"retry-after", format(retry_after, "g").encode()))
    if failure in _OTHER_ERRORS:
        status, content_type, body = _OTHER_ERRORS[failure]
        await _send_bytes(send, status, [(b"content-type", content_type), *headers], body)
        return
    status, payload = _JSON_ERRORS[failure]
    if echoed is not None:
        payload = json.loads(json.dumps(payload))
        error = (payload[0] if isinstance(payload, list) else payload)["error"]
        error["message"] += f" (Authorization: {echoed})"
    await _send_json(send, status, payload, headers)


async def _send_completion(
    send: Send, config: FakeUpstreamConfig, model: str, tokens: list[str], usage: dict
) -> None:
    if config.failure == "malformed_chunk":
        await _send_bytes(send, 200, JSON_HEADERS, b'{"id": "chatcmpl-fake", "choices": [')
        return
    await asyncio.sleep(config.first_token_delay + config.token_interval * len(tokens))
    payload = completion_payload(
        model=model,
        content="".join(tokens),
        reasoning=config.reasoning,
        finish_reason=config.finish_reason,
        usage=usage,
    )
    await _send_json(send, 200, payload)


class _Token(bytes):
    """An event carrying text (reasoning or content); its writing time is recorded."""


def _stream_steps(
    config: FakeUpstreamConfig,
    encoder: ChunkEncoder,
    tokens: list[str],
    reasoning: list[str],
    usage: dict,
) -> Iterator[bytes | float | _Hold | None]:
    """What to stream: bytes to write, seconds to pause, ``_HOLD`` to wait for a release,
    or None to drop the connection."""
    if config.keepalive_comments:
        yield PING
    if config.first_token_delay:
        yield float(config.first_token_delay)
    if config.role_chunk:
        yield encoder.role()
    token_events = [_Token(encoder.reasoning(text)) for text in reasoning]
    token_events += [_Token(encoder.content(text)) for text in tokens]
    fail_at = len(reasoning) + len(tokens) // 2
    for index, event in enumerate(token_events):
        if index == fail_at and config.failure == "drop_mid_stream":
            yield None
            return
        if index == fail_at and config.failure == "error_mid_stream":
            yield encode_event(_STREAM_ERROR)
            return
        if index == fail_at and config.failure == "malformed_chunk":
            yield _MALFORMED
        if index == fail_at and config.failure == "stall_mid_stream":
            yield from _stall(keepalive_comments=config.keepalive_comments)
        if index and config.token_interval:
            yield float(config.token_interval)
        if index == config.hold_after:
            yield _HOLD
        if config.keepalive_comments and index % KEEPALIVE_EVERY == KEEPALIVE_EVERY - 1:
            yield KEEPALIVE
        if config.empty_deltas:
            yield encoder.chunk({"content": None})
            yield encoder.chunk({})
        yield event
    if config.usage_on_final_empty_chunk:
        yield encoder.finish(config.finish_reason)
        yield encoder.usage(usage)
    else:
        yield encoder.finish(config.finish_reason, usage)
    if config.failure != "no_done":
        yield DONE


def _stall(*, keepalive_comments: bool) -> Iterator[bytes | float]:
    """An hour with no new text: silence, or keep-alive comments only."""
    if not keepalive_comments:
        yield STALL_SECONDS
        return
    for _ in range(round(STALL_SECONDS / STALL_KEEPALIVE_INTERVAL)):
        yield STALL_KEEPALIVE_INTERVAL
        yield KEEPALIVE


async def _stream(
    send: Send,
    split_writes: bool,
    steps: Iterator[bytes | float | _Hold | None],
    record: RecordedRequest,
    released: threading.Event,
) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    for step in steps:
        if step is None:
            return  # returning mid-response makes uvicorn drop the connection
        if step is _HOLD:
            # Bounded, so that a test that never releases cannot keep the thread forever.
            await asyncio.to_thread(released.wait, HOLD_SECONDS)
        elif isinstance(step, float):
            await asyncio.sleep(step)
        elif split_writes:
            for start in range(0, len(step), SPLIT_WRITE_BYTES):
                piece = step[start : start + SPLIT_WRITE_BYTES]
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                # Let each piece leave on its own, so that the client reads it separately.
                await asyncio.sleep(0.001)
        else:
            await send({"type": "http.response.body", "body": step, "more_body": True})
        if isinstance(step, _Token):
            record.last_token_at = time.monotonic()
            record.tokens_sent += 1
            if record.first_token_at is None:
                record.first_token_at = record.last_token_at
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _replay(send: Send, recording: Recording) -> None:
    headers = list(recording.headers)
    await send({"type": "http.response.start", "status": recording.status, "headers": headers})
    for piece in recording.pieces():
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        # Let each piece leave on its own, so that the client reads it separately.
        await asyncio.sleep(0.001)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--token-count", type=int, default=5)
    parser.add_argument("--token-interval", type=float, default=0.0)
    parser.add_argument("--reply", default=None)
    parser.add_argument("--reasoning", default="")
    parser.add_argument("--finish-reason", default="stop")
    parser.add_argument("--failure", choices=FAILURES, default=None)
    parser.add_argument("--fail-first", type=int, default=None, help="then succeed")
    parser.add_argument("--retry-after", type=float, default=None)
    parser.add_argument("--split-writes", action="store_true")
    parser.add_argument(
        "--model-token-interval",
        action="append",
        default=[],
        metavar="MODEL=SECONDS",
        help="stream this model's replies at their own token interval (repeatable)",
    )
    parser.add_argument(
        "--request-log",
        type=Path,
        default=None,
        help="append a JSON line per chat request: its prompt, when it arrived and when its "
        "first and last tokens were written (time.monotonic(); received_at_wall: time.time())",
    )
    args = parser.parse_args(argv)
    config = FakeUpstreamConfig(
        first_token_delay=args.first_token_delay,
        token_count=args.token_count,
        token_interval=args.token_interval,
        reply=args.reply,
        reasoning=args.reasoning,
        finish_reason=args.finish_reason,
        failure=args.failure,
        fail_first=args.fail_first,
        retry_after=args.retry_after,
        split_writes=args.split_writes,
        model_token_intervals=_model_token_intervals(parser, args.model_token_interval),
    )
    with FakeUpstream(config, port=args.port, request_log=args.request_log) as fake:
        print(fake.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


def _model_token_intervals(parser: argparse.ArgumentParser, pairs: list[str]) -> dict:
    intervals = {}
    for pair in pairs:
        model, _, seconds = pair.partition("=")
        try:
            intervals[model] = float(seconds)
        except ValueError:
            parser.error(f"--model-token-interval takes MODEL=SECONDS, not {pair!r}")
    return intervals


if __name__ == "__main__":
    main()
