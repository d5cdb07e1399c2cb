"""Predictions in the web process: a small LRU of loaded versions, one answer per version.

Each web process keeps up to PINHOLE_PREDICTOR_CACHE_SIZE `classifier.Predictor`s (ONNX Runtime, no
torch). The serving version is read from the database on every request, so a promotion or rollback
takes effect on the next request; an answer always names the version that produced it.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from django.conf import settings

from classifier.errors import ArtifactError, ImageError
from classifier.preprocessing import require_min_size
from classifier.selection import uncertainty
from webui.lib.decoding import check_pixels, slot
from webui.projects.models import Project
from webui.training import label_thresholds
from webui.training.artifacts import ArtifactBroken, check_artifact
from webui.training.models import ModelVersion
from webui.training.thresholds import is_sure

log = logging.getLogger(__name__)


class NoModel(Exception):
    """Nothing serves yet for this project (or the asked-for version is not in it)."""


class BadImage(Exception):
    """The image to predict cannot be used; the message is the engine's."""


_lock = threading.Lock()
_cache: OrderedDict[tuple[int, str], object] = OrderedDict()


def predictor_for(version: ModelVersion):
    """The loaded Predictor for a version (checked against its manifest the first time)."""
    from classifier.predict import Predictor

    key = (version.pk, version.artifact)
    with _lock:
        predictor = _cache.get(key)
        if predictor is not None:
            _cache.move_to_end(key)
            return predictor
    # Load outside the lock: a slow first load must not stall predictions from other versions.
    path = check_artifact(version)
    try:
        predictor = Predictor(
            path,
            threads=settings.PINHOLE_PREDICTOR_THREADS,
            quantized_dir=Path(settings.PINHOLE_MODEL_CACHE) / "int8",
        )
    except ArtifactError as exc:  # files intact but unusable: a graph the runtime refuses, no preprocessing
        raise ArtifactBroken(f"v{version.number} cannot serve: {exc}") from exc
    with _lock:
        _cache[key] = predictor
        _cache.move_to_end(key)
        while len(_cache) > settings.PINHOLE_PREDICTOR_CACHE_SIZE:
            _cache.popitem(last=False)
    return predictor


def evict(version_id: int | None = None) -> None:
    """Forget loaded versions (one, or all): after a delete, a revoked link, a deleted project."""
    with _lock:
        for key in [k for k in _cache if version_id is None or k[0] == version_id]:
            del _cache[key]


def revoke_link(link) -> None:
    """Revoke a share link, then forget the loaded model it answered with (the site and the admin)."""
    link.revoke()
    version_id = link.version_id or link.project.serving_version_id
    if version_id:
        evict(version_id)


def resolve_version(project, version_id: int | None = None) -> ModelVersion:
    """The version that answers: the asked-for one in this project, or the one serving now (without its
    metrics, which hold every finding and test answer: decoding them cost more than the prediction)."""
    versions = ModelVersion.objects.defer("metrics", "learned")
    if version_id is not None:
        version = versions.filter(project=project, pk=version_id).first()
        if version is None:
            raise NoModel("this project has no such model version")
        return version
    # Read the pointer fresh (the project object may be older than the last promotion), in one query.
    serving = Project.objects.filter(pk=project.pk).values("serving_version_id")[:1]
    version = versions.filter(pk=serving).first()
    if version is None:
        raise NoModel("no model serves for this project yet; train one first")
    return version


def predict(
    project, data: bytes, *, version_id: int | None = None, top_k: int = 5, heatmap: bool = False
) -> dict:
    """Predict one image with the serving (or given) version.

    Args:
        heatmap: also say where in the picture the answer came from (`heatmap`: a JPEG data URL of
            what the network saw with the evidence laid over it).
    Returns:
        {label, probability, top: [{label, probability}], unknown, unknown_score, sure, threshold,
        model_version}: `sure` is false when the answer is below the version's threshold (a "not sure").
        Multi-label versions add `labels`: [{label, probability, present}] for every label, in the
        version's order (`label` is then the likeliest, present or not); `threshold` is null and `sure`
        false when a label is within label_thresholds.UNSURE_MARGIN of its threshold.
    """
    version = resolve_version(project, version_id)
    predictor = predictor_for(version)
    try:
        require_min_size(data)
        pixels = check_pixels(
            data,
            settings.PINHOLE_PREDICT_MAX_MEGAPIXELS,
            target_size=predictor.preprocessing.resize,
            purpose="a prediction",
        )
        with slot(pixels):
            result = predictor.predict([data], top_k=top_k, thresholds=version.label_thresholds or None)[0]
            explained = predictor.explain(data) if heatmap else None
    except ImageError as exc:
        raise BadImage(str(exc)) from None
    except ArtifactError as exc:  # a graph the explainer cannot trace: answer without the heatmap
        log.warning("cannot explain %s: %s", version, exc)
        explained = None
    extra = {}
    if explained is not None:
        extra["heatmap"] = "data:image/jpeg;base64," + base64.b64encode(explained.overlay_jpeg).decode()
        extra["heatmap_label"] = predictor.labels[explained.label_index]
    if result.labels is not None:
        extra["labels"] = [
            {"label": name, "probability": round(float(p), 6), "present": present}
            for name, p, present in result.labels
        ]
        sure = label_thresholds.is_sure(
            result.labels, label_thresholds.effective(version, predictor.thresholds)
        )
    else:
        sure = is_sure(version, float(result.probability))
    return {
        **extra,
        "label": result.label,
        "probability": round(float(result.probability), 6),
        "top": [{"label": name, "probability": round(float(p), 6)} for name, p in result.top],
        "unknown": bool(result.unknown),
        "unknown_score": round(float(result.unknown_score), 6),
        "sure": sure,
        "threshold": None if result.labels is not None else version.answer_threshold,
        "model_version": version.number,
        "model_version_id": version.pk,
    }


def predict_stored(version: ModelVersion, images, *, for_labelling: bool = False) -> list[dict]:
    """The version's best label for each of a project's stored images, in the order given.

    Batch predictions and suggestions both answer this way: each answer is {label, probability, unknown,
    sure} (`sure`: at or above the version's threshold), or {error} for a picture that cannot be read (one bad picture never hides the others' answers).
    With `for_labelling`, answers also carry what "label next" weighs: `uncertainty` (1 − the margin
    between the two likeliest labels) and `embedding` (the picture as the version compares pictures).

    Raises:
        ArtifactBroken: the version cannot be loaded.
    """
    from django.core.files.storage import default_storage

    predictor = predictor_for(version)
    options = {"top_k": 2, "embed": True} if for_labelling else {"top_k": 1}
    thresholds = None
    if predictor.multi_label:
        thresholds = label_thresholds.effective(version, predictor.thresholds)
        options["thresholds"] = thresholds
    answers: list[dict | None] = [None] * len(images)
    blobs: dict[int, bytes] = {}
    for index, image in enumerate(images):
        try:
            with default_storage.open(image.file.name, "rb") as handle:
                blobs[index] = handle.read()
        except OSError:
            answers[index] = {"error": "the stored picture could not be read (deleted meanwhile?)"}
    order = list(blobs)
    try:
        predictions = predictor.predict([blobs[i] for i in order], **options) if order else []
    except ImageError:
        predictions = [_predict_one(predictor, blobs[i], options) for i in order]  # isolate the bad one
    for index, prediction in zip(order, predictions, strict=True):
        answers[index] = prediction if isinstance(prediction, dict) else _answer(prediction, thresholds)
        if "error" not in answers[index] and thresholds is None:
            answers[index]["sure"] = is_sure(version, answers[index]["probability"])
    return answers


def _predict_one(predictor, blob: bytes, options: dict):
    try:
        [prediction] = predictor.predict([blob], **options)
    except ImageError as exc:
        return {"error": str(exc)}
    return prediction


def _answer(prediction, thresholds: dict | None = None) -> dict:
    answer = {
        "label": prediction.label,
        "probability": round(float(prediction.probability), 6),
        "unknown": bool(prediction.unknown),
    }
    if thresholds is not None:  # multi-label
        answer["labels"] = [
            {"label": name, "probability": round(float(p), 6), "present": present}
            for name, p, present in prediction.labels
        ]
        answer["sure"] = label_thresholds.is_sure(prediction.labels, thresholds)
    if prediction.embedding is not None:
        if thresholds is not None:
            answer["uncertainty"] = label_thresholds.uncertainty(prediction.labels, thresholds)
        else:
            answer["uncertainty"] = float(uncertainty(np.array([[p for _, p in prediction.top]]))[0])
        answer["embedding"] = prediction.embedding
    return answer
