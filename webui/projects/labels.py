"""A project's labels: made by name (ignoring case), and set on many images at once."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from webui.projects.models import Image, Label, Project


def get_or_create_label(project: Project, name: str) -> Label:
    """The project's label with this name (ignoring case), created if missing."""
    name = name.strip()
    if not name:
        raise ValueError("a label needs a name")
    if len(name) > 100:
        raise ValueError("label names are at most 100 characters")
    label = project.labels.filter(name__iexact=name).first()
    if label:
        return label
    try:
        with transaction.atomic():
            return Label.objects.create(project=project, name=name)
    except IntegrityError:
        return project.labels.get(name__iexact=name)


def set_label(images, label: Label | None) -> int:
    """Label (or unlabel, with None) many images of one project at once; returns how many changed."""
    return images.update(label=label, labeled_at=timezone.now() if label else None)


# --- multi-label projects: each picture has a set of labels -------------------------------------


def set_labels(images, labels: list[Label]) -> int:
    """Give many pictures of a multi-label project exactly these labels (an empty list: none of them,
    which is an answer a person gave, unlike unlabelled). Returns: how many pictures."""
    ids = list(images.values_list("pk", flat=True))
    label_ids = sorted({label.pk for label in labels})  # "cat" and "Cat" are one label
    through = Image.labels.through
    with transaction.atomic():
        through.objects.filter(image_id__in=ids).delete()
        rows = [through(image_id=i, label_id=label_id) for i in ids for label_id in label_ids]
        # A concurrent change to the same pictures may have put a row back: one row per pair stays.
        through.objects.bulk_create(rows, ignore_conflicts=True)
        Image.objects.filter(pk__in=ids).update(labeled_at=timezone.now())
    return len(ids)


def toggle_label(images, label: Label, present: bool) -> int:
    """Add a label to many pictures (present=True) or take it off them, keeping their other labels.
    Each becomes labelled: a person looked at it. Returns: how many pictures."""
    ids = list(images.values_list("pk", flat=True))
    through = Image.labels.through
    with transaction.atomic():
        if present:
            have = set(
                through.objects.filter(image_id__in=ids, label=label).values_list("image_id", flat=True)
            )
            rows = [through(image_id=i, label_id=label.pk) for i in ids if i not in have]
            through.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent toggle added it too
        else:
            through.objects.filter(image_id__in=ids, label=label).delete()
        Image.objects.filter(pk__in=ids).update(labeled_at=timezone.now())
    return len(ids)


def clear_labels(images) -> int:
    """Make many pictures unlabelled again (in either kind of project). Returns: how many."""
    ids = list(images.values_list("pk", flat=True))
    with transaction.atomic():
        Image.labels.through.objects.filter(image_id__in=ids).delete()
        Image.objects.filter(pk__in=ids).update(label=None, labeled_at=None)
    return len(ids)
