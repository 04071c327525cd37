"""Webchat's benchmark: what it adds to the model's latency, and what it costs to run.

    make bench              # the embedded default (one process, SQLite, in-memory layer)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/9 make bench   # and the production set-up

The production set-up (two daphne processes, PostgreSQL, Redis) runs when both variables
are set: it makes a database of its own on that server (dropped afterwards) and uses that
Redis database with keys of its own (deleted afterwards). Results go to benchmarks/out/
(a table and JSON); ``--publish`` also writes benchmarks/results/<date>-<set-up>.json.
Every request goes to 127.0.0.1. ``--only ttft,api,chromium,markdown,concurrency`` runs only
those stages; ``--quick`` runs every figure that has a target with fewer repeats; the
Chromium stage drives /usr/bin/chromium through Playwright. See benchmarks/RESULTS.md for
what each figure means.
"""

import argparse
import asyncio
import datetime
import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect

from benchmarks import browser, load
from benchmarks.clients import Browser, Tab
from benchmarks.procfs import OtherLoad, cpu_probe, machine, memory_mb
from benchmarks.stack import (
    EMBEDDED,
    FAST_MODEL,
    MAX_UPSTREAM_PER_PROCESS,
    MODEL,
    PASSWORD,
    ROOT,
    FakeUpstreamProcess,
    Setup,
    Upstream,
    Webchat,
    production,
    redis_cpu_seconds,
)
from tests.fake_upstream import MARKDOWN_MARKER, MARKDOWN_TOKENS

BENCH_DIR = ROOT / "benchmarks"
# Which of the fast model's conversations each stage uses (the first is the one-user
# stage's, the Markdown ones at once follow the last).
FAST_CHROMIUM, FAST_MARKDOWN, FAST_FIRST_MARKDOWN = 1, 2, 3
FRAME_INTERVAL = 0.05  # WEBCHAT_FRAME_INTERVAL's default, which the servers run with
RENDER_INTERVAL = 0.75  # WEBCHAT_RENDER_INTERVAL's default
BROWSER_HEADERS = {
    "Accept-Encoding": "gzip, deflate, br",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) webchat-bench",
}


@dataclass(frozen=True)
class Plan:
    """How much of everything a run does."""

    pace: Upstream
    users: int
    single_user_replies: int
    mid_load: int  # the "200 conversations" of the targets
    spread_seconds: float  # arrivals of mid_load conversations spread over this
    step_spread_seconds: float  # arrivals of the concurrency steps spread over this
    steps_up: tuple[int, ...]  # tried in order while each holds
    steps_down: tuple[int, ...]  # tried in order after the first step fails
    open_sockets: int
    long_messages: int
    render_repeats: int
    step_budget_seconds: float
    measure_make_run: bool
    browser_sends: int  # typed into Chromium, one after another
    markdown_one_user: int  # 1,500-token replies one after another
    markdown_concurrent: int  # and at once

    @property
    def max_conversations(self) -> int:
        # The fast model's conversations: one user, Chromium, Markdown one user, at once.
        fast = FAST_FIRST_MARKDOWN + self.markdown_concurrent
        return max(*self.steps_up, self.open_sockets, self.mid_load, fast)


FULL = Plan(
    pace=Upstream(
        first_token_delay=0.2, token_interval=0.05, token_count=100, fast_token_interval=0.01
    ),
    users=20,
    single_user_replies=20,
    mid_load=200,
    spread_seconds=2.0,
    step_spread_seconds=5.0,
    steps_up=(500, 750, 1000),
    steps_down=(250, 100, 50),
    open_sockets=500,
    long_messages=2000,
    render_repeats=5,
    step_budget_seconds=150,
    measure_make_run=True,
    browser_sends=30,
    markdown_one_user=3,
    markdown_concurrent=20,
)
# Every figure with a target, at its full load, but fewer repeats and no stepping up.
QUICK = Plan(
    pace=FULL.pace,
    users=20,
    single_user_replies=10,
    mid_load=200,
    spread_seconds=2.0,
    step_spread_seconds=5.0,
    steps_up=(500,),
    steps_down=(),
    open_sockets=200,
    long_messages=500,
    render_repeats=2,
    step_budget_seconds=60,
    measure_make_run=False,
    browser_sends=10,
    markdown_one_user=1,
    markdown_concurrent=10,
)
SMOKE = Plan(
    pace=Upstream(
        first_token_delay=0.05, token_interval=0.01, token_count=10, fast_token_interval=0.002
    ),
    users=2,
    single_user_replies=2,
    mid_load=4,
    spread_seconds=0.2,
    step_spread_seconds=0.2,
    steps_up=(4,),
    steps_down=(),
    open_sockets=4,
    long_messages=20,
    render_repeats=1,
    step_budget_seconds=30,
    measure_make_run=False,
    browser_sends=2,
    markdown_one_user=1,
    markdown_concurrent=2,
)
STAGES = ("ttft", "api", "chromium", "markdown", "concurrency")

# Targets on a 2-core machine, the load generator on the same cores: (figure path,
# comparison, limit, what it says). End to end first: send to first text, less the same
# load's own time straight from the upstream.
TARGETS = [
    (
        "chromium.e2e_added_ms.p50",
        "<=",
        20,
        "end-to-end added time to first token, one user, Chromium, p50",
    ),
    (
        "ttft.spread.e2e_added_ms.p95",
        "<=",
        250,
        "end-to-end added time to first token, 200 conversations over 2 s, p95",
    ),
    (
        "ttft.burst.e2e_added_ms.p95",
        "<=",
        1000,
        "end-to-end added time to first token, burst of 200 sends, p95",
    ),
    ("ttft.one_user.cpu_per_send_ms.mean", "<=", 5, "server CPU per send, ms"),
    (
        "relay.chunks_per_cpu_second",
        ">=",
        10_000,
        "upstream chunks relayed per server CPU-second, 200 streams",
    ),
    (
        "ttft.spread.duration_ratio.max",
        "<=",
        1.2,
        "every reply of 200 over 2 s done within this many times its upstream time",
    ),
    (
        "relay.frames_per_reply_second.p95",
        "<=",
        round(1 / FRAME_INTERVAL + 1 / RENDER_INTERVAL, 1),
        "websocket frames per second of a reply streamed at 100 tokens/s, p95",
    ),
    ("concurrency.target_holds", "is", True, "500 conversations at 20 chunks/s over 5 s hold"),
    ("memory.with_sockets_mb_per_process", "<", 200, "server RSS with 500 open sockets, MB"),
    ("page.kilobytes", "<=", 60, "compressed KB to show a conversation the first time"),
    ("page.long_render_ms.median", "<=", 100, "server time to render 2,000 messages, ms"),
    ("start.seconds", "<=", 3, "from the start command to the first page, s"),
]


async def run_setup(
    setup: Setup,
    plan: Plan,
    workdir: Path,
    *,
    only: frozenset[str] = frozenset(STAGES),
    profile_dir: Path | None,
) -> dict:
    others = OtherLoad()
    upstream = FakeUpstreamProcess(workdir, plan.pace)
    upstream.start()
    per_user = -(-plan.max_conversations // plan.users)
    webchat = Webchat(setup, workdir, upstream.base_url, max_replies=per_user)
    result: dict = {
        "setup": setup.name,
        "processes": setup.processes,
        "database": "PostgreSQL" if setup.postgres else "SQLite",
        "channel_layer": "Redis (channels-redis)" if setup.redis else "in-memory",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "upstream": asdict(plan.pace),
        "bench_settings": {
            "WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER": per_user,
            "WEBCHAT_MAX_UPSTREAM_PER_PROCESS": MAX_UPSTREAM_PER_PROCESS,
            "users": plan.users,
        },
    }
    try:
        _say(f"[{setup.name}] preparing the database and {plan.max_conversations} conversations")
        seeded = webchat.prepare(
            users=plan.users,
            conversations_per_user=per_user,
            long_messages=plan.long_messages,
        )
        start = {"systemd_style_s": round(webchat.start(), 2)}
        if plan.measure_make_run:
            start["make_run_s"] = round(webchat.measure_make_run_start(), 2)
        start["seconds"] = start.get("make_run_s", start["systemd_style_s"])
        if setup.processes > 1:
            start["seconds"] = start["systemd_style_s"]
        result["start"] = start
        browsers = [Browser(username) for username in seeded["users"]]
        await asyncio.gather(
            *(
                browser.sign_in(webchat.urls[index % len(webchat.urls)], PASSWORD)
                for index, browser in enumerate(browsers)
            )
        )
        stage = load.Stage(
            browsers=browsers,
            conversations={model: seeded["conversations"][model] for model in (MODEL, FAST_MODEL)},
            urls=webchat.urls,
            pids=webchat.pids,
            upstream=upstream,
            reply_timeout=_reply_seconds(plan.pace) * 4 + 30,
            profile_dir=profile_dir,
        )
        result["page"] = await _page(stage, seeded, plan)
        # Before any load: memory taken once is not given back to the system.
        result["memory"] = {"idle_mb": [round(memory_mb(pid)["rss"], 1) for pid in webchat.pids]}
        result["memory"].update(await _memory_with_sockets(stage, plan))
        if "ttft" in only:
            result["ttft"] = await _ttft(stage, plan, setup)
            result["relay"] = _relay(result["ttft"], plan.pace)
        if "api" in only:
            result["api"] = await _api(stage, plan, seeded["api_key"])
        if "chromium" in only:
            result["chromium"] = await _chromium(stage, plan)
        if "markdown" in only:
            result["markdown"] = await _markdown(stage, plan)
        if "concurrency" in only:
            result["concurrency"] = await _concurrency(stage, plan)
        for browser in browsers:
            await browser.aclose()
    except Exception:
        _say_server_logs(workdir)
        raise
    finally:
        webchat.stop()
        upstream.stop()
    # Figures taken while other programs kept the cores busy are not this machine's best.
    result["machine"]["load_average_before"] = round(others.load_before, 2)
    result["machine"]["other_programs_cores"] = round(others.cores(), 2)
    result["targets"] = _judge(result, plan)
    return result


async def _page(stage: load.Stage, seeded: dict, plan: Plan) -> dict:
    """What a browser downloads to show a conversation the first time, and the time to
    render a long one."""
    _say("  page weight and the long conversation's render time")
    url = stage.urls[0]
    owner = Browser(seeded["reader"])
    await owner.sign_in(url, PASSWORD)
    items = []
    async with httpx.AsyncClient(
        headers=BROWSER_HEADERS, cookies=owner.http.cookies, timeout=60
    ) as http:
        page = await http.get(f"{url}/c/{seeded['short_conversation']}/")
        page.raise_for_status()
        items.append(_wire_item("page", page))
        for asset in _assets(page.text):
            response = await http.get(f"{url}{asset}")
            response.raise_for_status()
            items.append(_wire_item(asset, response))
        async with connect(
            f"{url.replace('http', 'ws', 1)}/ws/conversations/{seeded['short_conversation']}/",
            additional_headers={"Cookie": owner.cookie_header},
            origin=url,
        ) as socket:
            state = await asyncio.wait_for(socket.recv(), 10)
        items.append({"url": "websocket state frame", "bytes": len(state.encode()), "encoding": ""})
        render_times = []
        for _ in range(plan.render_repeats):
            started = time.monotonic()
            long_page = await http.get(
                f"{url}/c/{seeded['long_conversation']}/",
                headers={"Accept-Encoding": "identity"},
            )
            render_times.append((time.monotonic() - started) * 1000)
            long_page.raise_for_status()
    await owner.aclose()
    total = sum(item["bytes"] for item in items)
    return {
        "requests": len(items) - 1,
        "bytes": total,
        "kilobytes": round(total / 1024, 1),
        "items": items,
        "long_messages": plan.long_messages,
        "long_page_bytes": len(long_page.content),
        "long_render_ms": {
            "median": round(sorted(render_times)[len(render_times) // 2], 1),
            "min": round(min(render_times), 1),
            "all": [round(value, 1) for value in render_times],
        },
    }


def _assets(html: str) -> list[str]:
    """Static files the page makes a browser fetch: styles, scripts and the icon."""
    found = re.findall(r'<(?:link|script)\b[^>]*?\s(?:href|src)="(/[^"]+)"', html)
    return list(dict.fromkeys(found))


def _wire_item(url: str, response: httpx.Response) -> dict:
    """Bytes on the wire: the status line and headers, and the body as sent."""
    head = len(f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n") + 2
    head += sum(len(name) + len(value) + 4 for name, value in response.headers.raw)
    return {
        "url": url,
        "bytes": head + response.num_bytes_downloaded,
        "encoding": response.headers.get("content-encoding", ""),
    }


async def _ttft(stage: load.Stage, plan: Plan, setup: Setup) -> dict:
    figures = {}
    _say(f"  one user, {plan.single_user_replies} replies in a row, fast model")
    tab = stage.tab(0, FAST_MODEL)
    tab.cpu_probe = cpu_probe(stage.pids)
    one_user = await _in_a_row(
        stage, tab, [stage.prompt("one user via Webchat") for _ in range(plan.single_user_replies)]
    )
    direct = await _direct_in_a_row(stage, plan.single_user_replies)
    figures["one_user"] = _compare(one_user, direct)
    figures["one_user"]["cpu_per_send_ms"] = load.spread_of(load.cpu_per_send_ms(one_user))
    figures["one_user"]["frames_per_reply_second"] = load.spread_of(
        load.frames_per_reply_second(one_user)
    )
    for name, spread in (("spread", plan.spread_seconds), ("burst", 0.0)):
        _say(f"  {plan.mid_load} conversations, arrivals over {spread:g} s")
        redis_before = redis_cpu_seconds(setup.redis) if setup.redis else 0.0
        through = await load.through_webchat(
            stage, plan.mid_load, spread=spread, model=MODEL, label=name
        )
        redis_used = redis_cpu_seconds(setup.redis) - redis_before if setup.redis else None
        straight = await load.direct(stage, plan.mid_load, spread=spread, model=MODEL, label=name)
        figures[name] = _compare(through, straight)
        figures[name]["arrivals_over_s"] = spread
        figures[name]["send_phase"] = load.send_phase(through)
        figures[name]["relay"] = _relay_of(through, redis_used)
    return figures


async def _api(stage: load.Stage, plan: Plan, key: str) -> dict:
    """One developer's script: streamed completions through ``/api/v1``, one after
    another (the fast model), read as the upstream's own are, next to the same straight."""
    count = plan.single_user_replies
    _say(f"  one user, {count} API completions in a row, fast model")
    prompts = [stage.prompt("one user via the API") for _ in range(count)]
    api_base = f"{stage.urls[0]}/api/v1"
    async with (
        httpx.AsyncClient(
            timeout=stage.reply_timeout, headers={"Authorization": f"Bearer {key}"}
        ) as http,
        load._watching(stage, stage.pids) as (meter, lags),
    ):
        replies = [
            await load.direct_reply(
                http, api_base, model=FAST_MODEL, prompt=prompt, within=stage.reply_timeout
            )
            for prompt in prompts
        ]
    through = load.LoadRun(replies, stage.upstream.entries(prompts), meter, [], lags)
    direct = await _direct_in_a_row(stage, count, label="api")
    return {"one_user": _compare(through, direct)}


async def _in_a_row(
    stage: load.Stage, tab: Tab, prompts: list[str], within: float | None = None
) -> load.LoadRun:
    """One open conversation sends ``prompts``, each once the previous reply is done."""
    await tab.open()
    async with load._watching(stage, stage.pids) as (meter, lags):
        replies = [
            await tab.send(prompt, within=within or stage.reply_timeout) for prompt in prompts
        ]
    await tab.close()
    return load.LoadRun(replies, stage.upstream.entries(prompts), meter, [], lags)


async def _direct_in_a_row(
    stage: load.Stage, count: int, label: str = "one user", within: float | None = None
) -> load.LoadRun:
    prompts = [stage.prompt(f"{label} direct") for _ in range(count)]
    async with load.upstream_client() as http:
        replies = [
            await load.direct_reply(
                http,
                stage.upstream.base_url,
                model=FAST_MODEL,
                prompt=prompt,
                within=within or stage.reply_timeout,
            )
            for prompt in prompts
        ]
    return load.LoadRun(replies, stage.upstream.entries(prompts), load.CpuMeter([]), [])


def _compare(through: load.LoadRun, straight: load.LoadRun) -> dict:
    ratios = load.duration_ratios(through, straight)
    return {
        "conversations": len(through.replies),
        "errors": len(load.errors(through)),
        "error_examples": load.errors(through)[:3],
        # End to end: send to first text, less the same arrival straight from the upstream.
        "e2e_added_ms": load.spread_of(load.e2e_added_ms(through, straight)),
        "e2e_ttft_ms": load.spread_of(_known(load.e2e_ttft_ms(through))),
        "direct_ttft_ms": load.spread_of(_known(load.e2e_ttft_ms(straight))),
        "phases_ms": load.phases_ms(through),
        "cpu_ms_per_reply": load.cpu_ms_per_reply(through),
        # Anchored on the upstream writing its first token: what happens after it only.
        "webchat_added_ms": load.spread_of(load.added_ttft_ms(through)),
        "direct_added_ms": load.spread_of(load.added_ttft_ms(straight)),
        "direct_errors": len(load.errors(straight)),
        "webchat_reply_s": load.spread_of([r.duration for r in through.replies if r.duration]),
        "direct_reply_s": load.spread_of([r.duration for r in straight.replies if r.duration]),
        "duration_ratio": load.spread_of(ratios),
        "client_lag_ms": load.spread_of(through.client_lag_ms),
        "server_peak_rss_mb": [round(value, 1) for value in through.peak_rss_mb],
    }


def _known(values: list[float | None]) -> list[float]:
    return [value for value in values if value is not None]


async def _chromium(stage: load.Stage, plan: Plan) -> dict:
    """Sends typed into Chromium at one user, then the same straight to the upstream."""
    if reason := browser.missing():
        _say(f"  Chromium: skipped, {reason}")
        return {"skipped": reason}
    _say(f"  Chromium: {plan.browser_sends} sends in a row, fast model")
    tab = stage.tab(FAST_CHROMIUM, FAST_MODEL)
    prompts = [stage.prompt("Chromium") for _ in range(plan.browser_sends)]
    sends = await browser.send_in_a_row(
        base_url=tab.http_url,
        cookies=tab.browser.http.cookies,
        conversation_id=tab.conversation_id,
        prompts=prompts,
        within=stage.reply_timeout,
    )
    log = stage.upstream.entries(prompts)
    direct = await _direct_in_a_row(stage, plan.browser_sends, "Chromium")
    direct_ttft = load.e2e_ttft_ms(direct)
    added = [
        send.text_ms - straight
        for send, straight in zip(sends, direct_ttft, strict=True)
        if send.text_ms is not None and straight is not None
    ]
    failed = [f"{send.prompt}: {send.error}" for send in sends if send.error]
    return {
        "sends": len(sends),
        "errors": len(failed),
        "error_examples": failed[:3],
        "e2e_added_ms": load.spread_of(added),
        "e2e_ttft_ms": load.spread_of(_known([send.text_ms for send in sends])),
        "direct_ttft_ms": load.spread_of(_known(direct_ttft)),
        "phases_ms": _browser_phases(sends, log),
    }


def _browser_phases(sends: list[browser.BrowserSend], log: dict[str, dict]) -> dict:
    """From the keydown (ms): the POST answered, the upstream asked (its wall-clock
    arrival), text in the DOM, the next animation frame, the final state."""
    asked = [
        log[send.prompt]["received_at_wall"] * 1000 - send.keydown_wall_ms
        for send in sends
        if send.prompt in log
    ]
    return {
        "post_answered": load.spread_of(_known([send.posted_ms for send in sends])),
        "upstream_asked": load.spread_of(asked),
        "first_text": load.spread_of(_known([send.text_ms for send in sends])),
        "painted": load.spread_of(_known([send.painted_ms for send in sends])),
        "done": load.spread_of(_known([send.done_ms for send in sends])),
    }


async def _markdown(stage: load.Stage, plan: Plan) -> dict:
    """A 1,500-token Markdown reply (headings, a list, a table, two code blocks) at the
    fast model's pace: one user, then several at once."""
    pace = plan.pace
    within = (pace.first_token_delay + MARKDOWN_TOKENS * pace.fast_token_interval) * 4 + 30
    label = f"Markdown {MARKDOWN_MARKER}"
    _say(f"  {MARKDOWN_TOKENS}-token Markdown replies: {plan.markdown_one_user} in a row")
    tab = stage.tab(FAST_MARKDOWN, FAST_MODEL)
    prompts = [stage.prompt(f"{label} one user") for _ in range(plan.markdown_one_user)]
    one_user = await _in_a_row(stage, tab, prompts, within)
    direct = await _direct_in_a_row(stage, plan.markdown_one_user, label, within)
    figures = {"tokens": MARKDOWN_TOKENS, "one_user": _markdown_figures(one_user, direct)}
    count = plan.markdown_concurrent
    _say(f"  {MARKDOWN_TOKENS}-token Markdown replies: {count} at once")
    through = await load.through_webchat(
        stage,
        count,
        spread=0.0,
        model=FAST_MODEL,
        label=label,
        first=FAST_FIRST_MARKDOWN,
        within=within,
    )
    straight = await load.direct(
        stage, count, spread=0.0, model=FAST_MODEL, label=label, within=within
    )
    figures["at_once"] = _markdown_figures(through, straight)
    return figures


def _markdown_figures(through: load.LoadRun, straight: load.LoadRun) -> dict:
    chunks = load.chunks_sent(through)
    cpu = through.cpu.used()
    return {
        "conversations": len(through.replies),
        "errors": len(load.errors(through)),
        "error_examples": load.errors(through)[:3],
        "e2e_added_ms": load.spread_of(load.e2e_added_ms(through, straight)),
        "webchat_added_ms": load.spread_of(load.added_ttft_ms(through)),
        "duration_ratio": load.spread_of(load.duration_ratios(through, straight)),
        "webchat_reply_s": load.spread_of([r.duration for r in through.replies if r.duration]),
        "direct_reply_s": load.spread_of([r.duration for r in straight.replies if r.duration]),
        "cpu_ms_per_reply": load.cpu_ms_per_reply(through),
        "cpu_us_per_chunk": round(cpu * 1e6 / chunks) if chunks else None,
    }


def _relay_of(run: load.LoadRun, redis_cpu: float | None) -> dict:
    cpu = run.cpu.used()
    chunks = load.chunks_sent(run)
    return {
        "chunks": chunks,
        "server_cpu_s": round(cpu, 2),
        "redis_cpu_s": None if redis_cpu is None else round(redis_cpu, 2),
        "chunks_per_cpu_second_whole_run": round(chunks / cpu) if cpu else None,
        "steady": load.steady_relay(run),
    }


def _relay(ttft: dict, pace: Upstream) -> dict:
    burst = ttft["burst"]["relay"]
    return {
        "streams": ttft["burst"]["conversations"],
        "steady": burst["steady"] or {},
        "whole_run_chunks_per_cpu_second": burst["chunks_per_cpu_second_whole_run"],
        # The steady window is missing when streams did not all overlap for a second.
        "chunks_per_cpu_second": (burst["steady"] or {}).get(
            "chunks_per_cpu_second", burst["chunks_per_cpu_second_whole_run"]
        ),
        "redis_cpu_s": burst["redis_cpu_s"],
        "frames_per_reply_second": ttft["one_user"]["frames_per_reply_second"],
        "fast_model_tokens_per_second": round(1 / pace.fast_token_interval),
    }


async def _concurrency(stage: load.Stage, plan: Plan) -> dict:
    """The largest number of conversations (of those tried) that holds the targets; the
    search stops when a step fails or its time budget is spent."""
    deadline = time.monotonic() + plan.step_budget_seconds
    steps = []
    largest = 0
    candidates = list(plan.steps_up)
    while candidates and time.monotonic() < deadline:
        count = candidates.pop(0)
        _say(f"  concurrency step: {count} conversations over {plan.step_spread_seconds:g} s")
        through = await load.through_webchat(
            stage, count, spread=plan.step_spread_seconds, model=MODEL, label=f"step {count}"
        )
        straight = await load.direct(
            stage, count, spread=plan.step_spread_seconds, model=MODEL, label=f"step {count}"
        )
        step = _compare(through, straight)
        step["holds"] = (
            step["errors"] == 0
            and step["direct_errors"] == 0
            and (step["duration_ratio"]["max"] or 99) <= 1.2
            and (step["webchat_added_ms"]["p95"] or 1e9) <= 500
        )
        steps.append(step)
        if step["holds"]:
            largest = max(largest, count)
        elif count in plan.steps_up:
            candidates = [n for n in plan.steps_down if n < count]
        else:
            candidates = []
        if step["holds"] and count not in plan.steps_up:
            break  # coming down: the first step that holds is the answer
    target = plan.steps_up[0]
    return {
        "arrivals_over_s": plan.step_spread_seconds,
        "steps": steps,
        "largest_holding": largest,
        "target_conversations": target,
        "target_holds": largest >= target,
    }


async def _memory_with_sockets(stage: load.Stage, plan: Plan) -> dict:
    _say(f"  memory with {plan.open_sockets} open sockets")
    tabs = await load.open_tabs(stage, plan.open_sockets, MODEL, load_page=False)
    await asyncio.sleep(1)
    rss = [round(memory_mb(pid)["rss"], 1) for pid in stage.pids]
    peak = [round(memory_mb(pid)["peak"], 1) for pid in stage.pids]
    await load.close_tabs(tabs)
    return {
        "sockets": plan.open_sockets,
        "with_sockets_mb": rss,
        "with_sockets_mb_per_process": max(rss),
        "peak_mb": peak,
    }


def _judge(result: dict, plan: Plan) -> list[dict]:
    judged = []
    for path, comparison, limit, what in TARGETS:
        value = _lookup(result, path)
        met = None
        if value is not None:
            met = {
                "<=": lambda v, lim: v <= lim,
                ">=": lambda v, lim: v >= lim,
                "<": lambda v, lim: v < lim,
                "is": lambda v, lim: v is lim,
            }[comparison](value, limit)
        judged.append(
            {
                "figure": path,
                "what": what,
                "value": value,
                "target": f"{comparison} {limit}",
                "met": met,
            }
        )
    return judged


def _lookup(data: dict, path: str):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _reply_seconds(pace: Upstream) -> float:
    return pace.first_token_delay + pace.token_interval * pace.token_count


def table(result: dict) -> str:
    """The figures as a Markdown table: Webchat, the upstream alone, the target."""
    targets = {item["figure"]: item for item in result["targets"]}
    rows = [("Figure", "Webchat", "Upstream alone", "Target", "Met")]

    def add(label: str, webchat: str, alone: str = "", path: str = "") -> None:
        item = targets.get(path)
        met = "" if item is None else {True: "yes", False: "**no**", None: "n/a"}[item["met"]]
        rows.append((label, webchat, alone, item["target"] if item else "", met))

    def spread(figures: dict, keys: tuple[str, ...] = ("p50", "p95", "p99")) -> str:
        return " / ".join(_fmt(figures[key]) for key in keys)

    ttft, chromium, markdown = result.get("ttft"), result.get("chromium"), result.get("markdown")
    scenarios = []
    if ttft:
        many = ttft["burst"]["conversations"]
        over = f"{many} over {ttft['spread']['arrivals_over_s']:g} s"
        scenarios = [("one_user", "one user"), ("spread", over), ("burst", f"burst of {many}")]
    # The headline: from the send to the first text, less the upstream's own time.
    targeted = {"one_user": None, "spread": "p95", "burst": "p95"}
    for name, label in scenarios:
        figures = ttft[name]
        path = f"ttft.{name}.e2e_added_ms.{targeted[name]}" if targeted[name] else ""
        add(
            f"End-to-end added TTFT, {label}, socket (ms p50/p95/p99)",
            spread(figures["e2e_added_ms"]),
            spread(figures["direct_ttft_ms"]),
            path,
        )
    if api := result.get("api"):
        add(
            "End-to-end added TTFT, one user, API stream (ms p50/p95/p99)",
            spread(api["one_user"]["e2e_added_ms"]),
            spread(api["one_user"]["direct_ttft_ms"]),
        )
    if chromium and "skipped" in chromium:
        add("End-to-end added TTFT, one user, Chromium", f"skipped: {chromium['skipped']}")
        chromium = None
    if chromium:
        add(
            "End-to-end added TTFT, one user, Chromium (ms p50/p95/p99)",
            spread(chromium["e2e_added_ms"]),
            spread(chromium["direct_ttft_ms"]),
            "chromium.e2e_added_ms.p50",
        )
    for name, label in scenarios:
        add(
            f"Send phases, {label} (ms from the send, p50 (p95))",
            _phases(ttft[name]["phases_ms"]),
        )
    if chromium:
        add(
            "Send phases, Chromium (ms from the keydown, p50 (p95))", _phases(chromium["phases_ms"])
        )
    if ttft:
        add(
            "Server CPU per send, one user (ms mean/p50/p95, send to first text)",
            spread(ttft["one_user"]["cpu_per_send_ms"], ("mean", "p50", "p95")),
            "",
            "ttft.one_user.cpu_per_send_ms.mean",
        )
        for name, label in scenarios[1:]:
            phase = ttft[name]["send_phase"] or {}
            add(
                f"Server CPU per send, {label} (ms; first send to last upstream request, "
                f"{_fmt(phase.get('chunks_meanwhile'))} chunks meanwhile)",
                _fmt(phase.get("cpu_ms_per_send")),
            )
        relay = result["relay"]
        steady = relay["steady"].get("chunks_per_cpu_second")
        add(
            f"Chunks per server CPU-second, {relay['streams']} streams (steady / whole run)",
            f"{_fmt(steady)} / {_fmt(relay['whole_run_chunks_per_cpu_second'])}",
            "",
            "relay.chunks_per_cpu_second",
        )
        add(
            f"Server CPU per reply, {scenarios[1][1]} / {scenarios[2][1]} (ms)",
            f"{_fmt(ttft['spread']['cpu_ms_per_reply'])} / "
            f"{_fmt(ttft['burst']['cpu_ms_per_reply'])}",
        )
        add(
            f"Reply time over upstream time, {scenarios[1][1]} (p50/p95/max)",
            spread(ttft["spread"]["duration_ratio"], ("p50", "p95", "max")),
            "",
            "ttft.spread.duration_ratio.max",
        )
    if markdown:
        for name, how in (("one_user", "in a row"), ("at_once", "at once")):
            figures = markdown[name]
            label = f"{markdown['tokens']:,}-token Markdown, {figures['conversations']} {how}"
            add(
                f"{label}: end-to-end added TTFT (ms p50/p95)",
                spread(figures["e2e_added_ms"], ("p50", "p95")),
            )
            add(
                f"{label}: reply time (s p50/max), over upstream time (p50/max)",
                f"{spread(figures['webchat_reply_s'], ('p50', 'max'))}; "
                f"{spread(figures['duration_ratio'], ('p50', 'max'))}",
                spread(figures["direct_reply_s"], ("p50", "max")),
            )
            add(
                f"{label}: server CPU per reply (ms), per chunk (µs); errors",
                f"{_fmt(figures['cpu_ms_per_reply'])}, {_fmt(figures['cpu_us_per_chunk'])}; "
                f"{_fmt(figures['errors'])}",
            )
    # Anchored on the upstream's first token: what happens after the upstream answers.
    for name, label in scenarios:
        figures = ttft[name]
        add(
            f"Added TTFT after the upstream's first token, {label} (ms p50/p95/p99)",
            spread(figures["webchat_added_ms"]),
            spread(figures["direct_added_ms"]),
        )
    for name, label in scenarios[1:]:
        figures = ttft[name]
        keys = ("p50", "p95", "max")
        add(
            f"Reply time, {label} (s p50/p95/max)",
            spread(figures["webchat_reply_s"], keys),
            spread(figures["direct_reply_s"], keys),
        )
        add(f"Errors, {label}", _fmt(figures["errors"]), _fmt(figures["direct_errors"]))
    if chromium:
        add("Errors, Chromium", _fmt(chromium["errors"]))
    if ttft:
        relay = result["relay"]
        add(
            "Websocket frames per second of a fast model's reply (p50/p95)",
            spread(relay["frames_per_reply_second"], ("p50", "p95")),
            f"{relay['fast_model_tokens_per_second']} (tokens/s)",
            "relay.frames_per_reply_second.p95",
        )
    concurrency = result.get("concurrency")
    if concurrency:
        tried = ", ".join(
            f"{step['conversations']} {'holds' if step['holds'] else 'fails'}"
            for step in concurrency["steps"]
        )
        add(
            f"Most conversations holding the targets ({tried})",
            _fmt(concurrency["largest_holding"]),
            "",
            "concurrency.target_holds",
        )
    memory = result["memory"]
    add("Server RSS idle (MB, per process)", _fmt_list(memory["idle_mb"]))
    add(
        f"Server RSS with {memory['sockets']} open sockets (MB, per process)",
        _fmt_list(memory["with_sockets_mb"]),
        "",
        "memory.with_sockets_mb_per_process",
    )
    page = result["page"]
    add(
        f"First visit to a conversation (KB on the wire, {page['requests']} requests + socket)",
        _fmt(page["kilobytes"]),
        "",
        "page.kilobytes",
    )
    add(
        f"Page of a {page['long_messages']:,}-message conversation (ms, median)",
        _fmt(page["long_render_ms"]["median"]),
        "",
        "page.long_render_ms.median",
    )
    add("Start to first page (s)", _fmt(result["start"]["seconds"]), "", "start.seconds")
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _phases(phases: dict) -> str:
    """Each step of a send: ``name p50 (p95)``."""
    return " · ".join(
        f"{name.replace('_', ' ')} {_fmt(figures['p50'])} ({_fmt(figures['p95'])})"
        for name, figures in phases.items()
    )


def _fmt_list(values: list) -> str:
    return " + ".join(_fmt(value) for value in values)


def _say_server_logs(workdir: Path) -> None:
    for log in sorted(workdir.glob("daphne-*.log")):
        _say(f"--- the end of {log.name}:\n{log.read_text()[-4000:]}")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def setups_from_environment(environ: dict[str, str]) -> list[Setup]:
    setups = [EMBEDDED]
    database_url, redis_url = environ.get("DATABASE_URL", ""), environ.get("REDIS_URL", "")
    if database_url.startswith("postgres") and redis_url:
        parts = urlsplit(database_url)
        setups.append(production(f"{parts.scheme}://{parts.netloc}", redis_url))
    return setups


def _stages(text: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    if not names or names - set(STAGES):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(STAGES)}, not {text!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few conversations, seconds long")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every figure with a target at its load, fewer repeats (a few minutes)",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="where to write")
    parser.add_argument(
        "--publish", action="store_true", help="also write benchmarks/results/<date>-<setup>.json"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the servers with py-spy under load (collapsed stacks in --out)",
    )
    parser.add_argument(
        "--only",
        type=_stages,
        default=frozenset(STAGES),
        help=f"run only these stages, comma-separated, of {', '.join(STAGES)} "
        "(page, memory and start are always measured)",
    )
    parser.add_argument(
        "--setup",
        choices=["embedded", "production"],
        default=None,
        help="measure only this set-up (production needs DATABASE_URL and REDIS_URL)",
    )
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    setups = setups_from_environment(dict(os.environ))
    for setup in [setup for setup in setups if args.setup in (None, setup.name)]:
        with tempfile.TemporaryDirectory(prefix=f"webchat-bench-{setup.name}-") as workdir:
            result = asyncio.run(
                run_setup(
                    setup,
                    plan,
                    Path(workdir),
                    only=args.only,
                    profile_dir=args.out / "profiles" if args.profile else None,
                )
            )
            # The servers' logs go with the results: what failed, and why.
            for log in Path(workdir).glob("daphne-*.log"):
                shutil.copy(log, args.out / f"{setup.name}-{log.name}")
        results.append(result)
        rendered = table(result)
        print(
            f"\n## {setup.name}: {result['processes']} process(es), {result['database']}, "
            f"{result['channel_layer']} channel layer\n\n{rendered}\n",
            flush=True,
        )
        stem = f"{result['date'][:10]}-{setup.name}"
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / f"{stem}.md").write_text(rendered + "\n")
        if args.publish:
            (BENCH_DIR / "results" / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
