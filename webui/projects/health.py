"""What a person should know about a project's data before training: per-label readiness, imbalance,
unreadable files and what the serving version's audit found, from the engine's own rules."""

from __future__ import annotations

from django.db.models import Count

from classifier.strategies import MIN_PER_LABEL, USEFUL_PER_LABEL, can_adapt, imbalance
from classifier.strategies import MIN_PER_LABEL_PARTIAL as ADAPT_PER_LABEL
from webui.projects.findings import findings, images_by_sha
from webui.projects.models import Project

HEALTH_FINDINGS = 6


def _multi_label_rows(project: Project) -> list[dict]:
    """Multi-label readiness: each label needs pictures with it and pictures without it."""
    from classifier.multilabel import MIN_PER_SIDE

    labelled = project.images.labelled().count()
    rows = []
    for label in project.labels.annotate(image_count=Count("tagged_images")):
        n, lack = label.image_count, labelled - label.image_count
        if n < MIN_PER_SIDE or lack < MIN_PER_SIDE:
            more = (
                f"{MIN_PER_SIDE - n} more with it"
                if n < MIN_PER_SIDE
                else f"{MIN_PER_SIDE - lack} more without it"
            )
            status, note = "bad", f"needs {more} to train"
        elif n < USEFUL_PER_LABEL:
            status, note = "warn", f"trains, but {USEFUL_PER_LABEL}+ with it make a useful model"
        else:
            status, note = (
                "ok",
                f"{USEFUL_PER_LABEL}+ images with it, {lack} without: enough for a useful model",
            )
        rows.append({"label": label, "count": n, "status": status, "note": note})
    return rows


def data_health(project: Project) -> dict:
    """What a person should know before training: per-label readiness, imbalance, engine findings."""
    if project.multi_label:
        return _health(
            project, _multi_label_rows(project), None, lambda rows: all(r["status"] != "bad" for r in rows)
        )
    labels = list(project.labels.annotate(image_count=Count("images")))
    counts = {label.name: label.image_count for label in labels}
    # The strategy rule itself decides "enough to adapt": the smallest label and the total both count.
    adaptable = can_adapt(counts)
    rows = []
    for label in labels:
        n = label.image_count
        if n < MIN_PER_LABEL:
            status, note = "bad", f"needs {MIN_PER_LABEL - n} more to train"
        elif n < USEFUL_PER_LABEL:
            status, note = "warn", f"trains, but {USEFUL_PER_LABEL}+ make a useful model"
        elif n < ADAPT_PER_LABEL or not adaptable:
            status, note = "ok", f"{USEFUL_PER_LABEL}+ images: enough for a useful model"
        else:
            status, note = "great", f"{ADAPT_PER_LABEL}+ images: enough for a GPU worker to adapt the network"
        rows.append({"label": label, "count": n, "status": status, "note": note})
    ratio = imbalance(counts)
    return _health(
        project, rows, ratio, lambda rows: sum(1 for r in rows if r["count"] >= MIN_PER_LABEL) >= 2
    )


def _health(project: Project, rows: list[dict], ratio: float | None, trainable) -> dict:
    ready = sum(1 for r in rows if r["status"] != "bad")
    biggest = max((r["count"] for r in rows), default=0)
    for row in rows:
        row["percent"] = round(100 * row["count"] / biggest) if biggest else 0

    version = project.serving_version
    latest = project.runs.order_by("-created").first()
    finished = project.runs.exclude(metrics={}).order_by("-created").first()
    skipped = ((finished.metrics if finished else {}) or {}).get("skipped") or []
    by_sha = images_by_sha(project, [s["key"] for s in skipped[:20]])
    failed = [
        {"image": by_sha.get(s["key"]), "key": s["key"], "error": s.get("error", "")} for s in skipped[:20]
    ]
    return {
        "rows": rows,
        "ready_labels": ready,
        "can_train": bool(rows) and trainable(rows),
        "imbalance": None if ratio is None else round(ratio, 1),
        # What the serving version's audit found, as its results page lists it, a few of each kind.
        "findings": findings(project, version, limit=HEALTH_FINDINGS),
        "failed": failed,
        "failed_count": len(skipped),
        "latest_run": latest,
        "serving_version": version,
        "min_per_label": MIN_PER_LABEL,
        "useful_per_label": USEFUL_PER_LABEL,
        "adapt_per_label": ADAPT_PER_LABEL,
    }
