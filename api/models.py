"""Personal API keys (README, "API").

A key is ``wc-`` followed by 32 random bytes (``secrets.token_urlsafe``). Only its first
characters (to find it and to show it) and its SHA-256 digest are stored; the key itself is
shown once, when it is made. A slow password hash (PBKDF2) is for what people choose, which
can be guessed from a list; 256 random bits cannot be guessed, so a fast digest is as safe,
and it costs nothing on every request.
"""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy

KEY_PREFIX = "wc-"
# The stored prefix: "wc-" and 8 characters of the random part, enough to find one key.
PREFIX_LENGTH = len(KEY_PREFIX) + 8


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=gettext_lazy("owner"),
    )
    name = models.CharField(gettext_lazy("name"), max_length=100)
    prefix = models.CharField(gettext_lazy("prefix"), max_length=PREFIX_LENGTH, unique=True)
    digest = models.CharField(gettext_lazy("digest"), max_length=64)
    created_at = models.DateTimeField(gettext_lazy("created"), auto_now_add=True)
    expires_at = models.DateTimeField(gettext_lazy("expires"), null=True, blank=True)
    last_used_at = models.DateTimeField(gettext_lazy("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(gettext_lazy("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = gettext_lazy("API key")
        verbose_name_plural = gettext_lazy("personal keys")

    def __str__(self) -> str:
        return f"{self.prefix}…"

    @classmethod
    def issue(cls, *, owner, name: str, expires_at=None) -> tuple["ApiKey", str]:
        """A new key for ``owner``, and the key itself, which is never stored."""
        while True:
            key = KEY_PREFIX + secrets.token_urlsafe(32)
            prefix = key[:PREFIX_LENGTH]
            if not cls.objects.filter(prefix=prefix).exists():
                break
        api_key = cls.objects.create(
            owner=owner, name=name, prefix=prefix, digest=key_digest(key), expires_at=expires_at
        )
        return api_key, key

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(self.digest, key_digest(key))

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
