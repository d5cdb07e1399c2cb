"""Celery tasks: ids in, one service call, nothing else (the workflows live in services.py).

Routed to the `training` queue (webui/celery.py), served by workers on GPU hosts.
"""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from webui.training import services


@shared_task(bind=True, max_retries=None)
def train(self, run_id: int) -> None:
    try:
        services.run_training(run_id, time_limit_errors=(SoftTimeLimitExceeded,))
    except services.NotClaimable as exc:
        # Another live worker is training this run (a duplicate delivery); look again once its
        # heartbeat could have gone stale, and stop looking when the run has ended.
        raise self.retry(exc=exc, countdown=services.heartbeat_stale_after().total_seconds()) from None
