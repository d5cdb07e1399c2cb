"""When a version answers: only when it is at least this sure, else "not sure".

A person sets the threshold on a version's results page (or over the API) while watching what it would
have done on the pictures the version was scored on (its recorded answers, webui/training/answers.py):
how many pictures it would answer (coverage), how often those answers are right, and each label's
precision and recall. Saving it changes how that version serves at once, without retraining, and is
recorded as a ServingEvent. The page's slider recomputes the same figures in the browser
(static/pinhole/threshold.js) from the rows `table` gives it; `at` is the reference it must agree with.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from webui.training.answers import recorded
from webui.training.models import ModelVersion, ServingEvent

# The most a threshold may be: at 1.0 nothing would ever be answered.
HIGHEST = 0.99


class BadThreshold(ValueError):
    """A threshold that is not a number between 0 and HIGHEST."""


@dataclass(frozen=True)
class Outcome:
    """What a version would have done on its scored pictures at one threshold."""

    threshold: float
    scored: int  # pictures with a recorded answer and label
    answered: int  # of those, how many at least `threshold` sure
    right: int  # of the answered, how many right
    per_label: dict[str, dict]  # label -> {precision, recall, answered, support}; None where undefined

    @property
    def coverage(self) -> float | None:
        return self.answered / self.scored if self.scored else None

    @property
    def accuracy(self) -> float | None:
        """Right answers among those given."""
        return self.right / self.answered if self.answered else None


def table(version: ModelVersion) -> list[dict]:
    """The recorded answers the figures come from: [{label, predicted, confidence}], labelled ones only."""
    return [
        {"label": a.label, "predicted": a.predicted, "confidence": round(a.confidence, 6)}
        for a in recorded(version).values()
        if a.label
    ]


def at(rows: list[dict], threshold: float | None) -> Outcome:
    """The figures at `threshold` (None: answer always), from `table` rows."""
    bar = threshold or 0.0
    answered = [r for r in rows if r["confidence"] >= bar]
    labels = sorted({r["label"] for r in rows} | {r["predicted"] for r in rows})
    per_label = {}
    for name in labels:
        support = sum(r["label"] == name for r in rows)
        said = [r for r in answered if r["predicted"] == name]
        hits = sum(r["label"] == name for r in said)
        per_label[name] = {
            "precision": hits / len(said) if said else None,
            "recall": hits / support if support else None,
            "answered": len(said),
            "support": support,
        }
    right = sum(r["label"] == r["predicted"] for r in answered)
    return Outcome(bar, len(rows), len(answered), right, per_label)


def parse(value) -> float | None:
    """A threshold from a form or JSON: a fraction, a percentage ("80", "80%") or empty/None (always
    answer).

    Raises:
        BadThreshold: anything else, or outside 0 to HIGHEST.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise BadThreshold("the threshold must be a number, such as 0.8 or 80 %")
    text = str(value).strip().rstrip("%").strip()
    try:
        number = float(text)
    except ValueError:
        raise BadThreshold(
            f"the threshold must be a number, such as 0.8 or 80 %, not {str(value)[:40]!r}"
        ) from None
    if number != number or number < 0:  # NaN or negative
        raise BadThreshold("the threshold must be between 0 and 99 %")
    if number > 1 or (isinstance(value, str) and value.strip().endswith("%")):
        number /= 100
    if number > HIGHEST:
        raise BadThreshold(
            f"the threshold must be at most {round(HIGHEST * 100)} %: at 100 % nothing is answered"
        )
    return round(number, 4) or None


def describe(threshold: float | None) -> str:
    return (
        "answer always" if threshold is None else f"answer only when at least {round(threshold * 100)} % sure"
    )


def set_threshold(version: ModelVersion, threshold: float | None, user=None) -> bool:
    """Make `version` answer only when at least `threshold` sure (None: always), and record it.

    Returns:
        False when it was set so already (nothing recorded).
    """
    return change(version, "answer_threshold", lambda _current: threshold, describe(threshold), user)


def change(version: ModelVersion, field: str, new_value, detail: str, user=None) -> bool:
    """Set one of the version's serving fields to `new_value(current value)` under a row lock, and
    record it as a "threshold" ServingEvent saying `detail`. Returns: False when nothing changed."""
    with transaction.atomic():
        current = (
            ModelVersion.objects.select_for_update().filter(pk=version.pk).values_list(field, flat=True)[0]
        )
        value = new_value(current)
        setattr(version, field, value)
        if current == value:
            return False
        ModelVersion.objects.filter(pk=version.pk).update(**{field: value})
        ServingEvent.objects.create(
            project_id=version.project_id,
            version=version,
            action="threshold",
            detail=detail[:200],
            user=user if getattr(user, "is_authenticated", False) else None,
        )
    return True


def is_sure(version: ModelVersion, probability: float) -> bool:
    """Whether an answer this sure is given as an answer, by the version's threshold."""
    return version.answer_threshold is None or probability >= version.answer_threshold
