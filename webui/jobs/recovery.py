"""Which jobs a starting worker looks for, by the queue it serves.

A worker that starts re-queues the stale jobs (lifecycle.recover_stale) of the kinds its queues carry,
so messages a broker lost are sent again.
"""

from __future__ import annotations

import logging

from django.apps import apps

from webui.jobs import lifecycle

log = logging.getLogger(__name__)

# queue -> the kinds of job whose tasks it carries (app_label.Model; webui/celery.py routes the tasks).
JOB_KINDS: dict[str, tuple[str, ...]] = {
    "training": ("training.TrainingRun",),
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
