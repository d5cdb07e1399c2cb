"""What a multi-label project's training reads of the site: pictures labelled with a set of labels
(possibly empty, "none of these"), whether they are enough, and how its versions compare.

services.py calls these where a project's task type matters; the engine side is
classifier.multilabel_train.
"""

from __future__ import annotations

from classifier.multilabel import MIN_PER_SIDE
from webui.lib.numbers import percent_text
from webui.projects.models import Image, Project
from webui.training.refusals import TrainingRefused


def training_set(project: Project) -> list[Image]:
    """Labelled pictures (a person gave their set of labels), in a stable order, labels prefetched."""
    return list(project.images.labelled().prefetch_related("labels").order_by("sha256"))


def names(image: Image) -> tuple[str, ...]:
    """The picture's labels by name, in the project's label order."""
    return tuple(label.name for label in image.labels.all())


def check_ready(project: Project, images: list[Image]) -> dict[str, int]:
    """Pictures with each label; raises TrainingRefused with exactly what is missing."""
    labels = [label.name for label in project.labels.all()]
    if not labels:
        raise TrainingRefused("a model needs labels: add the labels the pictures may have")
    have = dict.fromkeys(labels, 0)
    for image in images:
        for name in names(image):
            have[name] += 1
    short = [
        f"'{name}' has {n} with it" if n < MIN_PER_SIDE else f"'{name}' has {len(images) - n} without it"
        for name, n in have.items()
        if n < MIN_PER_SIDE or len(images) - n < MIN_PER_SIDE
    ]
    if short:
        raise TrainingRefused(
            f"each label needs at least {MIN_PER_SIDE} labelled pictures with it and {MIN_PER_SIDE} without it; "
            + ", ".join(short)
        )
    return have


def samples(images: list[Image], source_for) -> list:
    """Engine samples: each picture's set of labels, and its frozen split."""
    from classifier.data import Sample

    return [
        Sample(
            key=image.sha256,
            source=source_for(image.file.name),
            label="",
            split="test" if image.is_test else "train",
            labels=names(image),
        )
        for image in images
    ]


def compare(version, serving) -> tuple[bool, str]:
    """Whether `version` should replace `serving`: by mean average precision on held-out pictures."""
    new = version.metrics.get("mean_average_precision")
    old = serving.metrics.get("mean_average_precision")
    if new is None or old is None:
        return False, "no test score to compare; promote it by hand"
    text = f"mean average precision {percent_text(new)} vs {percent_text(old)} for v{serving.number}"
    if new >= old:
        return True, text
    return False, f"v{serving.number} scored better: {text}"
