"""Serving tasks (the `default` queue): ids in, one service call."""

from celery import shared_task

from webui.jobs import lifecycle
from webui.serving import batch, suggestions


@shared_task(bind=True, max_retries=None)
def predict_batch(self, batch_id: int) -> None:
    try:
        batch.run_batch(batch_id)
    except lifecycle.NotClaimable as exc:
        raise lifecycle.retry_when_claimed(self, exc) from None


@shared_task(bind=True, max_retries=None)
def refresh_suggestions(self, job_id: int) -> None:
    try:
        suggestions.run_refresh(job_id)
    except lifecycle.NotClaimable as exc:
        raise lifecycle.retry_when_claimed(self, exc) from None
