"""Keeping stored files, open sessions and the search index in step with the database."""

from functools import partial

from django.conf import settings
from django.db import connections, transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver

from conversations import search_index
from conversations.attachments import files_delete
from conversations.deactivation import user_disconnect
from conversations.models import Attachment


@receiver(post_delete, sender=Attachment)
def attachment_files_delete(sender: type[Attachment], instance: Attachment, **kwargs) -> None:
    """Delete the files of a deleted attachment (or message, or conversation) once the
    deletion is committed; a rolled-back deletion keeps them."""
    transaction.on_commit(partial(files_delete, instance), robust=True)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def deactivated_user_disconnect(sender, instance, created: bool, **kwargs) -> None:
    """A user made inactive loses their sessions and open sockets once that is committed."""
    if not created and not instance.is_active:
        transaction.on_commit(partial(user_disconnect, instance.pk), robust=True)


@receiver(post_migrate)
def search_triggers_restore(sender, using: str, **kwargs) -> None:
    """Put back the search index's triggers that a migration's table rebuild dropped."""
    if sender.name == "conversations":
        search_index.sqlite_triggers_ensure(connections[using])
