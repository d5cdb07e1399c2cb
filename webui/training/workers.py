"""Which workers are there to train, and what a queued training is waiting for.

A worker process that trains loads the default backbone as soon as it starts (exporting it to ONNX the
first time on a host, then opening it on this CPU's engine), in a thread beside the one that takes
tasks, so the first training does not pay for it; a task that arrives meanwhile waits for the same load.
The process says where it is in the `WorkerPresence` table: "starting" while it loads, then "ready",
and it checks in every HEARTBEAT_SECONDS while it lives. The site reads that to tell a person what a
queued training waits for, instead of "waiting for a worker" while one is loading.

The table, not Celery's broadcast ping: the server-less SQLite broker of `make run` has no broadcast.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from webui.jobs.models import JobStatus
from webui.training.models import TrainingRun, WorkerPresence

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20
# A worker that has not checked in for this long is gone (killed, host down).
GONE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS
# Rows of processes gone this long are deleted when another process starts.
FORGET_AFTER = timedelta(days=1)


def worker_name() -> str:
    """Returns: this process's name in the table (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def announce(name: str, phase: str, detail: str = "", warm_up_seconds: float | None = None) -> None:
    """Record what a worker process is doing now.

    Args:
        name: worker_name() of the process.
        phase: WorkerPresence.STARTING or READY.
        detail: what it is doing, in words.
        warm_up_seconds: how long loading took (with READY).
    """
    now = timezone.now()
    fields = {"phase": phase, "detail": detail[:300], "seen_at": now}
    if warm_up_seconds is not None:
        fields["warm_up_seconds"] = warm_up_seconds
    if phase == WorkerPresence.STARTING:
        fields["started_at"] = now
    WorkerPresence.objects.update_or_create(
        name=name, defaults=fields, create_defaults={**fields, "started_at": now}
    )


def warm_up(name: str) -> float:
    """Load the default backbone on this process's engine, saying so before and after.

    Args:
        name: worker_name() of the process.
    Returns:
        Seconds the load took.
    """
    from webui.training.services import extractor_for

    backbone = settings.PINHOLE_DEFAULT_BACKBONE
    extractor = extractor_for(backbone)
    announce(name, WorkerPresence.STARTING, f"loading the network ({backbone}, {extractor.choice.precision})")
    started = time.perf_counter()
    try:
        extractor.load()
    except Exception as exc:  # a training will report it to the person; the worker still takes tasks
        log.warning("loading %s at start-up failed: %s", backbone, exc)
        announce(name, WorkerPresence.READY, f"could not load {backbone} in advance: {exc}")
        return time.perf_counter() - started
    seconds = time.perf_counter() - started
    announce(name, WorkerPresence.READY, f"{backbone} loaded ({extractor.choice.reason})", seconds)
    return seconds


def _live(name: str) -> None:
    try:
        cutoff = timezone.now() - FORGET_AFTER
        WorkerPresence.objects.filter(seen_at__lt=cutoff).delete()
        warm_up(name)
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            close_old_connections()
            WorkerPresence.objects.filter(name=name).update(seen_at=timezone.now())
    except Exception:  # never take the worker down over its presence
        log.exception("worker presence stopped")


def start_in_background() -> threading.Thread:
    """Warm up and then check in every HEARTBEAT_SECONDS, in a daemon thread of this process.

    Returns:
        The thread (tests join it after the warm-up).
    """
    thread = threading.Thread(target=_live, args=(worker_name(),), name="pinhole-presence", daemon=True)
    thread.start()
    return thread


def live_workers() -> list[WorkerPresence]:
    """Returns: the worker processes that checked in within GONE_AFTER_SECONDS."""
    cutoff = timezone.now() - timedelta(seconds=GONE_AFTER_SECONDS)
    return list(WorkerPresence.objects.filter(seen_at__gte=cutoff).order_by("name"))


def waiting_message(run: TrainingRun) -> str:
    """What a queued training waits for, in words a person can act on.

    Args:
        run: a queued TrainingRun.
    Returns:
        One sentence.
    """
    workers = live_workers()
    if not workers:
        return "waiting for a worker: none is running yet (make run starts one; it can take a few seconds)"
    starting = [w for w in workers if w.phase == WorkerPresence.STARTING]
    if len(starting) == len(workers):
        previous = (
            WorkerPresence.objects.filter(warm_up_seconds__isnull=False)
            .order_by("-seen_at")
            .values_list("warm_up_seconds", flat=True)
            .first()
        )
        took = f", which took {previous:.0f} s last time" if previous else ""
        return f"the worker is starting: {starting[0].detail or 'loading the network'}{took}"
    ahead = TrainingRun.objects.filter(status=JobStatus.RUNNING).exclude(pk=run.pk).count()
    ahead += TrainingRun.objects.filter(status=JobStatus.QUEUED, created__lt=run.created).count()
    if ahead:
        return f"queued behind {ahead} other training{'s' if ahead > 1 else ''}"
    return "about to start: a worker is ready"


def phase_message(run: TrainingRun) -> str:
    """What a run is doing now, for the progress card: for a queued run what it waits for (a worker
    starting, a busy one, none at all); for a running one its step, with an estimate of the time left."""
    if run.status == JobStatus.QUEUED:
        return waiting_message(run)
    if run.status != JobStatus.RUNNING or not run.started_at or not 0.05 <= run.progress < 0.995:
        return run.message
    elapsed = (timezone.now() - run.started_at).total_seconds()
    left = elapsed * (1 - run.progress) / run.progress
    estimate = f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.0f} min left"
    return f"{run.message} ({estimate})" if run.message else estimate
