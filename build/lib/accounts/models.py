"""The accounts' own data: per-user limits, model access per role, invitations."""

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class UserLimits(models.Model):
    """An admin's overrides of one user's limits; an empty field means the setting's default.

    Zero means unlimited, as in the settings.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits"
    )
    messages_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: WEBCHAT_MESSAGES_PER_MINUTE. 0: unlimited."
    )
    daily_token_quota = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Empty: WEBCHAT_DAILY_TOKEN_QUOTA. 0: unlimited."
    )
    monthly_token_quota = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Empty: WEBCHAT_MONTHLY_TOKEN_QUOTA. 0: unlimited."
    )

    class Meta:
        verbose_name = "limits"
        verbose_name_plural = "limits"

    def __str__(self) -> str:
        return f"Limits of user {self.user_id}"


class ModelAccess(models.Model):
    """One model a group's members may use (see accounts/access.py for the rule)."""

    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="model_access")
    model = models.CharField(max_length=100)

    class Meta:
        ordering = ["group__name", "model"]
        verbose_name = "model access"
        verbose_name_plural = "model access"
        constraints = [
            models.UniqueConstraint(fields=["group", "model"], name="one_access_per_group_model")
        ]

    def __str__(self) -> str:
        return f"{self.group} may use {self.model}"


def _invitation_token() -> str:
    return secrets.token_urlsafe(32)


class Invitation(models.Model):
    """A link an admin hands out; whoever opens it first, before it expires, gets an account."""

    token = models.CharField(max_length=64, unique=True, default=_invitation_token, editable=False)
    group = models.ForeignKey(
        "auth.Group",
        on_delete=models.PROTECT,
        help_text="The role the new account gets.",
    )
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        editable=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    used_by = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="invitation",
    )
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation {self.pk} ({self.group})"

    def get_absolute_url(self) -> str:
        return reverse("invitation-accept", args=[self.token])

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.expires_at > timezone.now()
