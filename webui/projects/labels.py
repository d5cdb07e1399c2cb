"""A project's labels: made by name (ignoring case), and set on many images at once."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from webui.projects.models import Label, Project


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
