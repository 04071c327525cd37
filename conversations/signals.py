"""Keeping stored files in step with the database."""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from conversations.attachments import files_delete
from conversations.models import Attachment


@receiver(post_delete, sender=Attachment)
def attachment_files_delete(sender: type[Attachment], instance: Attachment, **kwargs) -> None:
    """Delete the files of a deleted attachment (or message, or conversation) once the
    deletion is committed; a rolled-back deletion keeps them."""
    transaction.on_commit(partial(files_delete, instance), robust=True)
