from django.core.management.base import BaseCommand

from conversations.services import stale_replies_interrupt


class Command(BaseCommand):
    help = (
        "Mark replies whose generation died (their heartbeat is older than "
        "WEBCHAT_STALE_REPLY_SECONDS) interrupted, keeping their text. Run it before starting "
        "the server; it leaves replies of other running processes alone."
    )

    def handle(self, *args, **options) -> None:
        count = stale_replies_interrupt()
        noun = "reply" if count == 1 else "replies"
        self.stdout.write(f"{count} stale {noun} marked interrupted.")
