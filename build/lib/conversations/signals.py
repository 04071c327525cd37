"""Keeping stored files and the search index in step with the database."""

from functools import partial

from django.db import connections, transaction
from django.db.models.signals import post_delete, post_migrate
from django.dispatch import receiver

from conversations import search_index
from conversations.attachments import files_delete
from conversations.models import Attachment


@receiver(post_delete, sender=Attachment)
def attachment_files_delete(sender: type[Attachment], instance: Attachment, **kwargs) -> None:
    """Delete the files of a deleted attachment (or message, or conversation) once the
    deletion is committed; a rolled-back deletion keeps them."""
    transaction.on_commit(partial(files_delete, instance), robust=True)


@receiver(post_migrate)
def search_triggers_restore(sender, using: str, **kwargs) -> None:
    """Put back the search index's triggers that a migration's table rebuild dropped."""
    if sender.name == "conversations":
        search_index.sqlite_triggers_ensure(connections[using])
