"""What every job goes through, written once: enqueue, claim, heartbeat, progress, finish, recover, cancel.

A service that runs a kind of job calls these with its model class; a task calls one service.

    job = lifecycle.claim(ZipImport, job_id)          # None: nothing to do; NotClaimable: try later
    with lifecycle.Heartbeat(job):                     # beats while a long step reports nothing
        ...
        lifecycle.report(job, 0.4, "800 of 2,000")     # raises Cancelled when a person asked to stop
    lifecycle.finish(job, JobStatus.SUCCEEDED, message="done")
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from classifier.errors import Cancelled
from webui.jobs import claimant
from webui.jobs.models import FINAL_STATES, InvalidTransition, Job, JobStatus

log = logging.getLogger(__name__)


class NotClaimable(Exception):
    """Another live worker holds the job; the task should look again once its heartbeat could be stale."""


def stale_after() -> timedelta:
    """How long a RUNNING job's heartbeat may be silent before its worker counts as dead."""
    return timedelta(seconds=settings.PINHOLE_HEARTBEAT_STALE_S)


def enqueue(model: type[Job], job_id: int) -> None:
    """Hand the job to its task's queue; if the broker is unreachable, fail the job with a message
    instead of leaving it queued for ever."""
    try:
        import_string(model.task).delay(job_id)
    except Exception as exc:  # kombu raises OperationalError and friends from the transport
        log.exception("could not enqueue %s %s", model.noun, job_id)
        model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=f"the task queue could not be reached ({type(exc).__name__}); try again in a minute",
            message="the task queue could not be reached",
        )


def enqueue_on_commit(job: Job) -> None:
    """Queue the job once the transaction that made it commits (a rolled-back job is never queued)."""
    model, job_id = type(job), job.pk
    transaction.on_commit(lambda: enqueue(model, job_id))


def claim(model: type[Job], job_id: int, *, on_give_up: Callable[[int], None] | None = None) -> Job | None:
    """Take a job for this worker with one conditional UPDATE; None if there is nothing to do.

    A QUEUED job is claimed normally. A RUNNING job whose worker died (killed, out of memory, host
    gone: `is_dead`) is taken over by the redelivered task. A RUNNING job whose worker lives is being
    worked on right now (a duplicate delivery): NotClaimable tells the task to look again later instead
    of doing the work twice. A job delivered more than PINHOLE_TASK_MAX_DELIVERIES times fails with a
    message instead of killing worker after worker; `on_give_up(job_id)` cleans up after it.
    """
    job = model.objects.filter(pk=job_id).first()
    if job is None or job.status in FINAL_STATES:
        return None
    now, me = timezone.now(), claimant.this_process()
    taken_over = dict(heartbeat_at=now, claimed_by=me, attempts=F("attempts") + 1)
    if job.status == JobStatus.QUEUED:
        taken = model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=now, **taken_over
        )
    else:
        if not is_dead(job):
            raise NotClaimable(f"{model.noun} {job_id} is being worked on by another worker")
        # Conditioned on what made it dead, so two workers taking over at once cannot both win.
        still = model.objects.filter(pk=job_id, status=JobStatus.RUNNING, claimed_by=job.claimed_by)
        if not claimant.is_gone(job.claimed_by):
            still = still.filter(heartbeat_at=job.heartbeat_at)
        taken = still.update(**taken_over)
        if not taken:
            raise NotClaimable(f"{model.noun} {job_id} was just taken over by another worker")
    if not taken:
        return None
    job.refresh_from_db()
    if job.attempts > settings.PINHOLE_TASK_MAX_DELIVERIES:
        if on_give_up is not None:
            on_give_up(job.pk)
        finish(
            job,
            JobStatus.FAILED,
            error=(
                f"the worker stopped {job.attempts - 1} times while working on this {model.noun} "
                "(out of memory, or the process was killed); giving up"
            ),
        )
        return None
    return job


def report(job: Job, fraction: float, message: str) -> None:
    """Record progress and beat the heartbeat; raise Cancelled when a person asked the job to stop."""
    model = type(job)
    fraction = min(max(float(fraction), 0.0), 1.0)
    model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        progress=fraction, message=message[:300], heartbeat_at=timezone.now()
    )
    job.progress, job.message = fraction, message[:300]
    if model.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise Cancelled("cancelled by a person")


def finish(job: Job, status: str, *, error: str = "", message: str = "", **fields) -> bool:
    """Move a RUNNING job to a final state; False (logged) if it is no longer RUNNING."""
    try:
        job.transition(
            status, expect=JobStatus.RUNNING, error=error, message=message or error[:300], **fields
        )
    except InvalidTransition:
        log.warning("%s %s could not become %s; it is %s", job.noun, job.pk, status, job.status)
        return False
    return True


class Heartbeat(threading.Thread):
    """Touches a RUNNING job every `every` seconds while a long step (an epoch, an export) reports
    nothing. Use as a context manager around the work."""

    def __init__(self, job: Job, every: float | None = None):
        super().__init__(daemon=True, name=f"heartbeat-{job.noun}-{job.pk}")
        self.model, self.job_id = type(job), job.pk
        self.every = every if every is not None else max(1.0, settings.PINHOLE_HEARTBEAT_STALE_S / 4)
        self.stopped = threading.Event()

    def run(self):
        try:
            while not self.stopped.wait(self.every):
                try:
                    self.model.objects.filter(pk=self.job_id, status=JobStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    # A busy or briefly unreachable database must not end the heartbeat: the next beat
                    # tries again, and only a job silent for PINHOLE_HEARTBEAT_STALE_S is taken over.
                    log.warning("heartbeat of %s %s not recorded; retrying", self.model.noun, self.job_id)
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()


def recover_stale(model: type[Job], *, queued_for: timedelta = timedelta(minutes=2)) -> list[int]:
    """Queue again the jobs whose message was lost; returns their ids.

    A broker without persistence (Redis restarted) or a whole worker host lost with the SQLite broker
    drops messages, and a broker may hold a killed worker's message back for a long while: their jobs
    would stay QUEUED, or RUNNING, for ever. Called when a worker starts, it sends again the jobs queued
    for longer than `queued_for` and every running job whose worker died (`dead_jobs`), however
    recently. A second message for a job that still has one is harmless: the claim is a conditional
    UPDATE, so only one delivery does the work.
    """
    queued = model.objects.filter(status=JobStatus.QUEUED, created__lt=timezone.now() - queued_for)
    ids = sorted(set(queued.values_list("pk", flat=True)) | set(dead_jobs(model)))
    for job_id in ids:
        enqueue(model, job_id)
    if ids:
        log.warning("re-queued %d %s(s) whose message was lost: %s", len(ids), model.noun, ids)
    return ids


def is_dead(job: Job) -> bool:
    """A running job whose worker died: its heartbeat went silent, or its claimant is a process of this
    host that is gone (known at once, without waiting for the heartbeat window)."""
    if job.status != JobStatus.RUNNING:
        return False
    if job.heartbeat_at is None or job.heartbeat_at < timezone.now() - stale_after():
        return True
    return claimant.is_gone(job.claimed_by)


def dead_jobs(model: type[Job]) -> list[int]:
    """Running jobs whose worker died (`is_dead`): a message for them may be gone."""
    running = model.objects.filter(status=JobStatus.RUNNING).only(
        "pk", "status", "heartbeat_at", "claimed_by"
    )
    return [job.pk for job in running if is_dead(job)]


def cancel(job: Job) -> Job:
    """Cancel a queued job at once; ask a running one to stop at its next progress report.

    Raises:
        InvalidTransition: the job has already ended.
    """
    model = type(job)
    job.refresh_from_db()
    if job.status == JobStatus.QUEUED:
        try:
            job.transition(JobStatus.CANCELLED, expect=JobStatus.QUEUED, message="cancelled")
            return job
        except InvalidTransition:
            job.refresh_from_db()
    if job.status == JobStatus.RUNNING:
        # A worker that died cannot honour the request: its job ends here, at once, instead of saying
        # "cancelling…" until a sweep hands it to another worker.
        ended = 0
        if is_dead(job):
            ended = model.objects.filter(
                pk=job.pk, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at, claimed_by=job.claimed_by
            ).update(
                status=JobStatus.CANCELLED,
                finished_at=timezone.now(),
                message="cancelled (its worker had stopped)",
            )
        if not ended:
            model.objects.filter(pk=job.pk).update(cancel_requested=True, message="cancelling…")
        job.refresh_from_db()
        return job
    raise InvalidTransition(
        f"this {model.noun} is {job.get_status_display().lower()} and cannot be cancelled"
    )


def retry_when_claimed(task, exc: NotClaimable):
    """For a bound task whose job another live worker holds: look again once that worker's heartbeat
    could have gone stale. Returns the exception to raise."""
    return task.retry(exc=exc, countdown=stale_after().total_seconds())
