"""The accounts' own data: per-user limits, model access per role, invitations, the
first-run setup's record and login lockouts."""

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy


class UserLimits(models.Model):
    """An admin's overrides of one user's limits; an empty field means the setting's default.

    Zero means unlimited, as in the settings.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="limits",
        verbose_name=gettext_lazy("user"),
    )
    messages_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("Empty: WEBCHAT_MESSAGES_PER_MINUTE. 0: unlimited."),
        verbose_name=gettext_lazy("messages per minute"),
    )
    daily_token_quota = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("Empty: WEBCHAT_DAILY_TOKEN_QUOTA. 0: unlimited."),
        verbose_name=gettext_lazy("daily token quota"),
    )
    monthly_token_quota = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("Empty: WEBCHAT_MONTHLY_TOKEN_QUOTA. 0: unlimited."),
        verbose_name=gettext_lazy("monthly token quota"),
    )

    class Meta:
        verbose_name = gettext_lazy("limits")
        verbose_name_plural = gettext_lazy("limits")

    def __str__(self) -> str:
        return f"Limits of user {self.user_id}"


class ModelAccess(models.Model):
    """One model a group's members may use (see accounts/access.py for the rule)."""

    group = models.ForeignKey(
        "auth.Group",
        on_delete=models.CASCADE,
        related_name="model_access",
        verbose_name=gettext_lazy("role"),
    )
    model = models.CharField(max_length=100, verbose_name=gettext_lazy("model"))

    class Meta:
        ordering = ["group__name", "model"]
        verbose_name = gettext_lazy("model access")
        verbose_name_plural = gettext_lazy("model access")
        constraints = [
            models.UniqueConstraint(fields=["group", "model"], name="one_access_per_group_model")
        ]

    def __str__(self) -> str:
        return f"{self.group} may use {self.model}"


def _invitation_token() -> str:
    return secrets.token_urlsafe(32)


class Invitation(models.Model):
    """A link an admin hands out; whoever opens it first, before it expires, gets an account."""

    token = models.CharField(
        max_length=64,
        unique=True,
        default=_invitation_token,
        editable=False,
        verbose_name=gettext_lazy("token"),
    )
    group = models.ForeignKey(
        "auth.Group",
        on_delete=models.PROTECT,
        help_text=gettext_lazy("The role the new account gets."),
        verbose_name=gettext_lazy("role"),
    )
    expires_at = models.DateTimeField(verbose_name=gettext_lazy("expires"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        editable=False,
        related_name="+",
        verbose_name=gettext_lazy("created by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created"))
    used_by = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="invitation",
        verbose_name=gettext_lazy("used by"),
    )
    used_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=gettext_lazy("used")
    )

    class Meta:
        verbose_name = gettext_lazy("invitation")
        verbose_name_plural = gettext_lazy("invitations")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation {self.pk} ({self.group})"

    def get_absolute_url(self) -> str:
        return reverse("invitation-accept", args=[self.token])

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.expires_at > timezone.now()


class SetupRecord(models.Model):
    """The record that an administrator exists or existed: once it is written, the first-run
    setup stays closed, even if every user is deleted later (accounts/setup.py)."""

    # One row at most: a second insert fails, which is what lets only one setup win a race.
    id = models.PositiveSmallIntegerField(
        primary_key=True, default=1, editable=False, verbose_name=gettext_lazy("number")
    )
    closed_at = models.DateTimeField(default=timezone.now, verbose_name=gettext_lazy("closed"))
    first_admin = models.CharField(
        max_length=150,
        help_text=gettext_lazy("The first admin's username."),
        verbose_name=gettext_lazy("first admin"),
    )

    class Meta:
        verbose_name = gettext_lazy("setup record")
        verbose_name_plural = gettext_lazy("setup records")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="one_setup_record")]

    def __str__(self) -> str:
        return f"Set up with {self.first_admin} on {self.closed_at:%Y-%m-%d}"


class LoginLockout(models.Model):
    """A current lockout of password attempts (accounts/login_throttle.py); deleting it lets
    the attempts start again."""

    class Scope(models.TextChoices):
        USERNAME_AT_ADDRESS = "username_at_address", gettext_lazy("One username from one address")
        ADDRESS = "address", gettext_lazy("Every username from one address")
        USERNAME = "username", gettext_lazy("One username from every address")
        SIGNUP = "signup", gettext_lazy("Signing up from one address")
        API_KEY = "api_key", gettext_lazy("Wrong API keys from one address")

    scope = models.CharField(
        max_length=20, choices=Scope, verbose_name=gettext_lazy("what is locked")
    )
    # As counted: NFKC-normalized and case-folded.
    username = models.CharField(gettext_lazy("username"), max_length=150, blank=True)
    address = models.CharField(gettext_lazy("address"), max_length=64, blank=True)
    locked_until = models.DateTimeField(gettext_lazy("locked until"))

    class Meta:
        ordering = ["-locked_until"]
        verbose_name = gettext_lazy("login lockout")
        verbose_name_plural = gettext_lazy("login lockouts")
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "username", "address"], name="one_lockout_per_scope_and_key"
            )
        ]

    def __str__(self) -> str:
        return " · ".join(part for part in (self.username, self.address) if part)
