"""Ending the sessions and sockets of a user made inactive; closing the first-run setup once
an administrator exists; closing the sockets of a session signed out, and of sessions a
password change made invalid."""

from functools import partial

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.deactivation import user_disconnect
from accounts.setup import setup_record_write
from accounts.socket_sessions import session_sockets_close, user_sockets_check


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def deactivated_user_disconnect(sender, instance, created: bool, **kwargs) -> None:
    """A user made inactive loses their sessions and open sockets once that is committed."""
    if not created and not instance.is_active:
        transaction.on_commit(partial(user_disconnect, instance.pk), robust=True)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def staff_saved_setup_close(sender, instance, **kwargs) -> None:
    """An administrator made any way (createsuperuser, the admin, a shell, a fixture) closes
    the first-run setup for good, so that an emptied user table cannot reopen it."""
    if instance.is_superuser or instance.is_staff:
        setup_record_write(admin=instance)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def password_saved_sockets_check(
    sender, instance, created: bool, update_fields: frozenset[str] | None, **kwargs
) -> None:
    """After a save that may have changed the password (the views, the admin and
    `changepassword` all save the whole user), once it is committed, every socket of the
    user checks its session's auth hash. Saving only other fields (`last_login` at each
    sign-in) costs the sockets nothing."""
    if created or not instance.is_active:
        return
    if update_fields is None or "password" in update_fields:
        transaction.on_commit(partial(user_sockets_check, user_id=instance.pk), robust=True)


@receiver(user_logged_out)
def signed_out_session_sockets_close(sender, request, user, **kwargs) -> None:
    """Signing out closes the sockets that session opened, in every process."""
    if user is not None and request is not None and request.session.session_key:
        session_sockets_close(user_id=user.pk, session_key=request.session.session_key)
