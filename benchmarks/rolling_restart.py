"""A rolling restart of two Webchat processes behind nginx, under a steady load of replies.

``python -m benchmarks.rolling_restart``, with ``DATABASE_URL`` naming a PostgreSQL server
and ``REDIS_URL`` (as for ``make bench``'s production set-up), starts the fake upstream,
two daphne processes on a database made for the run and on that Redis (keys under a prefix
of the run's own), and nginx with the shipped site (``deploy/nginx/webchat.conf``: TLS, an
upstream of both processes) as an ordinary process (``benchmarks/nginx.py``). Webchat has
the production settings the guide gives behind it: ``WEBCHAT_BEHIND_TLS_PROXY``,
``WEBCHAT_TRUSTED_PROXIES``, ``CSRF_TRUSTED_ORIGINS``.

Clients sign in through nginx; each one, again and again, loads its conversation's page,
posts a message as htmx does and follows the reply over its websocket, through nginx too.
A socket that drops reconnects as the page's htmx ws extension does: after an abnormal
close (1006, 1011, 1012, 1013) only, after a random delay under one second that doubles
with each failed try.

Once every client has had replies, the processes are upgraded as docs/deployment.md says:
``migrate`` and ``collectstatic``, then one process at a time, SIGTERM (what
``systemctl restart`` sends), its exit awaited (it drains its replies), started again and
awaited on ``/healthz`` before the next. The load goes on until every client has had
replies from the new processes, then stops, letting the replies under way finish.

It prints JSON: replies during the upgrade and in all, failed replies (a reply that did not
end ``complete``, a request answered otherwise than as expected), the answers clients got
by status (a 502 among them) and the 5xx answers in nginx's own log, what nginx's error
log says (a refused connection is a request passed on to the other process), socket drops and
reconnects, sockets closed for good (a page would not reconnect them), the longest pause a
client saw (from sending a request to its answer, or between two frames of its reply), and
each process's restart.
"""

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from benchmarks.clients import MESSAGE_ID, NO_IMAGES, Browser, Reply, _ReplyWatch
from benchmarks.nginx import NginxSite
from benchmarks.stack import (
    MODEL,
    PASSWORD,
    FakeUpstreamProcess,
    Setup,
    Upstream,
    Webchat,
    production,
)

# The close codes after which the htmx ws extension reconnects (django_htmx's hx-ws).
RECONNECTING_CLOSE_CODES = frozenset({1006, 1011, 1012, 1013})
# Replies of 2.2 s: the first token after 200 ms, then 40 tokens, 20 a second.
PACE = Upstream(first_token_delay=0.2, token_interval=0.05, token_count=40, fast_token_interval=0)
REPLY_WITHIN = 60.0
ACCESS_LOG_STATUS = re.compile(r'" (\d{3}) ')
# "[error] 12#12: *34 connect() failed (111: Connection refused) while connecting to upstream,"
ERROR_LOG_EVENT = re.compile(r"\[(?:error|warn)\] \d+#\d+: \*\d+ (.+?), client:")


@dataclass
class Load:
    """What the clients saw, all together."""

    replies: list[Reply] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    answers: Counter = field(default_factory=Counter)
    socket_drops: int = 0
    reconnects: int = 0
    sockets_lost: int = 0
    longest_pause: float = 0.0
    # Replies finished, per client: the upgrade waits for every client to have some.
    finished: Counter = field(default_factory=Counter)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def paused(self, seconds: float) -> None:
        self.longest_pause = max(self.longest_pause, seconds)

    def failed(self, what: str) -> None:
        self.failures.append(what)

    async def until_every_client_has(self, replies: int, clients: int) -> None:
        """Wait until each client has had this many replies (failed ones count too)."""
        while min(self.finished[index] for index in range(clients)) < replies:
            self.progress.clear()
            await self.progress.wait()


class Client:
    """One person with one conversation open: page, message, reply, over and over."""

    def __init__(
        self, index: int, browser: Browser, conversation_id: int, site: NginxSite, load: Load
    ) -> None:
        self.index = index
        self.browser = browser
        self.site = site
        self.ssl = site.ssl_context()
        self.load = load
        self.page_url = f"{site.url}/c/{conversation_id}/"
        self.socket_url = f"wss://127.0.0.1:{site.https_port}/ws/conversations/{conversation_id}/"
        self.watch: _ReplyWatch | None = None
        self.backlog: list[tuple[float, str]] = []
        self.last_event = 0.0
        self.closing = False
        self.socket = None
        self.opened = asyncio.Event()
        self.keeper: asyncio.Task | None = None

    async def open(self) -> None:
        self.keeper = asyncio.create_task(self._keep_socket())
        await self.opened.wait()

    async def close(self) -> None:
        self.closing = True
        if self.socket is not None:
            await self.socket.close()
        if self.keeper is not None:
            await self.keeper

    async def run(self, stop: asyncio.Event) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            if not await self._exchange(f"Message {number} of client {self.index}"):
                await asyncio.sleep(0.5)  # as a person would before trying again
            self.load.finished[self.index] += 1
            self.load.progress.set()

    async def _exchange(self, prompt: str) -> bool:
        """Load the page, send ``prompt`` and follow its reply; whether all went well."""
        page = await self._request("GET", self.page_url)
        if page is None or page.status_code != 200:
            return False
        self.backlog.clear()
        reply = Reply(prompt, started_at=time.monotonic())
        response = await self._request(
            "POST",
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
        if response is None or response.status_code != 200:
            return False
        reply.posted_at = self.last_event = time.monotonic()
        reply_ids = [int(found) for found in MESSAGE_ID.findall(response.text)]
        if not reply_ids:
            self.load.failed(f"POST answered without the reply: {response.text[:200]!r}")
            return False
        watch = _ReplyWatch(max(reply_ids), reply)
        for arrived_at, frame in self.backlog:
            watch.see(arrived_at, frame)
        self.backlog.clear()
        self.watch = watch
        try:
            await asyncio.wait_for(watch.done.wait(), REPLY_WITHIN)
        except TimeoutError:
            reply.error = f"no final frame within {REPLY_WITHIN:.0f} s"
            self.load.paused(time.monotonic() - self.last_event)
        finally:
            self.watch = None
        if not reply.error and reply.status != "complete":
            reply.error = f"the reply ended {reply.status}"
        if reply.error:
            self.load.failed(f"{prompt}: {reply.error}")
        self.load.replies.append(reply)
        return not reply.error

    async def _request(self, method: str, url: str, **options) -> httpx.Response | None:
        sent_at = time.monotonic()
        try:
            response = await self.browser.http.request(method, url, **options)
        except httpx.HTTPError as error:
            self.load.answers[f"{method} {type(error).__name__}"] += 1
            self.load.failed(f"{method} {url}: {error!r}")
            return None
        self.load.paused(time.monotonic() - sent_at)
        self.load.answers[f"{method} {response.status_code}"] += 1
        if response.status_code != 200:
            self.load.failed(f"{method} {url} answered {response.status_code}")
        return response

    def _see(self, frame: str) -> None:
        arrived_at = time.monotonic()
        if self.watch is None:
            self.backlog.append((arrived_at, frame))
        elif self.watch.marker in frame:
            self.load.paused(arrived_at - self.last_event)
            self.last_event = arrived_at
            self.watch.see(arrived_at, frame)

    async def _keep_socket(self) -> None:
        """The page's socket: reconnected as the htmx ws extension does."""
        retries = 0
        while not self.closing:
            try:
                self.socket = await connect(
                    self.socket_url,
                    additional_headers={"Cookie": self.browser.cookie_header},
                    origin=self.site.url,
                    ssl=self.ssl,
                    open_timeout=30,
                    ping_interval=None,
                    max_size=None,
                )
            except InvalidStatus as refused:
                self.load.answers[f"WS {refused.response.status_code}"] += 1
                code = 1006  # a browser's socket closes abnormally on a refused handshake
            except (OSError, TimeoutError, WebSocketException) as error:
                self.load.answers[f"WS {type(error).__name__}"] += 1
                code = 1006
            else:
                self.load.answers["WS 101"] += 1
                retries = 0
                self.opened.set()
                try:
                    async for frame in self.socket:
                        self._see(str(frame))
                except ConnectionClosed:
                    pass
                code = self.socket.close_code or 1006
                if self.closing:
                    return
                self.load.socket_drops += 1
            if code not in RECONNECTING_CLOSE_CODES:
                self.load.sockets_lost += 1
                self.load.failed(f"socket closed with {code}: a page would not reconnect")
                return
            await asyncio.sleep(random.random() * 2 ** min(retries, 6))
            retries += 1
            self.load.reconnects += 1


def rolling_restart(
    setup: Setup,
    *,
    clients: int,
    replies_around: int,
    rounds: int = 1,
    logs: Path | None = None,
) -> dict:
    """Upgrade both processes under load, ``rounds`` times; each client has
    ``replies_around`` replies before the first upgrade, and as many after each."""
    with tempfile.TemporaryDirectory(prefix="webchat-rolling-") as workdir:
        upstream = FakeUpstreamProcess(Path(workdir), PACE)
        upstream.start()
        webchat = Webchat(setup, Path(workdir), upstream.base_url, max_replies=3)
        site = NginxSite(upstream_ports=webchat.ports)
        # What the guide's environment sets behind nginx.
        webchat.env |= {
            "WEBCHAT_BEHIND_TLS_PROXY": "true",
            "WEBCHAT_TRUSTED_PROXIES": "127.0.0.1",
            "CSRF_TRUSTED_ORIGINS": site.url,
            "LOG_LEVEL": "INFO",
        }
        try:
            seeded = webchat.prepare(users=clients, conversations_per_user=1, long_messages=2)
            webchat.start(ready_path="/healthz")
            site.start()
            return asyncio.run(_under_load(webchat, site, seeded, clients, replies_around, rounds))
        except BaseException:
            for log in sorted(Path(workdir).glob("daphne-*.log")):
                print(f"--- {log.name}:\n{log.read_text()[-4000:]}", file=sys.stderr)
            if site.error_log.exists():
                print(f"--- nginx:\n{site.error_log.read_text()[-4000:]}", file=sys.stderr)
            raise
        finally:
            site.stop()
            webchat.stop()
            upstream.stop()
            if logs is not None:
                logs.mkdir(parents=True, exist_ok=True)
                for log in [*Path(workdir).glob("daphne-*.log"), site.error_log, site.access_log]:
                    shutil.copy(log, logs / log.name)
            site.remove()


async def _under_load(
    webchat: Webchat,
    site: NginxSite,
    seeded: dict,
    clients: int,
    replies_around: int,
    rounds: int,
) -> dict:
    load = Load()
    people = []
    for index, username in enumerate(seeded["users"]):
        browser = Browser(username, verify=site.ssl_context(), origin=site.url)
        await browser.sign_in(site.url, PASSWORD)
        [conversation_id] = seeded["conversations"][MODEL][username]
        people.append(Client(index, browser, conversation_id, site, load))
    try:
        await asyncio.wait_for(asyncio.gather(*(person.open() for person in people)), 60)
    except TimeoutError:
        raise RuntimeError(f"The pages' sockets did not open: {dict(load.answers)}") from None
    stop = asyncio.Event()
    running = [asyncio.create_task(person.run(stop)) for person in people]

    await load.until_every_client_has(replies_around, clients)
    upgrades, restarts = [], []
    for _round in range(rounds):
        began = time.monotonic()
        await asyncio.to_thread(webchat.manage, "migrate", "--noinput")
        await asyncio.to_thread(webchat.manage, "collectstatic", "--noinput", "--verbosity=0")
        for index in range(len(webchat.ports)):
            restarts.append(await asyncio.to_thread(webchat.restart, index))
        upgrades.append((began, time.monotonic()))
        await load.until_every_client_has(max(load.finished.values()) + replies_around, clients)
    stop.set()
    await asyncio.gather(*running)
    for person in people:
        await person.close()
        await person.browser.aclose()

    during = [
        reply
        for reply in load.replies
        if any(
            reply.started_at < ended and (reply.done_at or ended) > began
            for began, ended in upgrades
        )
    ]
    nginx_answers = Counter(ACCESS_LOG_STATUS.findall(site.access_log.read_text()))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "clients": clients,
        "reply_seconds": PACE.first_token_delay + PACE.token_interval * PACE.token_count,
        "upgrades": rounds,
        "upgrade_seconds": [round(ended - began, 2) for began, ended in upgrades],
        "replies_during_upgrade": len(during),
        "replies": len(load.replies),
        "failed_replies": len([reply for reply in load.replies if reply.error]),
        "failures": load.failures[:20],
        "answers": dict(sorted(load.answers.items())),
        "nginx_answers": dict(sorted(nginx_answers.items())),
        "nginx_5xx": sum(count for status, count in nginx_answers.items() if int(status) >= 500),
        # "connect() failed (111: Connection refused)": requests nginx passed to the other.
        "nginx_errors": dict(Counter(ERROR_LOG_EVENT.findall(site.error_log.read_text()))),
        "socket_drops": load.socket_drops,
        "reconnects": load.reconnects,
        "sockets_lost": load.sockets_lost,
        "longest_pause_seconds": round(load.longest_pause, 2),
        "restarts": [
            dataclasses.asdict(restart)
            | {
                # Replies the clients were waiting for when the process was told to stop.
                "replies_under_way": sum(
                    reply.started_at < restart.signalled_at < (reply.done_at or math.inf)
                    for reply in load.replies
                )
            }
            for restart in restarts
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="people sending at once")
    parser.add_argument(
        "--replies-around", type=int, default=3, help="replies per client before and after"
    )
    parser.add_argument("--rounds", type=int, default=1, help="upgrades, one after another")
    parser.add_argument("--logs", type=Path, help="a folder to copy the servers' logs to")
    args = parser.parse_args(argv)
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not (database_url.startswith("postgres") and redis_url):
        parser.error("needs DATABASE_URL (a PostgreSQL server) and REDIS_URL")
    parts = urlsplit(database_url)
    setup = production(f"{parts.scheme}://{parts.netloc}", redis_url)
    result = rolling_restart(
        setup,
        clients=args.clients,
        replies_around=args.replies_around,
        rounds=args.rounds,
        logs=args.logs,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
