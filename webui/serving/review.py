"""The review queue: answers worth a person's look, and what a member does with each.

Answers the model was unsure of, photos unlike anything it learned (webui/serving/records.py) and
answers a share-page visitor said were wrong (`flag`) wait here. A member says what the photo shows
(`resolve`: the photo becomes a labelled image of the project, "accepted" when that is what the model
said, "labelled differently" otherwise) or discards it. A visitor's pick is only a hint shown to the
member; nothing a visitor sends is ever a label until a member says so.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from webui.projects.ingest import ingest_image
from webui.projects.labels import set_label, set_labels
from webui.serving.models import PredictionRecord
from webui.serving.records import Reason, Review, fingerprint, remove_photo, store_photo


class CannotReview(Exception):
    """The answer is not waiting for review, or has no photo to label, or the label is unknown."""


def queue(project):
    """The answers waiting for review, newest first."""
    return (
        PredictionRecord.objects.filter(project=project, review=Review.QUEUED)
        .exclude(photo="")
        .order_by("-created", "-id")
    )


def _waiting(row: PredictionRecord) -> PredictionRecord:
    row.refresh_from_db()
    if row.review != Review.QUEUED:
        raise CannotReview(f"this answer is {row.get_review_display()} already")
    return row


def _locked_with_photo(row: PredictionRecord) -> tuple[PredictionRecord, ContentFile]:
    """Inside a transaction: the row, locked and still waiting, and its kept photo as an upload."""
    row = _waiting(PredictionRecord.objects.select_for_update().get(pk=row.pk))
    if not row.photo:
        raise CannotReview("no photo was kept with this answer, so there is nothing to label")
    with default_storage.open(row.photo.name, "rb") as handle:
        return row, ContentFile(handle.read(), name=f"review-{row.pk}.jpg")


def resolve(row: PredictionRecord, label_name: str, user) -> PredictionRecord:
    """The photo shows `label_name`: it joins the project as an image with that label.

    Raises:
        CannotReview: not waiting, no photo, or no such label in the project.
    """
    label = row.project.labels.filter(name=label_name).first()
    if label is None:
        raise CannotReview(f"{label_name!r} is not a label of this project")
    with transaction.atomic():
        row, photo = _locked_with_photo(row)
        image = ingest_image(row.project, user, photo, label=label).image
        if image.label_id != label.pk:  # the same photo was in the project already: a member decides
            set_label(row.project.images.filter(pk=image.pk), label)
        row.image = image
        row.review = Review.ACCEPTED if label_name == row.label else Review.RELABELLED
        row.reviewed_by, row.reviewed_at = user, timezone.now()
        row.save(update_fields=["image", "review", "reviewed_by", "reviewed_at"])
    remove_photo(row)  # the image has its own copy now
    return row


def resolve_set(row: PredictionRecord, label_names: list[str], user) -> PredictionRecord:
    """Multi-label projects: the photo shows exactly these labels ([]: none of them); it joins the
    project with that set ("accepted" when it is what the model said).

    Raises:
        CannotReview: not waiting, no photo, or a name that is not a label of the project.
    """
    labels = list(row.project.labels.filter(name__in=label_names))
    if len(labels) != len(set(label_names)):
        raise CannotReview("one of those is not a label of this project")
    with transaction.atomic():
        row, photo = _locked_with_photo(row)
        image = ingest_image(row.project, user, photo).image
        set_labels(row.project.images.filter(pk=image.pk), labels)  # new or already there: a member decides
        image.refresh_from_db()
        said = {name for name in row.label.split(", ") if name}
        row.image = image
        row.review = Review.ACCEPTED if said == {label.name for label in labels} else Review.RELABELLED
        row.reviewed_by, row.reviewed_at = user, timezone.now()
        row.save(update_fields=["image", "review", "reviewed_by", "reviewed_at"])
    remove_photo(row)
    return row


def discard(row: PredictionRecord, user) -> PredictionRecord:
    """Not worth a label: the row stays (it counts in the charts), its photo goes."""
    with transaction.atomic():
        row = _waiting(PredictionRecord.objects.select_for_update().get(pk=row.pk))
        row.review = Review.DISCARDED
        row.reviewed_by, row.reviewed_at = user, timezone.now()
        row.save(update_fields=["review", "reviewed_by", "reviewed_at"])
    remove_photo(row)
    return row


def flag(row: PredictionRecord, label_name: str, data: bytes) -> PredictionRecord:
    """A share-page visitor says the answer was wrong and the photo shows `label_name`, sending the
    photo again (it is kept only now, because they chose to send it).

    Raises:
        CannotReview: another photo than the one answered, a label the version does not know, or an
            answer already reviewed.
    """
    if row.project.multi_label:
        raise CannotReview("corrections are taken only where each photo has one label")
    if fingerprint(data) != row.sha256:
        raise CannotReview("this is not the photo that was answered")
    known = [item.get("label") for item in row.top] + [row.label]
    if row.version is not None:
        known += list(row.version.labels)
    if label_name not in known:
        raise CannotReview(f"{label_name!r} is not one of this model's labels")
    with transaction.atomic():
        row = PredictionRecord.objects.select_for_update().get(pk=row.pk)
        if row.review not in (Review.NONE, Review.QUEUED):
            raise CannotReview("this answer has been reviewed already")
        if not row.photo and not store_photo(row, data):
            raise CannotReview("this photo cannot be kept")
        row.visitor_label = label_name
        row.reason = Reason.VISITOR
        row.review = Review.QUEUED
        row.save(update_fields=["photo", "visitor_label", "reason", "review"])
    return row
