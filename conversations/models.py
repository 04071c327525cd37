import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy

from conversations.upstream import failures


def conversation_group_name(conversation_id: int) -> str:
    """The Channels group that receives a conversation's live frames."""
    return f"conversation_{conversation_id}"


class Conversation(models.Model):
    class TitleSource(models.TextChoices):
        FIRST_WORDS = "first_words", gettext_lazy("The first words of the first message")
        MODEL = "model", gettext_lazy("Written by the model")
        USER = "user", gettext_lazy("Chosen by the user")

    class ReasoningEffort(models.TextChoices):
        LOW = "low", gettext_lazy("Low")
        MEDIUM = "medium", gettext_lazy("Medium")
        HIGH = "high", gettext_lazy("High")

    class Source(models.TextChoices):
        BROWSER = "browser", gettext_lazy("Browser")
        API = "api", gettext_lazy("API")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
        verbose_name=gettext_lazy("owner"),
    )
    title = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("title"))
    title_source = models.CharField(
        max_length=16,
        choices=TitleSource.choices,
        default=TitleSource.FIRST_WORDS,
        verbose_name=gettext_lazy("title from"),
    )
    pinned = models.BooleanField(default=False, verbose_name=gettext_lazy("pinned"))
    model = models.CharField(max_length=100, verbose_name=gettext_lazy("model"))
    # The end of the branch of the message tree that is shown and forwarded.
    current_leaf = models.ForeignKey(
        "Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=gettext_lazy("last message shown"),
    )
    # Settings of the request; empty ones are not sent, leaving the provider's default.
    system_prompt = models.TextField(blank=True, verbose_name=gettext_lazy("system prompt"))
    temperature = models.FloatField(null=True, blank=True, verbose_name=gettext_lazy("temperature"))
    top_p = models.FloatField(null=True, blank=True, verbose_name=gettext_lazy("top P"))
    top_k = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("top K"))
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("max tokens")
    )
    reasoning_effort = models.CharField(
        max_length=8,
        choices=ReasoningEffort.choices,
        blank=True,
        verbose_name=gettext_lazy("reasoning effort"),
    )
    # Where it was held: in the chat, or through the API with a personal key (api/).
    source = models.CharField(
        max_length=8,
        choices=Source.choices,
        default=Source.BROWSER,
        verbose_name=gettext_lazy("held in"),
    )
    # The key an API conversation was held with: what a leaked or misused key did.
    api_key = models.ForeignKey(
        "api.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=gettext_lazy("API key"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("started"))
    updated_at = models.DateTimeField(
        auto_now=True, db_index=True, verbose_name=gettext_lazy("last activity")
    )

    class Meta:
        verbose_name = gettext_lazy("conversation")
        verbose_name_plural = gettext_lazy("conversations")
        ordering = ["-pinned", "-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]

    # By number, never by title: the admin shows objects' names in labels, confirmations and
    # its log, where staff must not read titles (WEBCHAT_STAFF_CAN_READ_CONVERSATIONS).
    def __str__(self) -> str:
        return f"Conversation {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("conversations:detail", args=[self.pk])

    @property
    def group_name(self) -> str:
        return conversation_group_name(self.pk)


class ReplyUsage(models.Model):
    """The tokens a reply used, as the upstream reported them (or as estimated)."""

    prompt_tokens = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("prompt tokens")
    )
    completion_tokens = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("completion tokens")
    )
    total_tokens = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("total tokens")
    )
    cached_tokens = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("cached tokens")
    )
    reasoning_tokens = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("reasoning tokens")
    )
    image_tokens = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("image tokens")
    )
    # The counts are Webchat's estimate: the upstream reported none (token_estimates.py).
    usage_estimated = models.BooleanField(
        default=False, verbose_name=gettext_lazy("tokens estimated")
    )

    class Meta:
        abstract = True


class Message(ReplyUsage):
    class Role(models.TextChoices):
        USER = "user", gettext_lazy("User")
        ASSISTANT = "assistant", gettext_lazy("Assistant")

    class Status(models.TextChoices):
        PENDING = "pending", gettext_lazy("Waiting for the model")
        STREAMING = "streaming", gettext_lazy("Streaming")
        COMPLETE = "complete", gettext_lazy("Complete")
        ERROR = "error", gettext_lazy("Error")
        INTERRUPTED = "interrupted", gettext_lazy("Interrupted")
        STOPPED = "stopped", gettext_lazy("Stopped")

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
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=gettext_lazy("conversation"),
    )
    # The message this one answers or follows; siblings are versions of one turn.
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=gettext_lazy("answers or follows"),
    )
    role = models.CharField(max_length=16, choices=Role.choices, verbose_name=gettext_lazy("role"))
    content = models.TextField(blank=True, verbose_name=gettext_lazy("text"))
    reasoning = models.TextField(blank=True, verbose_name=gettext_lazy("thinking"))
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.COMPLETE,
        verbose_name=gettext_lazy("status"),
    )
    model = models.CharField(max_length=100, blank=True, verbose_name=gettext_lazy("model"))
    finish_reason = models.CharField(
        max_length=32, blank=True, verbose_name=gettext_lazy("finish reason")
    )
    error = models.TextField(blank=True, verbose_name=gettext_lazy("error"))
    # What went wrong, for choosing the next step (a Retry button, say); see generation.
    error_code = models.CharField(
        max_length=32, blank=True, verbose_name=gettext_lazy("error code")
    )
    # The provider's own words about the error, shown beneath ``error``.
    error_detail = models.TextField(blank=True, verbose_name=gettext_lazy("provider's words"))
    time_to_first_token_ms = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("time to first token (ms)")
    )
    # How long the model thought: from its first thinking to its first answer text.
    thinking_ms = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("thinking time (ms)")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("written"))
    completed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("completed")
    )
    # The reply runner (a server process's control channel) writing an active reply; the
    # reply is dead once that runner stops marking itself alive (reply_runners.py).
    runner = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("reply runner"))

    class Meta:
        verbose_name = gettext_lazy("message")
        verbose_name_plural = gettext_lazy("messages")
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
    def accepts_feedback(self) -> bool:
        """A reply its owner may rate: one the model finished, not one cut short."""
        return (
            self.role == self.Role.ASSISTANT
            and self.status == self.Status.COMPLETE
            and not self.is_cut_off
        )

    @property
    def owner_feedback(self) -> "Feedback | None":
        """The owner's feedback on this reply, the only one there can be (feedback.py); read
        from the prefetched ``feedback`` where pages and frames render replies."""
        return next(iter(self.feedback.all()), None)

    @property
    def dom_id(self) -> str:
        return f"message-{self.pk}"

    @property
    def thinking_label(self) -> str:
        """The summary of the reply's thinking: live while it thinks, then how long."""
        if self.thinking_ms is not None:
            seconds = max(1, round(self.thinking_ms / 1000))
            return gettext("Thought for %(seconds)s s") % {"seconds": seconds}
        return gettext("Thinking…") if self.is_active else gettext("Thinking")


class Feedback(models.Model):
    """A user's thumbs up or down on a reply of their conversation, with a note."""

    class Rating(models.IntegerChoices):
        UP = 1, gettext_lazy("Thumbs up")
        DOWN = -1, gettext_lazy("Thumbs down")

    NOTE_MAX_CHARS = 1000

    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        related_name="feedback",
        verbose_name=gettext_lazy("message"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=gettext_lazy("user"),
    )
    rating = models.SmallIntegerField(choices=Rating.choices, verbose_name=gettext_lazy("rating"))
    note = models.TextField(
        blank=True, max_length=NOTE_MAX_CHARS, verbose_name=gettext_lazy("note")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("given"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("changed"))

    class Meta:
        verbose_name = gettext_lazy("feedback")
        verbose_name_plural = gettext_lazy("feedback")
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_user")
        ]

    def __str__(self) -> str:
        return f"Feedback {self.pk} on message {self.message_id}"


def _attachment_path(instance: "Attachment", filename: str) -> str:
    # Random names: the storage may be shared, and names must not reveal anything.
    return f"attachments/{uuid.uuid4().hex}/{filename}"


class Attachment(models.Model):
    """An image a user attached to a message, stored normalized, with a thumbnail."""

    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        related_name="attachments",
        verbose_name=gettext_lazy("message"),
    )
    image = models.FileField(
        upload_to=_attachment_path, max_length=255, verbose_name=gettext_lazy("image")
    )
    thumbnail = models.FileField(
        upload_to=_attachment_path, max_length=255, verbose_name=gettext_lazy("thumbnail")
    )
    content_type = models.CharField(max_length=32, verbose_name=gettext_lazy("content type"))
    width = models.PositiveIntegerField(verbose_name=gettext_lazy("width"))
    height = models.PositiveIntegerField(verbose_name=gettext_lazy("height"))
    size = models.PositiveIntegerField(
        help_text=gettext_lazy("Bytes of the stored image."), verbose_name=gettext_lazy("size")
    )
    original_name = models.CharField(max_length=255, verbose_name=gettext_lazy("original name"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("attached"))

    class Meta:
        verbose_name = gettext_lazy("image")
        verbose_name_plural = gettext_lazy("images")
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"Image {self.pk}"


class Preset(models.Model):
    """A system prompt a user saved under a name, to start conversations from."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="presets",
        verbose_name=gettext_lazy("owner"),
    )
    name = models.CharField(max_length=100, verbose_name=gettext_lazy("name"))
    system_prompt = models.TextField(verbose_name=gettext_lazy("system prompt"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created"))

    class Meta:
        verbose_name = gettext_lazy("preset")
        verbose_name_plural = gettext_lazy("presets")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="one_preset_name_per_owner")
        ]

    def __str__(self) -> str:
        return f"Preset {self.pk}"


class ReplyRunner(models.Model):
    """A server process that runs replies, known by its control channel; it marks itself
    alive every second while it runs (reply_runners.py)."""

    channel = models.CharField(
        max_length=200, primary_key=True, verbose_name=gettext_lazy("control channel")
    )
    seen_at = models.DateTimeField(verbose_name=gettext_lazy("last seen"))

    class Meta:
        verbose_name = gettext_lazy("reply runner")
        verbose_name_plural = gettext_lazy("reply runners")

    def __str__(self) -> str:
        return self.channel


def _share_token() -> str:
    return secrets.token_urlsafe(32)


class Share(models.Model):
    """A read-only link to a conversation as it was when the link was made.

    The shown branch is copied into ``snapshot`` (one dict per message, oldest first) rather
    than referenced by message ids: Continue appends to a stopped reply in place, so only a
    copy stays what was shared. Images are not copied: a message's attachments never change,
    so they are found by the snapshot's message ids, and go with the conversation.
    """

    class Audience(models.TextChoices):
        SIGNED_IN = "signed_in", gettext_lazy("Anyone signed in to Webchat")
        ANYONE = "anyone", gettext_lazy("Anyone with the link")

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="shares",
        verbose_name=gettext_lazy("conversation"),
    )
    token = models.CharField(
        max_length=64, unique=True, default=_share_token, verbose_name=gettext_lazy("token")
    )
    audience = models.CharField(
        max_length=16,
        choices=Audience.choices,
        default=Audience.SIGNED_IN,
        verbose_name=gettext_lazy("who may open it"),
    )
    title = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("title"))
    snapshot = models.JSONField(default=list, verbose_name=gettext_lazy("shared messages"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("made"))
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("revoked"))

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = gettext_lazy("share link")
        verbose_name_plural = gettext_lazy("share links")

    # By number, like the conversation: the admin shows names where staff may not read.
    def __str__(self) -> str:
        return f"Share {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("conversations:share", args=[self.token])

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def message_ids(self) -> list[int]:
        return [message["id"] for message in self.snapshot]


class UnstoredReply(ReplyUsage):
    """A reply written through the API while WEBCHAT_API_STORE is off: no text, only what the
    quotas need (accounts/limits.py counts these with the stored replies). While it is being
    written it holds its reservation, and its runner is judged like a stored reply's."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="unstored_replies",
        verbose_name=gettext_lazy("owner"),
    )
    model = models.CharField(max_length=100, verbose_name=gettext_lazy("model"))
    status = models.CharField(
        max_length=16,
        choices=Message.Status.choices,
        default=Message.Status.PENDING,
        verbose_name=gettext_lazy("status"),
    )
    # What a reply being written holds against the quotas (the request's max_tokens, or
    # WEBCHAT_RESERVED_TOKENS_PER_REPLY).
    reserved_tokens = models.PositiveIntegerField(verbose_name=gettext_lazy("reserved tokens"))
    error_code = models.CharField(
        max_length=32, blank=True, verbose_name=gettext_lazy("error code")
    )
    time_to_first_token_ms = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("time to first token (ms)")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("written"))
    completed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("completed")
    )
    runner = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("reply runner"))

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["owner", "created_at"], name="unstored_reply_owner_time")]
        verbose_name = gettext_lazy("reply not stored")
        verbose_name_plural = gettext_lazy("replies not stored")

    def __str__(self) -> str:
        return f"Unstored reply {self.pk}"
