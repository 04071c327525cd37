"""The review's own data: flags, the audit of staff reads and of share links, model prices."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy

from conversations.models import Conversation, Message, Share


class Flag(models.Model):
    """A reviewer's mark on a conversation, or on one message of it, with a note."""

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="flags",
        verbose_name=gettext_lazy("conversation"),
    )
    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="flags",
        verbose_name=gettext_lazy("message"),
    )
    note = models.TextField(blank=True, verbose_name=gettext_lazy("note"))
    flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=gettext_lazy("flagged by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("flagged"))
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=gettext_lazy("cleared by"),
    )
    cleared_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("cleared"))

    class Meta:
        verbose_name = gettext_lazy("flag")
        verbose_name_plural = gettext_lazy("flags")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["cleared_at"], name="flag_open")]

    def __str__(self) -> str:
        target = f"message {self.message_id}" if self.message_id else "conversation"
        return f"Flag on {target} of conversation {self.conversation_id}"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class ReviewAccess(models.Model):
    """One staff member's reading of another user's conversation, or of one of its images;
    never edited.

    The names are copied so the record outlives the people and conversation it names.
    """

    class Kind(models.TextChoices):
        CONVERSATION = "conversation", gettext_lazy("The conversation (its page or its export)")
        IMAGE = "image", gettext_lazy("An image")
        THUMBNAIL = "thumbnail", gettext_lazy("An image's thumbnail")

    viewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=gettext_lazy("reader"),
    )
    viewer_username = models.CharField(
        max_length=150, verbose_name=gettext_lazy("reader's username")
    )
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.SET_NULL,
        null=True,
        related_name="review_accesses",
        verbose_name=gettext_lazy("conversation"),
    )
    conversation_ref = models.PositiveBigIntegerField(
        help_text=gettext_lazy("The conversation's number."),
        verbose_name=gettext_lazy("conversation number"),
    )
    owner_username = models.CharField(max_length=150, verbose_name=gettext_lazy("owner's username"))
    kind = models.CharField(
        max_length=16,
        choices=Kind.choices,
        default=Kind.CONVERSATION,
        verbose_name=gettext_lazy("what was read"),
    )
    attachment_ref = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("The image's number, for an image read."),
        verbose_name=gettext_lazy("image number"),
    )
    viewed_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=gettext_lazy("read")
    )

    class Meta:
        ordering = ["-viewed_at"]
        verbose_name = gettext_lazy("read by staff")
        verbose_name_plural = gettext_lazy("reads by staff")

    def __str__(self) -> str:
        if self.attachment_ref is None:
            return f"{self.viewer_username} read conversation {self.conversation_ref}"
        return (
            f"{self.viewer_username} read image {self.attachment_ref}"
            f" of conversation {self.conversation_ref}"
        )


class ShareEvent(models.Model):
    """A share link opened by someone other than its owner, or revoked; never edited.

    As for reads, the names are copied so the record outlives the people, the link and the
    conversation it names.
    """

    class Kind(models.TextChoices):
        OPENED = "opened", gettext_lazy("Opened")
        REVOKED = "revoked", gettext_lazy("Revoked")

    kind = models.CharField(max_length=16, choices=Kind.choices, verbose_name=gettext_lazy("kind"))
    share = models.ForeignKey(
        Share,
        on_delete=models.SET_NULL,
        null=True,
        related_name="events",
        verbose_name=gettext_lazy("share link"),
    )
    share_ref = models.PositiveBigIntegerField(
        help_text=gettext_lazy("The share link's number."),
        verbose_name=gettext_lazy("share link number"),
    )
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.SET_NULL,
        null=True,
        related_name="share_events",
        verbose_name=gettext_lazy("conversation"),
    )
    conversation_ref = models.PositiveBigIntegerField(
        help_text=gettext_lazy("The conversation's number."),
        verbose_name=gettext_lazy("conversation number"),
    )
    owner_username = models.CharField(max_length=150, verbose_name=gettext_lazy("owner"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=gettext_lazy("by"),
    )
    # Empty for a visitor who was not signed in.
    actor_username = models.CharField(
        max_length=150, blank=True, verbose_name=gettext_lazy("by (name)")
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=gettext_lazy("at"))

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = gettext_lazy("share link event")
        verbose_name_plural = gettext_lazy("share link events")

    def __str__(self) -> str:
        who = self.actor_username or "a visitor not signed in"
        return f"{who}: {self.kind} share {self.share_ref} of conversation {self.conversation_ref}"


class ModelPrice(models.Model):
    """What a model costs, so usage can also be shown as money."""

    model = models.CharField(max_length=100, unique=True, verbose_name=gettext_lazy("model"))
    input_price_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        help_text=gettext_lazy("Price of one million input (prompt) tokens."),
        verbose_name=gettext_lazy("input price per million tokens"),
    )
    output_price_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        help_text=gettext_lazy("Price of one million output (completion) tokens."),
        verbose_name=gettext_lazy("output price per million tokens"),
    )

    class Meta:
        verbose_name = gettext_lazy("model price")
        verbose_name_plural = gettext_lazy("model prices")
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model
