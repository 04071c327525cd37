"""Ending the sessions and sockets of a user made inactive."""

from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.deactivation import user_disconnect


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def deactivated_user_disconnect(sender, instance, created: bool, **kwargs) -> None:
    """A user made inactive loses their sessions and open sockets once that is committed."""
    if not created and not instance.is_active:
        transaction.on_commit(partial(user_disconnect, instance.pk), robust=True)
