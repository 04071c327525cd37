"""Serve Webchat with daphne, after what a start needs, all in this one process.

Every Python process that loads Django takes about a second to start on a small server;
running migrate, collectstatic and interrupt_dead_replies as commands of their own would
pay that three more times before the first page. Static files are collected again only
when they changed (webchat/static_collection.py). While no administrator exists, it prints the
first-run setup's token (accounts/setup.py).

Each connection passes through ``webchat.request_limits`` before daphne reads it: requests
too slow to arrive, or with too large a body, are refused there.

On SIGTERM (or SIGINT) the server stops listening, then finishes what it was asked before:
it answers the requests it has received (a message among them starts its reply) and lets
the replies being written finish, for up to WEBCHAT_SHUTDOWN_GRACE seconds in all. Then it
takes no new replies, saves those left as interrupted, with their text, and exits: a restart
leaves no reply streaming. Meanwhile its open sockets are served as usual, so a page
connected to it follows its reply to the end, and only then loses its socket and reconnects
to another process.

Daphne's server is started as its own ``runserver`` does, with an action logger: its access
lines go through Python's logging (webchat/logs.py), in the log format of every other line
and as they happen, where daphne's command line would write them to standard output, which
is block-buffered when it is not a terminal (under systemd, say).
"""

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.signals import request_finished, request_started
from django.db import connections

from accounts import setup
from conversations import generation, reply_runners
from conversations.upstream.client import client_close
from webchat.static_collection import static_files_collect_if_changed

logger = logging.getLogger(__name__)

# daphne drops a websocket whose handshake is not done in 5 s; when many pages open at
# once on a small server, some take longer (benchmarks/RESULTS.md).
WEBSOCKET_CONNECT_TIMEOUT = 30
# Rounds of accepting the connections queued on the port as it closes (each takes several).
ACCEPT_ATTEMPTS = 100


class Command(BaseCommand):
    help = (
        "Mark replies left by a stopped server interrupted, then serve with daphne. "
        "With --prepare, first migrate the database and collect static files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=8000, help="Port to listen on.")
        parser.add_argument(
            "--prepare",
            action="store_true",
            help=(
                "Migrate and collect static files first. For a single process; several "
                "processes sharing a database run those steps once, before any starts."
            ),
        )

    def handle(self, *args, host: str, port: int, prepare: bool, verbosity: int, **options):
        if prepare:
            call_command("migrate", interactive=False, verbosity=verbosity)
            static_files_collect_if_changed()
        call_command("interrupt_dead_replies", verbosity=verbosity)
        if setup.setup_is_open():
            self.stdout.write(setup.setup_token_notice())
        # Requests and sockets use connections of their own threads; this one would idle.
        connections.close_all()
        # Imported only now: importing daphne's server installs Twisted's reactor.
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server
        from twisted.internet import reactor

        from webchat.asgi import application
        from webchat.logs import access_log

        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            action_logger=access_log,
            websocket_connect_timeout=WEBSOCKET_CONNECT_TIMEOUT,
            websocket_handshake_timeout=WEBSOCKET_CONNECT_TIMEOUT,
        )
        requests = RequestsInFlight()
        request_started.connect(requests.started, weak=False)
        request_finished.connect(requests.finished, weak=False)
        reactor.callWhenRunning(_limit_requests, server)
        reactor.callWhenRunning(_drain_on_signals, requests)
        # With several processes, each sweeps for the replies of dead ones from the start.
        reactor.callWhenRunning(lambda: asyncio.ensure_future(reply_runners.runner_start()))
        try:
            server.run()
        finally:
            request_started.disconnect(requests.started)
            request_finished.disconnect(requests.finished)
        if server.abort_start:
            raise CommandError(f"Could not listen on {host}:{port}.")


def _limit_requests(server) -> None:
    """Wrap daphne's HTTP factory in RequestLimits on each port it listens on, before the
    first connection is accepted. Twisted only logs what fails here: without its limits,
    the server stops."""
    from twisted.internet import reactor

    from webchat.request_limits import RequestLimitsFactory

    try:
        # daphne's listeners' Deferreds pass their ports on to nobody: find them by factory.
        limited = 0
        for reader in reactor.getReaders():
            if getattr(reader, "factory", None) is server.http_factory:
                reader.factory = RequestLimitsFactory(
                    reader.factory,
                    max_body_bytes=settings.WEBCHAT_MAX_BODY_BYTES,
                    headers_timeout=settings.WEBCHAT_REQUEST_HEADERS_TIMEOUT,
                    request_timeout=settings.WEBCHAT_REQUEST_TIMEOUT,
                )
                limited += 1
        if not limited:
            raise RuntimeError("daphne listens on no port")
    except Exception:
        logger.critical("Could not put request limits in front of daphne", exc_info=True)
        reactor.stop()


class RequestsInFlight:
    """The HTTP requests this process is answering, counted by Django's request_started and
    request_finished signals (which worker threads send too)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._answered: asyncio.Future | None = None

    def started(self, **kwargs) -> None:
        with self._lock:
            self.count += 1

    def finished(self, **kwargs) -> None:
        with self._lock:
            self.count -= 1
            if self.count == 0 and self._answered is not None:
                self._answered.get_loop().call_soon_threadsafe(self._answered.set_result, None)
                self._answered = None

    async def answered(self) -> None:
        """Return once none is left."""
        with self._lock:
            if self.count == 0:
                return
            if self._answered is None:
                self._answered = asyncio.get_running_loop().create_future()
            answered = self._answered
        await asyncio.shield(answered)


async def drain(requests: RequestsInFlight, grace: float) -> None:
    """Finish, for up to ``grace`` seconds, what this process was asked before it stopped
    listening: the requests it received are answered, messages among them starting their
    replies, and the replies are let finish. Then it takes no new replies and interrupts
    those left (``generation.replies_drain``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    logger.info(
        "Stopped listening; finishing %d requests and %d replies (up to %.0f s).",
        requests.count,
        generation.replies_running(),
        grace,
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            while requests.count or generation.replies_running():
                await requests.answered()
                await generation.replies_finish()
    await generation.replies_drain(max(deadline - loop.time(), 0.0))
    await client_close()


def _drain_on_signals(requests: RequestsInFlight) -> None:
    """Take over SIGTERM and SIGINT from Twisted, whose handlers stop the reactor at once:
    daphne then cancels every request and socket in flight, which would leave the pages of
    the replies still being written without their frames until the process exits."""
    from twisted.internet import reactor

    def on_signal(signum, frame) -> None:
        reactor.callFromThread(_drain_then_stop, requests)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)


def _drain_then_stop(requests: RequestsInFlight) -> None:
    """Stop listening, finish what was asked (``drain``), then stop the reactor."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IListeningPort

    # daphne keeps no hold of its listening port; the reactor reads from it.
    ports = [reader for reader in reactor.getReaders() if IListeningPort.providedBy(reader)]
    if not ports:
        return  # a second signal: the drain is under way and ends by itself
    for port in ports:
        _stop_listening(port)
    grace = settings.WEBCHAT_SHUTDOWN_GRACE
    drained = Deferred.fromFuture(asyncio.ensure_future(drain(requests, grace)))
    drained.addErrback(lambda failure: logger.error("Draining failed: %s", failure))
    drained.addBoth(lambda _result: reactor.stop())


def _stop_listening(port) -> None:
    """Stop taking connections, having taken those already queued on the port.

    Closing a listening socket resets the connections the kernel queued on it, requests and
    all; behind nginx a reset GET goes to another process, but a reset POST is a 502. So the
    queued ones are accepted first (their requests are then answered), and the socket is
    shut down at once after, not at the reactor's next turn as ``stopListening`` closes it:
    only a connection made in the microseconds between the two is still reset."""
    # Bounded: a connection that cannot be accepted (no file descriptor left) stays queued.
    for _attempt in range(ACCEPT_ATTEMPTS):
        if not select.select([port], [], [], 0)[0]:
            break
        port.doRead()
    with socket.socket(fileno=os.dup(port.fileno())) as listening:
        listening.shutdown(socket.SHUT_RDWR)
    port.stopListening()
