"""Multi-label versions: each label's own threshold (present at or above it).

Training chooses each label's threshold where its out-of-fold F1 is best (classifier.multilabel); a
person may move any of them on the results page (or over the API) while watching that label's precision
and recall on the pictures the version was scored on; saving changes how the version serves at once,
without retraining, and is recorded as a ServingEvent. `at` is the reference the page's script must
agree with. An answer is "sure" when no label is within UNSURE_MARGIN of its threshold.
"""

from __future__ import annotations

from webui.training.models import ModelVersion
from webui.training.thresholds import BadThreshold, change, parse

# An answer with a label this close to its threshold (either side) is "not sure": it goes to review.
UNSURE_MARGIN = 0.15


def trained(version: ModelVersion) -> dict[str, float]:
    """Each label's threshold as training chose it."""
    chosen = (version.metrics or {}).get("thresholds") or {}
    return {name: float(chosen.get(name, 0.5)) for name in version.labels}


def effective(version: ModelVersion, trained_thresholds: dict[str, float]) -> dict[str, float]:
    """The thresholds the version serves with: the trained ones, with those a person set instead."""
    return {**trained_thresholds, **{k: float(v) for k, v in (version.label_thresholds or {}).items()}}


def table(version: ModelVersion) -> list[dict]:
    """The scored pictures the figures come from: [{labels: [...], probabilities: [...]}] (probabilities
    in version.labels order)."""
    metrics = version.metrics or {}
    rows = metrics.get("test_predictions") or metrics.get("oof_predictions") or []
    return [
        {"labels": list(row["labels"]), "probabilities": [float(p) for p in row["probabilities"]]}
        for row in rows
        if isinstance(row, dict) and "probabilities" in row
    ]


def at(rows: list[dict], labels: list[str], thresholds: dict[str, float]) -> dict[str, dict]:
    """Each label's figures at these thresholds: {label: {precision, recall, said, support}} (None where
    undefined)."""
    figures = {}
    for j, name in enumerate(labels):
        bar = thresholds[name]
        support = sum(name in row["labels"] for row in rows)
        said = [row for row in rows if row["probabilities"][j] >= bar]
        hits = sum(name in row["labels"] for row in said)
        figures[name] = {
            "threshold": bar,
            "precision": hits / len(said) if said else None,
            "recall": hits / support if support else None,
            "said": len(said),
            "support": support,
        }
    return figures


def parse_all(version: ModelVersion, values) -> dict[str, float | None]:
    """{label: threshold} from a form or JSON; None (or empty) puts a label back to its trained one.

    Raises:
        BadThreshold: not an object of the version's labels, or a value parse refuses.
    """
    if not isinstance(values, dict) or not values:
        raise BadThreshold('thresholds must be an object of label names and thresholds, e.g. {"cat": 0.7}')
    unknown = sorted(set(values) - set(version.labels))
    if unknown:
        raise BadThreshold(f"{unknown[0][:40]!r} is not one of this version's labels")
    return {name: parse(value) for name, value in values.items()}


def set_label_thresholds(version: ModelVersion, values: dict[str, float | None], user=None) -> bool:
    """Serve `version` with these labels' thresholds (None: the trained one again), and record it.

    Returns:
        False when they were set so already (nothing recorded).
    """

    def merged(current):
        new = {**(current or {}), **{k: v for k, v in values.items() if v is not None}}
        for name in [k for k, v in values.items() if v is None]:
            new.pop(name, None)
        return new

    said = ", ".join(
        f"{name} {'as trained' if value is None else f'at {round(value * 100)} %'}"
        for name, value in sorted(values.items())
    )
    return change(version, "label_thresholds", merged, f"labels present from: {said}", user)


def is_sure(labels: list[tuple[str, float, bool]], thresholds: dict[str, float]) -> bool:
    """Whether every label is clearly in or out: no probability within UNSURE_MARGIN of its threshold."""
    return all(abs(p - thresholds.get(name, 0.5)) >= UNSURE_MARGIN for name, p, _present in labels)


def uncertainty(labels: list[tuple[str, float, bool]], thresholds: dict[str, float]) -> float:
    """How unsure the answer is about its least clear label, in [0, 1]: 1 at a threshold, 0 at
    probability 0 or 1 (what "label next" weighs, as 1 - margin is for one label per picture)."""
    worst = 0.0
    for name, p, _present in labels:
        t = min(max(thresholds.get(name, 0.5), 1e-6), 1 - 1e-6)
        room = t if p < t else 1 - t
        worst = max(worst, 1 - abs(p - t) / room)
    return float(worst)
