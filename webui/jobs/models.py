"""The abstract job every kind of background work extends.

A job is a row a request creates and a worker claims. Its life:

    QUEUED    -> RUNNING (a worker claimed it), CANCELLED, FAILED (never claimable)
    RUNNING   -> SUCCEEDED, FAILED, CANCELLED,
                 QUEUED (its worker died; the redelivered task may claim it again)
    SUCCEEDED, FAILED and CANCELLED are final.

Every move is one conditional UPDATE on the current status, so two processes racing on one job cannot
both win. A worker touches `heartbeat_at` while it works; a RUNNING job whose heartbeat is older than
PINHOLE_HEARTBEAT_STALE_S lost its worker and may be taken over (webui/jobs/lifecycle.py); so may one
whose claimant (the process that claimed it, webui/jobs/claimant.py) a worker on the same host sees gone.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class InvalidTransition(Exception):
    """A job was asked to move to a state its current state does not allow."""


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TRANSITIONS: dict[str, set[str]] = {
    JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED},
    JobStatus.RUNNING: {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED},
    JobStatus.SUCCEEDED: set(),
    JobStatus.FAILED: set(),
    JobStatus.CANCELLED: set(),
}
FINAL_STATES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
LIVE_STATES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class Job(models.Model):
    """Status, progress, message, heartbeat, delivery count and cancel flag of one piece of work."""

    # What the job is, in words, for messages: "training run", "zip import".
    noun = "job"
    # The Celery task that works on it, by name (so a model imports no tasks module): it takes the id.
    task = ""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A live worker touches this with every progress write; a redelivered copy of the task may only
    # take over a RUNNING job whose heartbeat has gone stale (its worker died).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # host:pid:start of the process working on it (claimant.this_process()); blank until claimed.
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        abstract = True
        ordering = ["-created"]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    def transition(self, to: str, *, expect: str | None = None, **fields) -> None:
        """Move to `to` with one conditional UPDATE; raise InvalidTransition if not allowed.

        The UPDATE is conditioned on the current status, so two processes racing on one job cannot
        both succeed (a duplicate delivery finds nothing to claim).
        """
        current = expect or self.status
        if to not in TRANSITIONS[current]:
            raise InvalidTransition(f"a {current} {self.noun} cannot become {to}")
        now = timezone.now()
        if to == JobStatus.RUNNING:
            fields.setdefault("started_at", now)
            fields.setdefault("heartbeat_at", now)
        if to in FINAL_STATES:
            fields.setdefault("finished_at", now)
        updated = type(self).objects.filter(pk=self.pk, status=current).update(status=to, **fields)
        if not updated:
            self.refresh_from_db(fields=["status"])
            raise InvalidTransition(
                f"{self.noun} {self.pk} is {self.status}, not {current}; cannot become {to}"
            )
        self.status = to
        for name, value in fields.items():
            setattr(self, name, value)

    def as_status(self) -> dict:
        """What a page polling this job is told."""
        return {
            "id": self.pk,
            "status": self.status,
            "progress": round(float(self.progress), 4),
            "message": self.message,
            "error": self.error,
            "final": self.is_final,
        }
