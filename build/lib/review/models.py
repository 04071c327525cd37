"""The review's own data: flags, the audit of staff reads, model prices."""

from django.conf import settings
from django.db import models

from conversations.models import Conversation, Message


class Flag(models.Model):
    """A reviewer's mark on a conversation, or on one message of it, with a note."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="flags")
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="flags"
    )
    note = models.TextField(blank=True)
    flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["cleared_at"], name="flag_open")]

    def __str__(self) -> str:
        target = f"message {self.message_id}" if self.message_id else "conversation"
        return f"Flag on {target} of conversation {self.conversation_id}"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class ReviewAccess(models.Model):
    """One staff member's reading of another user's conversation; never edited.

    The names are copied so the record outlives the people and conversation it names.
    """

    viewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    viewer_username = models.CharField(max_length=150)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, related_name="review_accesses"
    )
    conversation_ref = models.PositiveBigIntegerField(help_text="The conversation's number.")
    owner_username = models.CharField(max_length=150)
    viewed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-viewed_at"]
        verbose_name = "review access"
        verbose_name_plural = "review accesses"

    def __str__(self) -> str:
        return f"{self.viewer_username} read conversation {self.conversation_ref}"


class ModelPrice(models.Model):
    """What a model costs, so usage can also be shown as money."""

    model = models.CharField(max_length=100, unique=True)
    input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=4, help_text="Price of one million input (prompt) tokens."
    )
    output_price_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        help_text="Price of one million output (completion) tokens.",
    )

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model
