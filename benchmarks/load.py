"""Driving many conversations at once, through Webchat and straight at the upstream."""

import asyncio
import contextlib
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.clients import Browser, Reply, Tab, direct_reply, upstream_client
from benchmarks.procfs import CpuMeter, memory_mb
from benchmarks.stack import FakeUpstreamProcess

SAMPLE_EVERY = 0.1
OPEN_AT_ONCE = 50


@dataclass
class Stage:
    """What a run needs to reach: the signed-in browsers, their conversations, the servers."""

    browsers: list[Browser]
    # Conversation ids per model, then per username.
    conversations: dict[str, dict[str, list[int]]]
    urls: list[str]
    pids: list[int]
    upstream: FakeUpstreamProcess
    reply_timeout: float
    # Where py-spy writes what the servers spent their time on, while Webchat is loaded.
    profile_dir: Path | None = None
    sent: int = 0

    def prompt(self, label: str) -> str:
        """A prompt no other request of the run has: it names the request in the upstream's
        log."""
        self.sent += 1
        return f"Benchmark {label}, message {self.sent}: say something."

    def tab(self, index: int, model: str) -> Tab:
        """The ``index``-th conversation of the run. With several server processes and no
        load balancer, pages and sockets alternate between them, so that half of the
        replies stream to a socket on another process than the one generating them."""
        browser = self.browsers[index % len(self.browsers)]
        conversation_id = self.conversations[model][browser.username][index // len(self.browsers)]
        count = len(self.urls)
        return Tab(
            browser,
            conversation_id,
            http_url=self.urls[(index // 2) % count],
            socket_url=self.urls[index % count],
        )


@dataclass
class LoadRun:
    replies: list[Reply]
    upstream_log: dict[str, dict]
    cpu: CpuMeter
    peak_rss_mb: list[float]
    client_lag_ms: list[float] = field(default_factory=list)
    open_errors: list[str] = field(default_factory=list)


async def open_tabs(
    stage: Stage, count: int, model: str, *, load_page: bool, first: int = 0
) -> list[Tab]:
    """Open ``count`` conversation pages from the ``first``-th (a bounded number at a
    time); failures raise."""
    tabs = [stage.tab(index, model) for index in range(first, first + count)]
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def open_one(tab: Tab) -> None:
        async with gate:
            await tab.open(load_page=load_page)

    await asyncio.gather(*(open_one(tab) for tab in tabs))
    return tabs


async def close_tabs(tabs: list[Tab]) -> None:
    await asyncio.gather(*(tab.close() for tab in tabs), return_exceptions=True)


def arrival_offsets(count: int, spread: float) -> list[float]:
    """Evenly spread arrivals over ``spread`` seconds (0: all at once)."""
    return [spread * index / count for index in range(count)]


async def _at_offsets(offsets: list[float], act: Callable[[int], Awaitable[Reply]]) -> list[Reply]:
    began = time.monotonic()

    async def one(index: int) -> Reply:
        await asyncio.sleep(max(0.0, began + offsets[index] - time.monotonic()))
        return await act(index)

    return list(await asyncio.gather(*(one(index) for index in range(len(offsets)))))


@contextlib.asynccontextmanager
async def _watching(stage: Stage, pids: list[int]) -> AsyncIterator[tuple[CpuMeter, list[float]]]:
    """Sample the servers' CPU time and the client's own event-loop lag meanwhile."""
    meter = CpuMeter(pids)
    lags: list[float] = []

    async def sample() -> None:
        while True:
            meter.sample()
            planned = time.monotonic() + SAMPLE_EVERY
            await asyncio.sleep(SAMPLE_EVERY)
            lags.append(max(0.0, time.monotonic() - planned) * 1000)

    sampler = asyncio.create_task(sample())
    try:
        yield meter, lags
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        meter.sample()


@contextlib.asynccontextmanager
async def _profiling(stage: Stage, label: str) -> AsyncIterator[None]:
    """Sample the servers' Python stacks with py-spy (collapsed stacks, one file each)."""
    if stage.profile_dir is None:
        yield
        return
    stage.profile_dir.mkdir(parents=True, exist_ok=True)
    name = label.replace(" ", "-")
    spies = [
        await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--format=raw",
            "--rate=100",
            "--nonblocking",
            f"--pid={pid}",
            f"--output={stage.profile_dir / f'{name}-{pid}.txt'}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for pid in stage.pids
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        await asyncio.gather(*(spy.wait() for spy in spies))


async def through_webchat(
    stage: Stage,
    count: int,
    *,
    spread: float,
    model: str,
    label: str,
    first: int = 0,
    within: float | None = None,
) -> LoadRun:
    """``count`` open conversations each send a message, arriving over ``spread`` s."""
    tabs = await open_tabs(stage, count, model, load_page=True, first=first)
    prompts = [stage.prompt(f"{label} via Webchat") for _ in range(count)]
    within = within or stage.reply_timeout
    try:
        async with _watching(stage, stage.pids) as (meter, lags), _profiling(stage, label):
            replies = await _at_offsets(
                arrival_offsets(count, spread),
                lambda index: tabs[index].send(prompts[index], within=within),
            )
    finally:
        await close_tabs(tabs)
    return LoadRun(
        replies=replies,
        upstream_log=stage.upstream.entries(prompts),
        cpu=meter,
        peak_rss_mb=[memory_mb(pid)["peak"] for pid in stage.pids],
        client_lag_ms=lags,
    )


async def direct(
    stage: Stage,
    count: int,
    *,
    spread: float,
    model: str,
    label: str,
    within: float | None = None,
) -> LoadRun:
    """The same load straight at the fake upstream."""
    prompts = [stage.prompt(f"{label} direct") for _ in range(count)]
    assert stage.upstream.process is not None
    async with (
        upstream_client() as http,
        _watching(stage, [stage.upstream.process.pid]) as (
            meter,
            lags,
        ),
    ):
        replies = await _at_offsets(
            arrival_offsets(count, spread),
            lambda index: direct_reply(
                http,
                stage.upstream.base_url,
                model=model,
                prompt=prompts[index],
                within=within or stage.reply_timeout,
            ),
        )
    return LoadRun(
        replies=replies,
        upstream_log=stage.upstream.entries(prompts),
        cpu=meter,
        peak_rss_mb=[],
        client_lag_ms=lags,
    )


def added_ttft_ms(run: LoadRun) -> list[float]:
    """Per reply: from the upstream writing its first token to the client seeing it."""
    added = []
    for reply in run.replies:
        entry = run.upstream_log.get(reply.prompt)
        if reply.first_text_at is None or not entry or entry["first_token_at"] is None:
            continue
        added.append((reply.first_text_at - entry["first_token_at"]) * 1000)
    return added


def e2e_ttft_ms(run: LoadRun) -> list[float | None]:
    """Per reply, in arrival order: from the send (just before the POST, or the request
    to the upstream) to the client seeing its first text."""
    return [
        None if reply.first_text_at is None else (reply.first_text_at - reply.started_at) * 1000
        for reply in run.replies
    ]


def e2e_added_ms(webchat: LoadRun, upstream: LoadRun) -> list[float]:
    """Per arrival: Webchat's send-to-first-text less the same arrival's request-to-first-
    token straight from the upstream (the load's own cost on this machine)."""
    pairs = zip(e2e_ttft_ms(webchat), e2e_ttft_ms(upstream), strict=True)
    return [through - straight for through, straight in pairs if None not in (through, straight)]


def phases_ms(run: LoadRun) -> dict:
    """From the send to each step of a reply (ms): the POST answered, the upstream asked
    (its log's arrival time), the first text, the final frame."""
    steps: dict[str, list[float]] = {
        "post_answered": [],
        "upstream_asked": [],
        "first_text": [],
        "done": [],
    }
    for reply in run.replies:
        entry = run.upstream_log.get(reply.prompt) or {}
        moments = {
            "post_answered": reply.posted_at,
            "upstream_asked": entry.get("received_at"),
            "first_text": reply.first_text_at,
            "done": reply.done_at,
        }
        for name, moment in moments.items():
            if moment is not None:
                steps[name].append((moment - reply.started_at) * 1000)
    return {name: spread_of(values) for name, values in steps.items()}


def cpu_per_send_ms(run: LoadRun) -> list[float]:
    """Per send, the servers' CPU from just before the POST to the first text (the post,
    the history, the upstream request, one frame), for tabs given a CPU probe."""
    return [
        (reply.cpu_at_first_text - reply.cpu_at_start) * 1000
        for reply in run.replies
        if reply.cpu_at_start is not None and reply.cpu_at_first_text is not None
    ]


def send_phase(run: LoadRun) -> dict | None:
    """Server CPU from the first send until the upstream was asked for the last reply,
    per send; streams that began meanwhile are in it too (their chunks are counted)."""
    asked = [entry.get("received_at") for entry in run.upstream_log.values()]
    asked = [moment for moment in asked if moment is not None]
    if not run.replies or not asked:
        return None
    start, end = min(reply.started_at for reply in run.replies), max(asked)
    cpu, window = run.cpu.used_around(start, end)
    entries = [entry for entry in run.upstream_log.values() if entry["tokens"] > 1]
    return {
        "sends": len(run.replies),
        "window_s": round(window, 2),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_send": round(cpu * 1000 / len(run.replies), 1),
        "chunks_meanwhile": round(_chunks_between(entries, start, end)),
    }


def cpu_ms_per_reply(run: LoadRun) -> float | None:
    """The servers' CPU over the whole run, per reply."""
    return round(run.cpu.used() * 1000 / len(run.replies), 1) if run.replies else None


def errors(run: LoadRun) -> list[str]:
    return [f"{reply.prompt}: {reply.error}" for reply in run.replies if reply.error]


def chunks_sent(run: LoadRun) -> int:
    return sum(entry["tokens"] for entry in run.upstream_log.values())


def steady_relay(run: LoadRun) -> dict | None:
    """Upstream chunks per server CPU-second while every stream is flowing: between the
    last stream's first token and the first stream's last one (no sign-ins, posts or
    final saves in the window). Tokens are evenly spaced within each stream."""
    entries = [entry for entry in run.upstream_log.values() if entry["tokens"] > 1]
    if not entries:
        return None
    start = max(entry["first_token_at"] for entry in entries)
    end = min(entry["last_token_at"] for entry in entries)
    cpu, window = run.cpu.used_between(start, end)
    if window < 1.0 or cpu <= 0:
        return None
    start, end = end - window, end  # the window the samples actually cover
    chunks = _chunks_between(entries, start, end)
    return {
        "window_s": round(window, 2),
        "chunks": round(chunks),
        "cpu_s": round(cpu, 3),
        "chunks_per_cpu_second": round(chunks / cpu),
        "chunks_per_second": round(chunks / window),
    }


def _chunks_between(entries: list[dict], start: float, end: float) -> float:
    """Upstream chunks written between ``start`` and ``end``, tokens being evenly spaced
    within each stream."""
    chunks = 0.0
    for entry in entries:
        first, last = entry["first_token_at"], entry["last_token_at"]
        if first is None or last is None or last <= first:
            continue
        rate = (entry["tokens"] - 1) / (last - first)
        chunks += max(0.0, min(end, last) - max(start, first)) * rate
    return chunks


def frames_per_reply_second(run: LoadRun) -> list[float]:
    """Frames a tab received per second while a reply streamed (first text to final frame)."""
    rates = []
    for reply in run.replies:
        if reply.error or reply.first_text_at is None or reply.done_at is None:
            continue
        streaming = reply.done_at - reply.first_text_at
        if streaming > 0:
            rates.append(reply.streaming_frames / streaming)
    return rates


def duration_ratios(webchat: LoadRun, upstream: LoadRun) -> list[float]:
    """Each reply's time through Webchat (post to final frame) over the same arrival's time
    straight from the upstream (request to ``[DONE]``)."""
    ratios = []
    for through, straight in zip(webchat.replies, upstream.replies, strict=True):
        if through.duration is not None and straight.duration is not None:
            ratios.append(through.duration / straight.duration)
    return ratios


def percentile(values: list[float], percent: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def spread_of(values: list[float]) -> dict:
    return {
        "mean": _round(sum(values) / len(values) if values else None),
        "count": len(values),
        "p50": _round(percentile(values, 50)),
        "p95": _round(percentile(values, 95)),
        "p99": _round(percentile(values, 99)),
        "max": _round(max(values, default=None)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
