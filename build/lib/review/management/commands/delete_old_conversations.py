from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from review import retention


class Command(BaseCommand):
    help = (
        "Delete conversations whose last activity is older than WEBCHAT_RETENTION_DAYS days "
        "(or --days), with their messages and image files. --dry-run only says what would go."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            help="Keep conversations active within this many days (default: "
            "WEBCHAT_RETENTION_DAYS).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be deleted; delete nothing."
        )

    def handle(self, *args, days: int | None, dry_run: bool, **options) -> None:
        if days is None:
            days = settings.WEBCHAT_RETENTION_DAYS
            if days == 0:
                self.stdout.write(
                    "WEBCHAT_RETENTION_DAYS is 0: conversations are kept forever. "
                    "Nothing deleted (pass --days N to delete older ones anyway)."
                )
                return
        if days < 1:
            raise CommandError(f"--days must be at least 1, not {days}.")
        expired = retention.conversations_expired(days=days)
        if dry_run:
            summary = retention.conversations_summarize(expired)
            verb = "Would delete"
        else:
            summary = retention.conversations_delete(expired)
            verb = "Deleted"
        self.stdout.write(
            f"{verb} {summary.conversations} conversations inactive for more than {days} days: "
            f"{summary.messages} messages, {summary.images} images "
            f"({filesizeformat(summary.bytes)}, {summary.bytes} bytes)."
        )
