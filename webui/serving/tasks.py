"""Serving tasks (the `default` queue): ids in, one service call."""

from celery import shared_task

from webui.serving import batch


@shared_task
def predict_batch(batch_id: int) -> None:
    batch.run_batch(batch_id)
