"""Which jobs a starting worker looks for, by the queue it serves.

Each kind of job has a `recover_stale_*` service (lifecycle.recover_stale with its model and task); a
worker that starts calls those of the queues it consumes, so messages a broker lost are sent again.
"""

from __future__ import annotations

import logging

from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

# queue -> the services that re-queue that queue's lost jobs (named, so this module imports no app).
RECOVERERS: dict[str, tuple[str, ...]] = {
    "training": ("webui.training.services.recover_stale_runs",),
    "default": (
        "webui.serving.batch.recover_stale_batches",
        "webui.serving.suggestions.recover_stale_refreshes",
        "webui.projects.imports.recover_stale_imports",
    ),
}


def recover(queues) -> dict[str, list[int]]:
    """Re-queue the lost jobs of these queues.

    Returns:
        {service name: ids re-queued}; a service that fails is logged and skipped.
    """
    found: dict[str, list[int]] = {}
    for queue in sorted(queues):
        for name in RECOVERERS.get(queue, ()):
            try:
                found[name] = import_string(name)()
            except Exception:  # never keep a worker from starting over a recovery sweep
                log.exception("recovering lost jobs with %s failed", name)
    return found
