"""The first-run setup: on a fresh install, whoever holds the setup token creates the first
administrator.

The token is derived from SECRET_KEY, so every server process knows it without storing
anything; the server prints it at start-up while setup is open, and `manage.py setup_token`
prints it on demand. Setup closes for good once a SetupRecord exists: the setup writes it,
and so does saving any staff or superuser account (createsuperuser, the admin, a shell), by
the post_save receiver in accounts/signals.py.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import SetupRecord

TOKEN_LENGTH = 32  # hexadecimal digits: 128 bits


class SetupClosed(Exception):
    """An administrator exists or existed; the setup form creates no account."""


def setup_token() -> str:
    digest = salted_hmac("accounts.setup.setup_token", "first admin", algorithm="sha256")
    return digest.hexdigest()[:TOKEN_LENGTH]


def setup_token_matches(candidate: str) -> bool:
    return constant_time_compare(candidate.strip(), setup_token())


def setup_is_open() -> bool:
    return not SetupRecord.objects.exists() and not get_user_model().objects.exists()


def setup_token_notice() -> str:
    """What the server prints at start-up while setup is open."""
    return (
        "Webchat has no administrator yet. Open /setup/ in a browser and enter this setup "
        f"token:\n\n    {setup_token()}\n\n"
        "(`python manage.py setup_token` prints it again; `python manage.py createsuperuser` "
        "creates an administrator instead.)"
    )


def setup_record_write(*, admin: AbstractBaseUser) -> None:
    """Close the setup for good, naming the first administrator (a no-op once closed)."""
    SetupRecord.objects.get_or_create(pk=1, defaults={"first_admin": admin.get_username()})


def first_admin_create(*, form: UserCreationForm) -> AbstractBaseUser:
    """Save the valid ``form`` (a FirstAdminForm) as the first administrator, unless setup
    has closed.

    The record is inserted first: of concurrent setups, one inserts it and the others fail
    on its primary key (PostgreSQL makes them wait for the first to commit; SQLite's
    immediate transactions run one at a time), so exactly one administrator is made.
    """
    with transaction.atomic():
        try:
            SetupRecord.objects.create(first_admin=form.cleaned_data["username"])
        except IntegrityError:
            raise SetupClosed from None
        if get_user_model().objects.exists():
            raise SetupClosed
        return form.save()
