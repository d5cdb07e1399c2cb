"""Personal API tokens: named, revocable, and stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX = "ph_"  # tells a Pinhole token apart in a config file or a leaked-secrets scan
# last_used_at is written at most this often per token, so calls do not each cost a write.
LAST_USED_EVERY = timedelta(minutes=1)


def hash_key(key: str) -> str:
    """SHA-256 of a token. Tokens carry 256 random bits, so a slow hash would add nothing."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A key a person made for a script; the key itself is shown once and never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="The key's first characters.")
    created = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…) of {self.user}"

    @classmethod
    def create_for(cls, user, name: str) -> tuple[ApiToken, str]:
        """Make a token; returns it and the key, which is never stored and cannot be shown again."""
        key = PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name.strip()[:100], key_hash=hash_key(key), hint=key[:8])
        return token, key

    @classmethod
    def authenticate(cls, key: str) -> ApiToken | None:
        """The live token for a key (revoked and unknown keys alike give None); notes its use."""
        if not key or len(key) > 200:
            return None
        token = cls.objects.select_related("user").filter(key_hash=hash_key(key), revoked_at=None).first()
        if token is None or not token.user.is_active:
            return None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
