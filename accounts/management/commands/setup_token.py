from django.core.management.base import BaseCommand, CommandError

from accounts import setup


class Command(BaseCommand):
    help = (
        "Print the token that the first-run setup page (/setup/) asks for, while no "
        "administrator exists or ever existed."
    )

    def handle(self, *args, **options) -> None:
        if not setup.setup_is_open():
            raise CommandError(
                "Setup is closed: an administrator exists or existed. To make another, run "
                "`python manage.py createsuperuser`."
            )
        self.stdout.write(setup.setup_token())
