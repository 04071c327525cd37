import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from conversations.upstream import failures


def conversation_group_name(conversation_id: int) -> str:
    """The Channels group that receives a conversation's live frames."""
    return f"conversation_{conversation_id}"


class Conversation(models.Model):
    class TitleSource(models.TextChoices):
        FIRST_WORDS = "first_words", "The first words of the first message"
        MODEL = "model", "Written by the model"
        USER = "user", "Chosen by the user"

    class ReasoningEffort(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    title_source = models.CharField(
        max_length=16, choices=TitleSource.choices, default=TitleSource.FIRST_WORDS
    )
    pinned = models.BooleanField(default=False)
    model = models.CharField(max_length=100)
    # The end of the branch of the message tree that is shown and forwarded.
    current_leaf = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Settings of the request; empty ones are not sent, leaving the provider's default.
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    top_k = models.PositiveIntegerField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_effort = models.CharField(max_length=8, choices=ReasoningEffort.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-pinned", "-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("conversations:detail", args=[self.pk])

    @property
    def group_name(self) -> str:
        return conversation_group_name(self.pk)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the model"
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"
        STOPPED = "stopped", "Stopped"

    ACTIVE_STATUSES = (Status.PENDING, Status.STREAMING)
    USAGE_FIELDS = (
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "image_tokens",
    )

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # The message this one answers or follows; siblings are versions of one turn.
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=100, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    # What went wrong, for choosing the next step (a Retry button, say); see generation.
    error_code = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    image_tokens = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Refreshed by the running generation with each save; a stale one means it died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        # For usage by day (limits, the admin's usage report) and retention.
        indexes = [models.Index(fields=["created_at"], name="message_created")]
        constraints = [
            # One generation per conversation at a time, enforced by the database
            # so two concurrent sends cannot both start one.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status__in=["pending", "streaming"]),
                name="one_active_reply_per_conversation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"

    # A passing state of a running generation, shown in its bubble ("Rate limited, retrying
    # in 3 s…"); set on the in-memory reply only, never stored.
    notice = ""
    # Set where a message is rendered at the end of the shown branch: only there can a
    # reply be generated again or continued.
    is_branch_end = False

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def is_cut_off(self) -> bool:
        """Complete, but stopped by the token limit."""
        return self.status == self.Status.COMPLETE and self.finish_reason == "length"

    @property
    def is_unfinished(self) -> bool:
        """A reply that ended before the model finished it."""
        unfinished = (self.Status.ERROR, self.Status.INTERRUPTED, self.Status.STOPPED)
        return self.role == self.Role.ASSISTANT and (self.status in unfinished or self.is_cut_off)

    @property
    def can_be_continued(self) -> bool:
        return self.is_unfinished and bool(self.content)

    @property
    def _may_act(self) -> bool:
        return self.is_branch_end and self.error_code not in failures.HOPELESS_CODES

    @property
    def offers_retry(self) -> bool:
        """Whether the bubble shows Retry: not when retrying cannot help (a rejected key)."""
        return self._may_act and self.is_unfinished

    @property
    def offers_regenerate(self) -> bool:
        return (
            self._may_act
            and self.role == self.Role.ASSISTANT
            and self.status == self.Status.COMPLETE
            and not self.is_cut_off
        )

    @property
    def offers_continue(self) -> bool:
        return self._may_act and self.can_be_continued

    @property
    def dom_id(self) -> str:
        return f"message-{self.pk}"


def _attachment_path(instance: "Attachment", filename: str) -> str:
    # Random names: the storage may be shared, and names must not reveal anything.
    return f"attachments/{uuid.uuid4().hex}/{filename}"


class Attachment(models.Model):
    """An image a user attached to a message, stored normalized, with a thumbnail."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    image = models.FileField(upload_to=_attachment_path, max_length=255)
    thumbnail = models.FileField(upload_to=_attachment_path, max_length=255)
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField(help_text="Bytes of the stored image.")
    original_name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.original_name


class Preset(models.Model):
    """A system prompt a user saved under a name, to start conversations from."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets"
    )
    name = models.CharField(max_length=100)
    system_prompt = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="one_preset_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.name
