"""Celery tasks: ids in, one service call, nothing else (the workflows live in services.py).

Routed to the `training` queue (webui/celery.py), served by workers on GPU hosts.
"""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from webui.jobs import lifecycle
from webui.training import exports, services


def _on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
    # The hard time limit kills the pool child, so nothing in run_training can record it; Celery then
    # calls on_failure in the worker's main process and acknowledges the message. Without this the
    # run would stay RUNNING forever.
    if isinstance(exc, TimeLimitExceeded) and args:
        services.fail_after_time_limit(args[0])


@shared_task(bind=True, max_retries=None, on_failure=_on_failure)
def train(self, run_id: int) -> None:
    try:
        services.run_training(run_id, time_limit_errors=(SoftTimeLimitExceeded,))
    except lifecycle.NotClaimable as exc:
        # Another live worker is training this run (a duplicate delivery); look again once its
        # heartbeat could have gone stale, and stop looking when the run has ended.
        raise lifecycle.retry_when_claimed(self, exc) from None


@shared_task(bind=True, max_retries=None)
def export(self, export_id: int) -> None:
    try:
        exports.run_export(export_id)
    except lifecycle.NotClaimable as exc:
        raise lifecycle.retry_when_claimed(self, exc) from None
