"""The upstream client's CPU cost per streamed chunk, over each HTTP transport it could use.

    python -m benchmarks.transports [--streams 100] [--chunks 100] [--repetitions 5]

A small SSE server runs in its own process on 127.0.0.1 and streams every request at
20 chunks a second (chunked, as model APIs do). This process opens ``--streams`` replies
at once through ``conversations.upstream.UpstreamClient`` with each transport in turn
(repetitions interleaved, so that a busy neighbour hurts every transport alike), and
reports its own CPU time (``time.process_time()``: user and system, all threads) divided
by the chunks it received, the median over the repetitions and their range.

The client uses the last one (conversations/upstream/transport.py) unless a proxy is set.
"""

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from conversations.upstream.chunks import ContentDelta
from conversations.upstream.client import LIMITS, ChatRequest, UpstreamClient
from conversations.upstream.transport import AiohttpUpstreamTransport

ROOT = Path(__file__).resolve().parent.parent
CHUNKS_PER_SECOND = 20
REQUEST = ChatRequest(model="bench-model", messages=[{"role": "user", "content": "Hello"}])


# The server


def _sse_chunk(index: int) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": {"content": f" word{index}"}, "finish_reason": None}],
    }
    event = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


async def _serve_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunks: int):
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:  # kept-alive connections carry one request after another
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            start = loop.time()
            for index in range(chunks):
                # On a fixed schedule, so that a late wake-up does not slow the whole stream.
                await asyncio.sleep(max(0.0, start + index / CHUNKS_PER_SECOND - loop.time()))
                writer.write(_sse_chunk(index))
            done = b"data: [DONE]\n\n"
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            await writer.drain()


async def _serve(chunks: int) -> None:
    server = await asyncio.start_server(
        lambda reader, writer: _serve_stream(reader, writer, chunks), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# The client


def _transports() -> dict[str, Callable[[], httpx.AsyncBaseTransport]]:
    return {
        "httpx, its default transport (httpcore on anyio)": (
            lambda: httpx.AsyncHTTPTransport(limits=LIMITS)
        ),
        "httpx over httpx-aiohttp's AiohttpTransport, as it comes": (
            lambda: AiohttpTransport(limits=LIMITS)
        ),
        "httpx over Webchat's AiohttpUpstreamTransport (httpx-aiohttp, errors renamed)": (
            lambda: AiohttpUpstreamTransport(LIMITS)
        ),
    }


async def _one_stream(client: UpstreamClient) -> int:
    received = 0
    async for event in client.stream_chat(REQUEST):
        if isinstance(event, ContentDelta):
            received += 1
    return received


async def _repetition(
    port: int, make_transport: Callable[[], httpx.AsyncBaseTransport], streams: int
) -> tuple[float, int]:
    """CPU seconds this process spent on ``streams`` replies at once, and chunks received."""
    async with UpstreamClient(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="bench-key",
        connect_timeout=30.0,
        read_timeout=30.0,
        transport=make_transport(),
    ) as client:
        cpu_before = time.process_time()
        counts = await asyncio.gather(*(_one_stream(client) for _ in range(streams)))
        cpu = time.process_time() - cpu_before
    return cpu, sum(counts)


def _host() -> str:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    today = datetime.date.today().isoformat()
    return (
        f"{today}, commit {commit or 'unknown'}, {model}, {_cores()} cores, "
        f"Python {platform.python_version()}, httpx {httpx.__version__}, "
        f"aiohttp {aiohttp.__version__}, httpx-aiohttp {metadata.version('httpx-aiohttp')}"
    )


def _cores() -> int:
    return len(os.sched_getaffinity(0))


async def _measure(args: argparse.Namespace, port: int) -> dict[str, list[float]]:
    """Client CPU microseconds per chunk of each repetition, by transport."""
    transports = _transports()
    per_chunk: dict[str, list[float]] = {name: [] for name in transports}
    expected = args.streams * args.chunks
    for repetition in range(args.repetitions + 1):
        for name, make_transport in transports.items():
            cpu, received = await _repetition(port, make_transport, args.streams)
            if received != expected:
                raise SystemExit(f"{name}: {received} chunks received, not {expected}")
            if repetition:  # the first round warms up caches and imports
                per_chunk[name].append(cpu / received * 1e6)
    return per_chunk


def _report(args: argparse.Namespace, per_chunk: dict[str, list[float]]) -> None:
    print(_host())
    print(
        f"{args.streams} streams at once, {CHUNKS_PER_SECOND} chunks a second each, "
        f"{args.chunks} chunks a stream, median of {args.repetitions} repetitions\n"
    )
    print("| Transport | Client CPU per chunk (median) | Range |")
    print("|---|---:|---:|")
    for name, values in per_chunk.items():
        median, low, high = statistics.median(values), min(values), max(values)
        print(f"| {name} | {median:.0f} µs | {low:.0f} to {high:.0f} µs |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=100, help="chunks a stream")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.chunks))
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.transports", "--serve", "--chunks", str(args.chunks)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        per_chunk = asyncio.run(_measure(args, port))
    finally:
        server.terminate()
        server.wait()
    _report(args, per_chunk)


if __name__ == "__main__":
    main()
