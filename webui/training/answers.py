"""What each version answered on the images it was scored on, as recorded when it was trained.

The engine keeps one answer per scored image in the version's metrics: `test_predictions` when the
version was scored on held-out images, `oof_predictions` when it was cross-validated (each image
answered by the fold's head that never saw it). The model that serves has since learned from all of
them, so asking it again would not reproduce the numbers; these records do. A confusion-matrix cell
lists exactly the images that make its count, two versions are compared image by image, and the
serving decision scores both on the test images they share, all from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from webui.projects.models import Image
from webui.training.models import ModelVersion

HELD_OUT = "test_predictions"
OUT_OF_FOLD = "oof_predictions"


@dataclass(frozen=True)
class Answer:
    key: str  # the image's sha256
    label: str  # what the image was labelled when the version was scored ("" where not recorded)
    predicted: str
    confidence: float


def _rows(version: ModelVersion, field: str) -> dict[str, Answer]:
    rows = (version.metrics or {}).get(field) or []
    return {
        row["key"]: Answer(row["key"], row.get("label", ""), row["predicted"], float(row["confidence"]))
        for row in rows
        if "predicted" in row  # multi-label versions record each label's probability instead
    }


def recorded(version: ModelVersion) -> dict[str, Answer]:
    """Every recorded answer by image key, held out or out-of-fold; empty for versions trained before
    answers were kept."""
    return _rows(version, HELD_OUT) or _rows(version, OUT_OF_FOLD)


def held_out(version: ModelVersion) -> dict[str, Answer]:
    """Answers on held-out test images only (what a serving decision may compare)."""
    return _rows(version, HELD_OUT)


def is_held_out(version: ModelVersion) -> bool:
    return bool((version.metrics or {}).get(HELD_OUT))


@dataclass
class Cell:
    """The images behind one confusion-matrix cell."""

    images: list[tuple[Image, float]]  # (image, confidence of the answer), as recorded
    gone: int  # answers whose image has been deleted since
    recorded: bool  # False: the version kept no answers, so the cell cannot be listed


def cell(version: ModelVersion, true_label: str, predicted: str) -> Cell:
    """The images labelled `true_label` at scoring time that the scored model answered `predicted`."""
    answers = recorded(version)
    if not answers:
        return Cell([], 0, recorded=False)
    wanted = {}
    for answer in answers.values():
        # Versions from before labels were recorded: the image's current label stands in.
        if answer.predicted == predicted and answer.label in (true_label, ""):
            wanted[answer.key] = answer
    images = list(
        Image.objects.filter(project_id=version.project_id, sha256__in=wanted)
        .select_related("label")
        .order_by("sha256")
    )
    present = {image.sha256 for image in images}
    found = [
        (image, wanted[image.sha256].confidence)
        for image in images
        if wanted[image.sha256].label or (image.label is not None and image.label.name == true_label)
    ]
    gone = sum(1 for key, answer in wanted.items() if answer.label and key not in present)
    return Cell(found, gone, recorded=True)


@dataclass
class Change:
    """One image both versions were scored on, answered differently."""

    image: Image
    before: Answer
    after: Answer

    @property
    def fixed(self) -> bool:
        """The newer answer is right and the older was not (by the image's label now)."""
        label = self.image.label.name if self.image.label else None
        return self.after.predicted == label and self.before.predicted != label

    @property
    def broken(self) -> bool:
        label = self.image.label.name if self.image.label else None
        return self.before.predicted == label and self.after.predicted != label


@dataclass
class Comparison:
    shared: int  # images both versions were scored on that are still in the project
    changes: list[Change]
    accuracy_a: float | None  # balanced accuracy of each on the shared images, by their labels now
    accuracy_b: float | None


def compare(a: ModelVersion, b: ModelVersion, *, only_held_out: bool = False) -> Comparison:
    """Both versions on the images they were both scored on: what changed, and each one's score there.

    The test split is frozen per image (chosen by content hash) but grows as images are added, so two
    versions' own scores can come from different sets; scoring both on the images they share, against
    the labels those images have now, compares like with like without running either model again.
    `only_held_out` leaves out-of-fold answers aside (a serving decision compares held-out ones only).
    """
    read = held_out if only_held_out else recorded
    answers_a, answers_b = read(a), read(b)
    keys = answers_a.keys() & answers_b.keys()
    images = (
        Image.objects.filter(project_id=a.project_id, sha256__in=keys, label__isnull=False)
        .select_related("label")
        .order_by("sha256")
    )
    truth, changes = {}, []
    for image in images:
        truth[image.sha256] = image.label.name
        before, after = answers_a[image.sha256], answers_b[image.sha256]
        if before.predicted != after.predicted:
            changes.append(Change(image, before, after))
    if not truth:
        return Comparison(0, [], None, None)
    return Comparison(
        len(truth), changes, balanced_accuracy(answers_a, truth), balanced_accuracy(answers_b, truth)
    )


def balanced_accuracy(answers: dict[str, Answer], truth: dict[str, str]) -> float:
    """Mean per-label recall of `answers` on the images in `truth` (key -> label now)."""
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for key, label in truth.items():
        totals[label] = totals.get(label, 0) + 1
        hits[label] = hits.get(label, 0) + (answers[key].predicted == label)
    return sum(hits[label] / totals[label] for label in totals) / len(totals)
