"""Batch prediction: every (unlabeled) image of a project through one version, in a worker."""

from __future__ import annotations

import logging

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classifier.errors import ClassifierError
from webui.serving.models import BatchPrediction, BatchStatus
from webui.serving.services import predictor_for, resolve_version

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
        )
        transaction.on_commit(lambda: _enqueue(batch.pk))
    return batch


def _enqueue(batch_id: int) -> None:
    from webui.serving.tasks import predict_batch

    try:
        predict_batch.delay(batch_id)
    except Exception as exc:  # the broker is unreachable: say so instead of staying queued forever
        log.exception("could not enqueue batch %s", batch_id)
        BatchPrediction.objects.filter(pk=batch_id, status=BatchStatus.QUEUED).update(
            status=BatchStatus.FAILED, error=f"the task queue could not be reached ({type(exc).__name__})"
        )


def run_batch(batch_id: int) -> None:
    """Claim a queued batch (one conditional UPDATE) and predict its images chunk by chunk."""
    if not BatchPrediction.objects.filter(pk=batch_id, status=BatchStatus.QUEUED).update(
        status=BatchStatus.RUNNING
    ):
        return  # gone, finished, or claimed by another delivery
    batch = BatchPrediction.objects.select_related("version", "project").get(pk=batch_id)
    images = batch.project.images.order_by("pk")
    if batch.scope == BatchPrediction.Scope.UNLABELED:
        images = images.filter(label__isnull=True)
    images = list(images.values_list("pk", "file"))
    try:
        predictor = predictor_for(batch.version)
        results = []
        for start in range(0, len(images), _CHUNK):
            results.extend(_predict_chunk(predictor, images[start : start + _CHUNK]))
            BatchPrediction.objects.filter(pk=batch_id).update(
                progress=min(1.0, (start + _CHUNK) / len(images))
            )
    except Exception as exc:
        log.exception("batch %s failed", batch_id)
        BatchPrediction.objects.filter(pk=batch_id).update(
            status=BatchStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
        )
        return
    BatchPrediction.objects.filter(pk=batch_id).update(
        status=BatchStatus.SUCCEEDED, progress=1.0, results=results, finished_at=timezone.now()
    )


def _predict_chunk(predictor, images: list[tuple[int, str]]) -> list[dict]:
    data = []
    for _pk, name in images:
        with default_storage.open(name, "rb") as handle:
            data.append(handle.read())
    try:
        predictions = predictor.predict(data, top_k=1)
    except ClassifierError:
        # One unreadable image fails the batch call; retry one by one to isolate it.
        return [_predict_one(predictor, pk, blob) for (pk, _name), blob in zip(images, data, strict=True)]
    return [_row(pk, p) for (pk, _name), p in zip(images, predictions, strict=True)]


def _predict_one(predictor, pk: int, blob: bytes) -> dict:
    try:
        [prediction] = predictor.predict([blob], top_k=1)
    except ClassifierError as exc:
        return {"image_id": pk, "error": str(exc)}
    return _row(pk, prediction)


def _row(pk: int, prediction) -> dict:
    return {
        "image_id": pk,
        "label": prediction.label,
        "probability": round(float(prediction.probability), 6),
        "unknown": bool(prediction.unknown),
    }
