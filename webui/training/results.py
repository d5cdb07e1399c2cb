"""Results pages: one version's scores and findings, the images behind a confusion-matrix cell, and
two versions compared image by image."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from classifier.strategies import imbalance
from webui.lib.numbers import percent
from webui.projects.access import get_project_for_user
from webui.projects.findings import findings
from webui.training import answers, label_thresholds, thresholds
from webui.training.export_views import exports_context
from webui.training.models import ModelVersion
from webui.training.views import STRATEGY_HELP, is_htmx, version_or_404

# Findings of each kind the results page lists (its counts cover them all).
REPORT_FINDINGS = 60


# --- one version ----------------------------------------------------------------------------------


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


def _shade(fraction: float) -> float:
    """How strongly a confusion cell is coloured (its colour and ink are in pages.css)."""
    return round(0.08 + 0.85 * fraction, 2) if fraction else 0.0


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
                    "shade": _shade(fraction),
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
                "precision": percent(row.get("precision")),
                "recall": percent(row.get("recall")),
                "f1": row.get("f1"),
                "support": row.get("support"),
            }
        )
    found = findings(project, version, limit=REPORT_FINDINGS)

    return {
        "accuracy": percent(metrics.get("accuracy")),
        "balanced": percent(metrics.get("balanced_accuracy")),
        "imbalanced": imbalance({row["label"]: row["support"] or 0 for row in per_class}) is not None,
        "top_k": _top_k(metrics.get("top_k_accuracy")),
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
        "threshold": _threshold(project, version),
        "daily": _daily(version),
        "multi_label": _multi_label(project, version) if metrics.get("task_type") == "multi_label" else None,
    }


def _multi_label(project, version: ModelVersion) -> dict:
    """A multi-label version's scores: mean average precision, and per label its average precision,
    and precision and recall at the threshold it serves with (the page's sliders recompute these from
    `rows` as label_thresholds.at does)."""
    metrics = version.metrics or {}
    colours = dict(project.labels.values_list("name", "colour"))
    trained = label_thresholds.trained(version)
    serving = label_thresholds.effective(version, trained)
    rows = label_thresholds.table(version)
    figures = label_thresholds.at(rows, list(version.labels), serving)
    scored = {row.get("label"): row for row in metrics.get("per_label") or [] if isinstance(row, dict)}
    labels = []
    for j, name in enumerate(version.labels):
        now = figures[name]
        labels.append(
            {
                "index": j,
                "name": name,
                "colour": colours.get(name, "#6b7280"),
                "average_precision": percent((scored.get(name) or {}).get("average_precision")),
                "support": now["support"],
                "precision": percent(now["precision"]),
                "recall": percent(now["recall"]),
                "threshold": percent(serving[name]),
                "trained": percent(trained[name]),
                "changed": name in (version.label_thresholds or {}),
            }
        )
    return {
        "map": percent(metrics.get("mean_average_precision")),
        "macro_f1": percent(metrics.get("macro_f1")),
        "exact": percent(metrics.get("exact_match")),
        "labels": labels,
        "rows": rows,
        "scored": len(rows),
    }


def _daily(version: ModelVersion) -> list[dict]:
    """The version's answers per day (serving.records.daily), with bar widths against the busiest day."""
    from webui.serving.records import daily

    days = daily(version)
    busiest = max((day["answers"] for day in days), default=0)
    return [{**day, "width": round(100 * day["answers"] / busiest) if busiest else 0} for day in days]


def _threshold(project, version: ModelVersion) -> dict | None:
    """The threshold section: the recorded answers for the slider, and the figures at the saved value."""
    if project.multi_label:
        return None
    rows = thresholds.table(version)
    if not rows:
        return None
    outcome = thresholds.at(rows, version.answer_threshold)
    colours = dict(project.labels.values_list("name", "colour"))
    return {
        "rows": rows,
        "outcome": outcome,
        "unsure": outcome.scored - outcome.answered,
        "value": percent(version.answer_threshold) or 0,
        "saved": thresholds.describe(version.answer_threshold),
        "labels": [
            {"name": name, "colour": colours.get(name, "#6b7280"), **figures}
            for name, figures in outcome.per_label.items()
        ],
    }


@login_required
@require_GET
def version_detail(request, project_id: int, number: int):
    project = get_project_for_user(request.user, project_id)
    version = version_or_404(project, number)
    context = {
        "project": project,
        "version": version,
        "is_serving": project.serving_version_id == version.pk,
        "can_edit": project.can_edit(request.user),
        "report": _report(project, version),
        "labels": list(project.labels.all()),
    }
    if "true" in request.GET and "pred" in request.GET:
        context["cell"] = _cell_context(version, request.GET)
    context.update(exports_context(project, version, request.user))
    return render(request, "training/version.html", context)


def _cell_context(version: ModelVersion, query) -> dict:
    labels = (version.metrics or {}).get("labels") or version.labels
    try:
        true_i, pred_j = int(query.get("true")), int(query.get("pred"))
        true_label, predicted = labels[true_i], labels[pred_j]
    except (TypeError, ValueError, IndexError):
        raise Http404("No such cell.") from None
    found = answers.cell(version, true_label, predicted)
    return {
        "true_label": true_label,
        "predicted": predicted,
        "correct": true_label == predicted,
        "items": [{"image": image, "confidence": percent(confidence)} for image, confidence in found.images],
        "gone": found.gone,
        "recorded": found.recorded,
        "cross_validated": version.cross_validated,
        "query": f"true={true_i}&pred={pred_j}",
    }


@login_required
@require_GET
def confusion_cell(request, project_id: int, number: int):
    project = get_project_for_user(request.user, project_id)
    version = version_or_404(project, number)
    context = {
        "project": project,
        "version": version,
        "can_edit": project.can_edit(request.user),
        "labels": list(project.labels.all()),
        "cell": _cell_context(version, request.GET),
    }
    if not is_htmx(request):
        url = reverse("training:version", args=[project.pk, version.number])
        return redirect(f"{url}?{context['cell']['query']}#cell")
    return render(request, "training/_cell.html", context)


# --- comparison -----------------------------------------------------------------------------------

OVERALL = [("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy")]
MULTI_LABEL_OVERALL = [
    ("mean_average_precision", "Mean average precision"),
    ("macro_f1", "F1, averaged over the labels"),
    ("exact_match", "Every label right"),
]


def _label_scores(metrics: dict) -> dict[str, dict]:
    """Precision and recall by label: a single-label version's per_class, a multi-label one's per_label."""
    if isinstance(metrics.get("per_label"), list):
        return {row["label"]: row for row in metrics["per_label"] if isinstance(row, dict) and "label" in row}
    return metrics.get("per_class") or {}


def _delta(a, b) -> dict:
    """Two fractions as the whole percents the page shows, and the change between those (so the three
    numbers on a row always add up)."""
    pa, pb = percent(a), percent(b)
    return {"a": pa, "b": pb, "delta": None if pa is None or pb is None else pb - pa}


def _pair(project, query) -> tuple[ModelVersion | None, ModelVersion | None]:
    """The two versions to compare. Given one (say from its results page), the other is the version
    before it (or after it, for the first); given none, the newest two."""
    numbers = list(project.versions.order_by("-number").values_list("number", flat=True))
    try:
        a = int(query["a"]) if query.get("a") else None
        b = int(query["b"]) if query.get("b") else None
    except ValueError:
        raise Http404("No such version.") from None
    if a is None and b is None:
        b, a = (numbers + [None, None])[:2]
    elif a is None or b is None:
        given = a if a is not None else b
        older = [n for n in numbers if n < given]
        newer = [n for n in numbers if n > given]
        other = older[0] if older else (newer[-1] if newer else None)
        # The older of the two is "from", the newer "to".
        a, b = (other, given) if other is None or other < given else (given, other)
    return (
        None if a is None else version_or_404(project, a),
        None if b is None else version_or_404(project, b),
    )


def _changes(comparison: answers.Comparison) -> list[dict]:
    rows = []
    for change in comparison.changes:
        rows.append(
            {
                "image": change.image,
                "before": change.before.predicted,
                "before_pct": percent(change.before.confidence),
                "after": change.after.predicted,
                "after_pct": percent(change.after.confidence),
                "verdict": "fixed" if change.fixed else ("broken" if change.broken else "changed"),
            }
        )
    order = {"broken": 0, "fixed": 1, "changed": 2}
    return sorted(rows, key=lambda row: order[row["verdict"]])


@login_required
@require_GET
def compare(request, project_id: int):
    project = get_project_for_user(request.user, project_id)
    all_versions = list(project.versions.defer("learned").order_by("-number"))
    a, b = _pair(project, request.GET)
    context = {"project": project, "all_versions": all_versions, "a": a, "b": b}
    if a is None or b is None:
        return render(request, "training/compare.html", context)
    if a.pk == b.pk:
        context["same"] = True
        return render(request, "training/compare.html", context)
    ma, mb = a.metrics or {}, b.metrics or {}
    overall = MULTI_LABEL_OVERALL if project.multi_label else OVERALL
    context["overall"] = [{"name": title, **_delta(ma.get(key), mb.get(key))} for key, title in overall]
    ka, kb = _top_k(ma.get("top_k_accuracy")), _top_k(mb.get("top_k_accuracy"))
    if ka and kb and ka[0] == kb[0]:
        context["overall"].append({"name": f"Right label in the top {ka[0]}", **_delta(ka[1], kb[1])})
    pa, pb = _label_scores(ma), _label_scores(mb)
    names = list(pa) + [name for name in pb if name not in pa]
    context["per_label"] = [
        {
            "label": name,
            "only": "" if name in pa and name in pb else (f"v{a.number}" if name in pa else f"v{b.number}"),
            "precision": _delta(pa.get(name, {}).get("precision"), pb.get(name, {}).get("precision")),
            "recall": _delta(pa.get(name, {}).get("recall"), pb.get(name, {}).get("recall")),
        }
        for name in names
    ]
    comparison = answers.compare(a, b)
    context["shared"] = {
        "count": comparison.shared,
        "a": percent(comparison.accuracy_a),
        "b": percent(comparison.accuracy_b),
        "recorded": bool(answers.recorded(a)) and bool(answers.recorded(b)),
    }
    context["changes"] = _changes(comparison)
    context["fixed"] = sum(1 for row in context["changes"] if row["verdict"] == "fixed")
    context["broken"] = sum(1 for row in context["changes"] if row["verdict"] == "broken")
    context["labels"] = list(project.labels.all())
    context["can_edit"] = project.can_edit(request.user)
    return render(request, "training/compare.html", context)
