"""Which jobs a worker looks for, by the queue it serves.

A worker that starts re-queues the lost jobs (lifecycle.recover_stale) of the kinds its queues carry:
queued ones whose message a broker dropped, and running ones whose worker died. A worker killed and
started again on the same host is known dead at once by its claimant (webui/jobs/claimant.py), whatever
the heartbeat says. One on another host can only be known by its silent heartbeat, so while a worker
runs it also looks every heartbeat window for running jobs whose worker died (`Sweeper`).
"""

from __future__ import annotations

import logging
import threading
import time

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections

from webui.jobs import lifecycle

log = logging.getLogger(__name__)

# queue -> the kinds of job whose tasks it carries (app_label.Model; webui/celery.py routes the tasks).
JOB_KINDS: dict[str, tuple[str, ...]] = {
    "training": ("training.TrainingRun", "training.VersionExport"),
    "default": ("serving.BatchPrediction", "serving.SuggestionRefresh", "projects.ZipImport"),
}


def recover(queues) -> dict[str, list[int]]:
    """Re-queue the lost jobs of these queues.

    Returns:
        {kind: ids re-queued}; a kind whose sweep fails is logged and skipped.
    """
    found: dict[str, list[int]] = {}
    for queue in sorted(queues):
        for kind in JOB_KINDS.get(queue, ()):
            try:
                found[kind] = lifecycle.recover_stale(apps.get_model(kind))
            except Exception:  # never keep a worker from starting over a recovery sweep
                log.exception("recovering lost %s jobs failed", kind)
    return found


class Sweeper(threading.Thread):
    """Re-queues, every heartbeat window, the running jobs of these queues whose worker died.

    A job is sent again at most once per RESEND_WINDOWS windows by this worker: its new message may
    wait behind other work, and the claim (a conditional UPDATE) lets only one delivery run it anyway.
    """

    RESEND_WINDOWS = 5

    def __init__(self, queues):
        super().__init__(name="pinhole-job-sweeper", daemon=True)
        self.queues = sorted(queues)
        self.sent: dict[tuple[str, int], float] = {}
        self.stopped = threading.Event()

    @property
    def every_s(self) -> float:
        return float(settings.PINHOLE_HEARTBEAT_STALE_S)

    def sweep(self) -> list[tuple[str, int]]:
        """One look; returns the (kind, id) sent again."""
        now, resent = time.monotonic(), []
        for queue in self.queues:
            for kind in JOB_KINDS.get(queue, ()):
                try:
                    model = apps.get_model(kind)
                    for job_id in lifecycle.dead_jobs(model):
                        last = self.sent.get((kind, job_id))
                        if last is not None and now - last < self.RESEND_WINDOWS * self.every_s:
                            continue
                        lifecycle.enqueue(model, job_id)
                        self.sent[(kind, job_id)] = now
                        resent.append((kind, job_id))
                except Exception:  # the database may be briefly away; look again next window
                    log.exception("looking for dead %s jobs failed", kind)
        if resent:
            log.warning("re-queued jobs whose worker died: %s", resent)
        return resent

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.sweep()
            close_old_connections()  # this thread's connection must not outlive the database's patience
