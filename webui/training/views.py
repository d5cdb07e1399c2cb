"""Pages for training a model and understanding, comparing and managing its versions."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from classifier.evaluation import EvaluationKind, evaluation_kind
from classifier.strategies import MIN_PER_LABEL_PARTIAL, STRATEGY_CHOICES
from webui.jobs.models import InvalidTransition, JobStatus
from webui.projects.access import get_project_for_user
from webui.projects.models import Image
from webui.projects.services import delete_image as remove_image
from webui.projects.services import set_label
from webui.training.artifacts import ArtifactBroken
from webui.training.findings import findings
from webui.training.models import ArtifactInUse, ModelVersion, rollback
from webui.training.services import TrainingRefused, cancel, check_ready, start_training

log = logging.getLogger(__name__)

STRATEGY_HELP = {
    "auto": "Let Pinhole choose from how many images each label has and whether this server has a GPU.",
    "linear": (
        "Keep the pretrained network as it is and teach only its last step your labels: the fastest, "
        f"and what Pinhole picks on a server without a GPU, or below {MIN_PER_LABEL_PARTIAL} images per label."
    ),
    "partial": (
        "Also adjust the last few layers of the network to your images: minutes on a GPU, far longer "
        f"without one; Pinhole picks it on a GPU from {MIN_PER_LABEL_PARTIAL} images per label."
    ),
    "full": (
        "Retrain the whole network, starting from what it already knows: the slowest, for thousands "
        "of images and a GPU."
    ),
}
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
PREDICTION_CACHE_S = 7 * 24 * 3600
# Findings of each kind the results page lists (its counts cover them all).
REPORT_FINDINGS = 60


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _version(project, number: int) -> ModelVersion:
    return get_object_or_404(ModelVersion, project=project, number=number)


# --- train ----------------------------------------------------------------------------------------


@login_required
def train(request, project_id: int):
    if request.method == "POST":
        project = get_project_for_user(request.user, project_id, write=True)
        params = {
            "backbone": request.POST.get("backbone") or None,
            "strategy": request.POST.get("strategy") or "auto",
        }
        try:
            run = start_training(project, request.user, params)
        except TrainingRefused as exc:
            messages.error(request, f"Training could not start: {exc}.")
        else:
            if getattr(run, "reused", False) and run.status == JobStatus.SUCCEEDED:
                messages.info(
                    request, "Nothing changed since the last training with these settings; here is its model."
                )
            elif getattr(run, "reused", False):
                messages.info(request, "A training with exactly these images and settings is already going.")
        return redirect("training:train", project_id=project.pk)

    from classifier.backbones import list_backbones

    project = get_project_for_user(request.user, project_id)
    labels = project.labels.annotate(n=Count("images")).order_by("order", "name")
    unlabeled = project.images.filter(label__isnull=True).count()
    try:
        check_ready(project)
        not_ready = ""
    except TrainingRefused as exc:
        not_ready = str(exc)
    run = project.runs.filter(status__in=ACTIVE).order_by("-created").first()
    last = None if run else project.runs.order_by("-created").first()
    backbones = list_backbones()
    default_backbone = project.backbone if any(b["name"] == project.backbone for b in backbones) else ""
    context = {
        "project": project,
        "can_edit": project.can_edit(request.user),
        "labels": labels,
        "unlabeled": unlabeled,
        "not_ready": not_ready,
        "run": run,
        "last": last,
        "last_version": _run_version(last),
        "backbones": backbones,
        "default_backbone": default_backbone,
        "strategies": [(name, STRATEGY_HELP[name]) for name in STRATEGY_CHOICES],
        "serving": project.serving_version,
    }
    return render(request, "training/train.html", context)


def _run_version(run) -> ModelVersion | None:
    if run is None or run.status != JobStatus.SUCCEEDED:
        return None
    return ModelVersion.objects.filter(run=run).first()


@login_required
@require_GET
def run_status(request, project_id: int, run_id: int):
    """The progress card, polled every second while the run is active (htmx swaps it in place)."""
    project = get_project_for_user(request.user, project_id)
    run = get_object_or_404(project.runs, pk=run_id)
    context = {
        "project": project,
        "run": run,
        "version": _run_version(run),
        "can_edit": project.can_edit(request.user),
    }
    response = render(request, "training/_run.html", context)
    if run.is_final and _is_htmx(request):
        # The run ended while the page polled: reload it so the Train button and data summary catch up.
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def cancel_run(request, project_id: int, run_id: int):
    project = get_project_for_user(request.user, project_id, write=True)
    run = get_object_or_404(project.runs, pk=run_id)
    try:
        cancel(run)
    except InvalidTransition as exc:
        messages.error(request, str(exc).capitalize() + ".")
    else:
        messages.info(
            request, "Cancelled." if run.status == JobStatus.CANCELLED else "Stopping at the next step…"
        )
    return redirect("training:train", project_id=project.pk)


# --- one version ----------------------------------------------------------------------------------


def _pct(value) -> int | None:
    return None if value is None else round(float(value) * 100)


def _top_k(value) -> tuple[int, float] | None:
    """(k, accuracy) for the largest k above 1 from the engine's {"k": accuracy} (or a bare number)."""
    if isinstance(value, dict):
        ks = sorted((int(k), v) for k, v in value.items() if str(k).isdigit() and int(k) > 1)
        return ks[-1] if ks else None
    return None if value is None else (5, value)


def _reason(strategy: str, reason: str) -> str:
    # The engine writes "linear: 32 images per label ..."; the page already names the strategy.
    prefix = f"{strategy}:"
    return reason[len(prefix) :].strip() if strategy and reason.startswith(prefix) else reason


def _heat(fraction: float, correct: bool) -> str:
    alpha = 0.08 + 0.85 * fraction if fraction else 0.0
    rgb = "4, 120, 87" if correct else "185, 28, 28"
    ink = "#fff" if alpha > 0.5 else "inherit"
    return f"background: rgba({rgb}, {alpha:.2f}); color: {ink}"


def _matrix(metrics: dict) -> list[dict]:
    labels = metrics.get("labels") or []
    rows = []
    for i, counts in enumerate(metrics.get("confusion_matrix") or []):
        total = sum(counts) or 1
        cells = []
        for j, count in enumerate(counts):
            fraction = count / total
            cells.append(
                {
                    "i": i,
                    "j": j,
                    "count": count,
                    "pct": round(fraction * 100),
                    "predicted": labels[j] if j < len(labels) else str(j),
                    "correct": i == j,
                    "style": _heat(fraction, i == j),
                }
            )
        rows.append({"label": labels[i] if i < len(labels) else str(i), "cells": cells, "total": sum(counts)})
    return rows


def _report(project, version: ModelVersion) -> dict:
    metrics = version.metrics or {}
    per_class = []
    colours = dict(project.labels.values_list("name", "colour"))
    for name, row in (metrics.get("per_class") or {}).items():
        per_class.append(
            {
                "label": name,
                "colour": colours.get(name, "#6b7280"),
                "precision": _pct(row.get("precision")),
                "recall": _pct(row.get("recall")),
                "f1": row.get("f1"),
                "support": row.get("support"),
            }
        )
    found = findings(project, version, limit=REPORT_FINDINGS)
    supports = [row["support"] for row in per_class if row["support"]]
    return {
        "accuracy": _pct(metrics.get("accuracy")),
        "balanced": _pct(metrics.get("balanced_accuracy")),
        "imbalanced": len(supports) > 1 and max(supports) >= 1.5 * min(supports),
        "top_k": _top_k(metrics.get("top_k_accuracy")),
        "n_val": metrics.get("n_val"),
        "n_train": metrics.get("n_train"),
        "evaluation": metrics.get("evaluation", ""),
        "strategy": metrics.get("strategy") or version.strategy,
        "strategy_reason": _reason(metrics.get("strategy") or "", metrics.get("strategy_reason", "")),
        "strategy_help": STRATEGY_HELP.get(metrics.get("strategy") or version.strategy, ""),
        "per_class": per_class,
        "matrix": _matrix(metrics),
        "matrix_labels": metrics.get("labels") or [],
        "mislabeled": found["mislabeled"],
        "duplicates": found["duplicates"],
        "outliers": found["outliers"],
        # Calibration errors are a few points: one decimal says more than a rounded 3.
        "ece": None if metrics.get("ece") is None else round(float(metrics["ece"]) * 100, 1),
        "leakage": len(metrics.get("leakage") or []),
        "skipped": metrics.get("skipped") or [],
        "promotion": metrics.get("promotion") or {},
    }


@login_required
@require_GET
def version_detail(request, project_id: int, number: int):
    project = get_project_for_user(request.user, project_id)
    version = _version(project, number)
    context = {
        "project": project,
        "version": version,
        "is_serving": project.serving_version_id == version.pk,
        "can_edit": project.can_edit(request.user),
        "report": _report(project, version),
        "labels": list(project.labels.all()),
    }
    if "true" in request.GET and "pred" in request.GET:
        context["cell"] = _cell_context(project, version, request.GET)
    return render(request, "training/version.html", context)


def _evaluated_images(project, version: ModelVersion) -> tuple[list[Image], bool]:
    """The images the version was scored on, and whether they are its held-out test images."""
    images = list(project.images.filter(label__isnull=False).select_related("label").order_by("sha256"))
    held_out = evaluation_kind(version.metrics or {}) == EvaluationKind.FROZEN_TEST
    if held_out:
        images = [image for image in images if image.is_test]
    return images, held_out


def _prediction_key(version: ModelVersion, sha: str) -> str:
    return f"pinhole:prediction:{version.pk}:{version.artifact}:{sha}"


def predictions_for(version: ModelVersion, images: list[Image]) -> dict[str, tuple[str, float]]:
    """Predicted (label, probability) per image sha256, computed once per version and image."""
    from webui.serving.services import predictor_for

    keys = {image.sha256: _prediction_key(version, image.sha256) for image in images}
    cached = cache.get_many(list(keys.values()))
    result = {sha: tuple(cached[key]) for sha, key in keys.items() if key in cached}
    missing = [image for image in images if image.sha256 not in result]
    if missing:
        predictor = predictor_for(version)
        fresh = {}
        for start in range(0, len(missing), 32):
            batch = missing[start : start + 32]
            data = []
            for image in batch:
                with image.file.open("rb") as handle:
                    data.append(handle.read())
            for image, answer in zip(batch, predictor.predict(data, top_k=1), strict=True):
                value = (answer.label, float(answer.probability))
                result[image.sha256] = value
                fresh[keys[image.sha256]] = value
        cache.set_many(fresh, PREDICTION_CACHE_S)
    return result


def _stored_predictions(version: ModelVersion) -> dict[str, tuple[str, float]]:
    """What the evaluated model answered for each test image, as recorded at training time.

    The serving model has also learned from the test images, so asking it now would not reproduce the
    matrix; versions trained before these were recorded fall back to asking it.
    """
    rows = (version.metrics or {}).get("test_predictions") or []
    return {row["key"]: (row["predicted"], float(row["confidence"])) for row in rows}


def _cell_context(project, version: ModelVersion, query) -> dict:
    labels = (version.metrics or {}).get("labels") or version.labels
    try:
        true_i, pred_j = int(query.get("true")), int(query.get("pred"))
        true_label, predicted = labels[true_i], labels[pred_j]
    except (TypeError, ValueError, IndexError):
        raise Http404("No such cell.") from None
    images, held_out = _evaluated_images(project, version)
    images = [image for image in images if image.label.name == true_label]
    error, shown = "", []
    try:
        answers = _stored_predictions(version) if held_out else None
        if not answers:
            answers = predictions_for(version, images)
    except Exception as exc:  # a broken or missing artifact must not break the results page
        log.warning("could not predict the evaluated images of %s", version, exc_info=True)
        error = f"The model could not be run on these images ({type(exc).__name__}: {exc})."
    else:
        for image in images:
            label, probability = answers.get(image.sha256, (None, 0.0))
            if label == predicted:
                shown.append({"image": image, "confidence": _pct(probability)})
    return {
        "true_label": true_label,
        "predicted": predicted,
        "correct": true_label == predicted,
        "items": shown,
        "error": error,
        "held_out": held_out,
        "query": f"true={true_i}&pred={pred_j}",
    }


@login_required
@require_GET
def confusion_cell(request, project_id: int, number: int):
    project = get_project_for_user(request.user, project_id)
    version = _version(project, number)
    context = {
        "project": project,
        "version": version,
        "can_edit": project.can_edit(request.user),
        "labels": list(project.labels.all()),
        "cell": _cell_context(project, version, request.GET),
    }
    if not _is_htmx(request):
        url = reverse("training:version", args=[project.pk, version.number])
        return redirect(f"{url}?{context['cell']['query']}#cell")
    return render(request, "training/_cell.html", context)


@login_required
@require_POST
def relabel(request, project_id: int, image_id: int):
    """Fix one image's label from a results page; htmx swaps the image's card for the answer."""
    project = get_project_for_user(request.user, project_id, write=True)
    images = project.images.filter(pk=image_id)
    image = get_object_or_404(images.select_related("label"))
    label_id = request.POST.get("label", "")
    label = None
    if label_id:
        try:
            label = project.labels.get(pk=int(label_id))
        except (ValueError, project.labels.model.DoesNotExist):
            raise Http404("No such label.") from None
    set_label(images, label)
    image.refresh_from_db()
    name = label.name if label else "no label"
    if _is_htmx(request):
        return render(
            request,
            "training/_relabelled.html",
            {"project": project, "image": image, "label": label, "labels": list(project.labels.all())},
        )
    messages.success(request, f"Labelled {image} as {name}. Retrain to use it.")
    return redirect(_back_to(request, project))


@login_required
@require_POST
def delete_image(request, project_id: int, image_id: int):
    """Delete one image (a copy the audit found) from a results page; htmx swaps its card."""
    project = get_project_for_user(request.user, project_id, write=True)
    image = get_object_or_404(project.images.all(), pk=image_id)
    name = str(image)
    remove_image(image)
    if _is_htmx(request):
        return render(request, "training/_deleted.html", {"name": name, "image_id": image_id})
    messages.success(request, f"Deleted {name}. Retrain to leave it out of the model.")
    return redirect(_back_to(request, project))


# --- versions -------------------------------------------------------------------------------------


@login_required
@require_GET
def versions(request, project_id: int):
    project = get_project_for_user(request.user, project_id)
    rows = list(project.versions.select_related("run").order_by("-number"))
    for version in rows:
        metrics = version.metrics or {}
        version.acc_pct = _pct(metrics.get("accuracy"))
        version.bal_pct = _pct(metrics.get("balanced_accuracy"))
        version.n_images = (metrics.get("n_train") or 0) + (metrics.get("n_val") or 0) or None
    context = {
        "project": project,
        "versions": rows,
        "can_edit": project.can_edit(request.user),
        "can_rollback": project.serving_events.filter(action="promote").exists() and len(rows) > 1,
    }
    return render(request, "training/versions.html", context)


def _back_to(request, project) -> str:
    target = request.POST.get("next", "")
    prefix = f"/projects/{project.pk}/"
    return target if target.startswith(prefix) else reverse("training:versions", args=[project.pk])


@login_required
@require_POST
def promote(request, project_id: int, number: int):
    project = get_project_for_user(request.user, project_id, write=True)
    version = _version(project, number)
    try:
        version.promote(request.user)
    except ArtifactBroken as exc:
        messages.error(request, f"Not promoted: {exc}.")
    else:
        messages.success(request, f"v{version.number} now answers every prediction.")
    return redirect(_back_to(request, project))


@login_required
@require_POST
def rollback_view(request, project_id: int):
    project = get_project_for_user(request.user, project_id, write=True)
    try:
        target = rollback(project, request.user)
    except (ArtifactInUse, ArtifactBroken) as exc:
        messages.error(request, f"Nothing rolled back: {exc}.")
    else:
        messages.success(request, f"Rolled back: v{target.number} serves again.")
    return redirect(_back_to(request, project))


@login_required
@require_POST
def delete_version(request, project_id: int, number: int):
    from webui.serving.services import delete_version as delete

    project = get_project_for_user(request.user, project_id, write=True)
    version = _version(project, number)
    try:
        delete(version)
    except ArtifactInUse as exc:
        messages.error(request, f"Not deleted: {exc}.")
    else:
        messages.success(request, f"Deleted v{number}.")
    return redirect("training:versions", project_id=project.pk)


# --- comparison -----------------------------------------------------------------------------------

OVERALL = [("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy")]


def _delta(a, b) -> dict:
    if a is None or b is None:
        return {"a": _pct(a), "b": _pct(b), "delta": None}
    change = round((float(b) - float(a)) * 100, 1)
    return {"a": _pct(a), "b": _pct(b), "delta": change}


@login_required
@require_GET
def compare(request, project_id: int):
    project = get_project_for_user(request.user, project_id)
    all_versions = list(project.versions.order_by("-number"))
    a = b = None
    try:
        if request.GET.get("a"):
            a = _version(project, int(request.GET["a"]))
        if request.GET.get("b"):
            b = _version(project, int(request.GET["b"]))
    except ValueError:
        raise Http404("No such version.") from None
    if a is None and b is None and len(all_versions) >= 2:
        b, a = all_versions[0], all_versions[1]
    context = {"project": project, "all_versions": all_versions, "a": a, "b": b}
    if a is not None and b is not None:
        ma, mb = a.metrics or {}, b.metrics or {}
        ece = _delta(ma.get("ece"), mb.get("ece"))
        context["overall"] = [{"name": title, **_delta(ma.get(key), mb.get(key))} for key, title in OVERALL]
        ka, kb = _top_k(ma.get("top_k_accuracy")), _top_k(mb.get("top_k_accuracy"))
        if ka and kb and ka[0] == kb[0]:
            context["overall"].append({"name": f"Right label in the top {ka[0]}", **_delta(ka[1], kb[1])})
        context["ece"] = ece
        pa, pb = ma.get("per_class") or {}, mb.get("per_class") or {}
        names = list(pa) + [name for name in pb if name not in pa]
        context["per_label"] = [
            {
                "label": name,
                "only": ""
                if name in pa and name in pb
                else (f"v{a.number}" if name in pa else f"v{b.number}"),
                "precision": _delta(pa.get(name, {}).get("precision"), pb.get(name, {}).get("precision")),
                "recall": _delta(pa.get(name, {}).get("recall"), pb.get(name, {}).get("recall")),
                "f1": _delta(pa.get(name, {}).get("f1"), pb.get(name, {}).get("f1")),
            }
            for name in names
        ]
        context["sizes"] = {
            "a": (ma.get("n_train") or 0) + (ma.get("n_val") or 0),
            "b": (mb.get("n_train") or 0) + (mb.get("n_val") or 0),
        }
    return render(request, "training/compare.html", context)
