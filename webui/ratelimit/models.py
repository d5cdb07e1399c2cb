"""Counters of the rate limiter when no Redis is configured: one row per (who, what, window)."""

from __future__ import annotations

from django.db import models


class Counter(models.Model):
    key = models.CharField(max_length=255, unique=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
