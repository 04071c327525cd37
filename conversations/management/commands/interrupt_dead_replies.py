from django.core.management.base import BaseCommand

from conversations import reply_runners


class Command(BaseCommand):
    help = (
        "Mark replies whose process died interrupted, keeping their text. With the embedded "
        "single-process set-up that is every active reply; with several processes, those "
        "whose process has stopped marking itself alive. Run it before starting the server."
    )

    def handle(self, *args, **options) -> None:
        if reply_runners.shared_layer():
            marked = reply_runners.replies_of_dead_runners_interrupt()
        else:
            marked = reply_runners.replies_orphaned_interrupt()
        noun = "conversation" if len(marked) == 1 else "conversations"
        self.stdout.write(
            f"Replies left by a stopped server marked interrupted in {len(marked)} {noun}."
        )
