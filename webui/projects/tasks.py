"""Project tasks (the `default` queue): ids in, one service call."""

from celery import shared_task

from webui.jobs import lifecycle
from webui.projects import imports


@shared_task(bind=True, max_retries=None)
def import_zip(self, job_id: int) -> None:
    try:
        imports.run_zip_import(job_id)
    except lifecycle.NotClaimable as exc:
        raise lifecycle.retry_when_claimed(self, exc) from None
