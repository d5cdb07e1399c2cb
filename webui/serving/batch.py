"""Batch prediction: every (unlabeled) image of a project through one version, in a worker."""

from __future__ import annotations

import logging

from django.db import transaction

from classifier.errors import Cancelled
from webui.jobs import lifecycle
from webui.jobs.models import JobStatus
from webui.serving.models import BatchPrediction
from webui.serving.services import predict_stored, resolve_version

log = logging.getLogger(__name__)
_CHUNK = 32


def start_batch(project, user, *, scope: str = "unlabeled", version_id: int | None = None) -> BatchPrediction:
    """Queue predictions for the project's images; raises NoModel when nothing can answer."""
    version = resolve_version(project, version_id)
    with transaction.atomic():
        batch = BatchPrediction.objects.create(
            project=project,
            version=version,
            scope=scope,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            message="queued",
        )
        lifecycle.enqueue_on_commit(batch)
    return batch


def run_batch(batch_id: int) -> None:
    """Claim a batch and predict its images chunk by chunk; a worker that takes over a batch whose
    worker died starts it again from the first image.

    Raises:
        lifecycle.NotClaimable: another live worker is predicting this batch.
    """
    batch = lifecycle.claim(BatchPrediction, batch_id)
    if batch is None:
        return  # gone, finished, or claimed by another delivery
    batch = BatchPrediction.objects.select_related("version", "project").get(pk=batch.pk)
    images = batch.project.images.order_by("pk")
    if batch.scope == BatchPrediction.Scope.UNLABELED:
        images = images.unlabeled()
    images = list(images)
    results: list[dict] = []
    try:
        with lifecycle.Heartbeat(batch):
            for start in range(0, len(images), _CHUNK):
                chunk = images[start : start + _CHUNK]
                for image, answer in zip(chunk, predict_stored(batch.version, chunk), strict=True):
                    results.append({"image_id": image.pk, **answer})
                done = min(len(images), start + _CHUNK)
                lifecycle.report(batch, done / len(images), f"{done} of {len(images)} pictures")
    except Cancelled:
        lifecycle.finish(batch, JobStatus.CANCELLED, message="cancelled")
        return
    except Exception as exc:
        log.exception("batch %s failed", batch_id)
        lifecycle.finish(batch, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    lifecycle.finish(
        batch, JobStatus.SUCCEEDED, message=f"{len(images)} pictures", progress=1.0, results=results
    )
