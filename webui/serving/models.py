"""Share links, batch predictions, and the suggestions a version makes for unlabeled pictures."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from webui.jobs.models import Job
from webui.projects.models import Project


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ShareLinkQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(enabled=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ShareLink(models.Model):
    """A public, revocable URL to try a project's model without an account.

    Only a hash of the token is stored: a leaked database does not leak working links, and lookup
    by hash means no token comparison in Python at all (nothing to time).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    token_hint = models.CharField(
        max_length=8, help_text="First characters of the token, to tell links apart."
    )
    # Null means "follow whatever version serves"; set, it pins one version.
    version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    enabled = models.BooleanField(default=True)
    # Visitors may choose to run the model on their own device: the page then hands them its network
    # (the version's graph and the "none of these" check's references), so the owner opts in.
    on_device = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.project} share {self.token_hint}…"

    @classmethod
    def create_for(
        cls, project: Project, user=None, *, version=None, expires_at=None, on_device: bool = False
    ) -> tuple[ShareLink, str]:
        """Create a link; the plain token is returned once and never stored."""
        token = secrets.token_urlsafe(32)  # 256 bits
        link = cls.objects.create(
            project=project,
            token_hash=hash_token(token),
            token_hint=token[:6],
            version=version,
            expires_at=expires_at,
            on_device=on_device,
            created_by=user,
        )
        return link, token

    @classmethod
    def lookup(cls, token: str) -> ShareLink | None:
        """The active link for a token, or None: revoked, expired and unknown look the same."""
        if not token or len(token) > 128:
            return None
        return (
            cls.objects.active()
            .select_related("project", "version")
            .filter(token_hash=hash_token(token))
            .first()
        )

    @property
    def is_active(self) -> bool:
        return self.enabled and (self.expires_at is None or self.expires_at > timezone.now())

    def revoke(self) -> None:
        self.enabled = False
        self.revoked_at = timezone.now()
        self.save(update_fields=["enabled", "revoked_at"])


class BatchPrediction(Job):
    """Predictions for many of a project's images at once, made by a worker so no request waits on them."""

    noun = "batch prediction"
    task = "webui.serving.tasks.predict_batch"

    class Scope(models.TextChoices):
        UNLABELED = "unlabeled", "Unlabeled images"
        ALL = "all", "All images"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batch_predictions")
    version = models.ForeignKey("training.ModelVersion", on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.UNLABELED)
    # [{image_id, label, probability, unknown}] or [{image_id, error}] for an image that cannot be read.
    results = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"Batch {self.pk} of {self.project} ({self.status})"


class Suggestion(models.Model):
    """A version's best label for one picture (by content hash), worked out by a SuggestionRefresh.

    A picture that could not be read gets a row with `readable` false, so it is not tried again.
    "Label next" reads the rest: how unsure the version is of the picture, the picture as the version
    compares pictures (float16), and the picture's place in the order to label, worked out by the
    refresh once every unlabeled picture has its row (webui/serving/suggestions.rank).
    """

    version = models.ForeignKey("training.ModelVersion", on_delete=models.CASCADE, related_name="suggestions")
    sha256 = models.CharField(max_length=64)
    label = models.CharField(max_length=100, blank=True)
    probability = models.FloatField(default=0.0)
    unknown = models.BooleanField(default=False)
    readable = models.BooleanField(default=True)
    uncertainty = models.FloatField(default=0.0)
    embedding = models.BinaryField(default=b"")
    next_rank = models.PositiveIntegerField(null=True, blank=True)
    # Multi-label versions: {label: probability} for every label, and the labels it says are there.
    probabilities = models.JSONField(null=True, blank=True)
    present = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "sha256"], name="unique_suggestion")]

    def __str__(self) -> str:
        return f"{self.version}: {self.sha256[:12]} -> {self.label}"

    def as_dict(self) -> dict:
        answer = {"label": self.label, "probability": self.probability, "unknown": self.unknown}
        if self.present is not None:
            answer.update(present=list(self.present), probabilities=dict(self.probabilities or {}))
        return answer

    def sureness(self) -> float:
        """Multi-label: how sure it is of its least sure label, either way (each label's probability of
        being there, or of not being there, whichever it said); single-label: its probability."""
        if self.present is None:
            return self.probability
        chosen = set(self.present)
        sides = [p if name in chosen else 1 - p for name, p in (self.probabilities or {}).items()]
        return min(sides, default=0.0)


class SuggestionRefresh(Job):
    """A worker working out the serving version's suggestions for a project's unlabeled pictures."""

    noun = "suggestion refresh"
    task = "webui.serving.tasks.refresh_suggestions"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="suggestion_refreshes")
    version = models.ForeignKey("training.ModelVersion", on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"Suggestions of {self.version} ({self.status})"


class PredictionRecord(models.Model):
    """One answer the site gave (try-it, API, share page), kept per version: what it said, how sure,
    where from. The ones worth a person's look wait in the review queue (webui/serving/review.py).

    `photo` holds the picture only where the project keeps photos from that source and the answer went
    to the queue, or where a visitor sent it with "Not right?"; it is removed after review, and after
    the project's keep_photos_days if nobody reviews it.
    """

    class Source(models.TextChoices):
        TRY = "try", "Try it"
        API = "api", "API"
        SHARE = "share", "Share page"

    class Review(models.TextChoices):
        NONE = "", "not queued"
        QUEUED = "queued", "waiting for review"
        ACCEPTED = "accepted", "accepted"
        RELABELLED = "relabelled", "labelled differently"
        DISCARDED = "discarded", "discarded"

    class Reason(models.TextChoices):
        NONE = "", ""
        UNSURE = "unsure", "the model was unsure"
        UNKNOWN = "unknown", "unlike anything it learned"
        VISITOR = "visitor", "a visitor said it was wrong"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prediction_records")
    version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="records"
    )
    version_number = models.PositiveIntegerField()
    source = models.CharField(max_length=8, choices=Source.choices)
    label = models.CharField(max_length=100)
    probability = models.FloatField()
    unknown = models.BooleanField(default=False)
    sure = models.BooleanField(default=True)
    top = models.JSONField(default=list)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    photo = models.FileField(upload_to="predictions/%Y/%m/", blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    review = models.CharField(max_length=12, choices=Review.choices, blank=True, default="")
    reason = models.CharField(max_length=8, choices=Reason.choices, blank=True, default="")
    visitor_label = models.CharField(max_length=100, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    image = models.ForeignKey(
        "projects.Image", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["project", "review", "created"]),
            models.Index(fields=["version", "created"]),
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.version_number}: {self.label} ({self.get_source_display()})"
