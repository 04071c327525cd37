"""Serve Webchat with daphne, after what a start needs, all in this one process.

Every Python process that loads Django takes about a second to start on a small server;
running migrate, collectstatic and interrupt_stale_replies as commands of their own would
pay that three more times before the first page.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

# daphne drops a websocket whose handshake is not done in 5 s; when many pages open at
# once on a small server, some take longer (benchmarks/RESULTS.md).
WEBSOCKET_CONNECT_TIMEOUT = 30


class Command(BaseCommand):
    help = (
        "Mark replies left streaming by a dead process interrupted, then serve with daphne. "
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
            call_command("collectstatic", interactive=False, verbosity=0)
        call_command("interrupt_stale_replies", verbosity=verbosity)
        # Requests and sockets use connections of their own threads; this one would idle.
        connections.close_all()
        # Imported only now: importing daphne's server installs Twisted's reactor.
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(
            [
                *("--bind", host, "--port", str(port)),
                *("--websocket_connect_timeout", str(WEBSOCKET_CONNECT_TIMEOUT)),
                "webchat.asgi:application",
            ]
        )
