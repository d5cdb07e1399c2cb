"""Every answer the site gives, kept per version; the photos worth a person's look kept for review.

`record` is called after each prediction from try-it, the API and share pages: one row with what the
model said, how sure it was and where the question came from. An answer goes to the review queue when
the model was not sure (below the version's threshold, or below REVIEW_BELOW where none is set) or
found the photo unlike anything it learned; its photo is kept only where the project keeps photos from
that source (members' by default, share visitors' only when the owners turn it on). Photos nobody
reviews are removed after the project's keep_photos_days (`forget_old_photos`, run when a photo is kept).
`daily` sums a version's answers per day for the drift chart.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Avg, Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from classifier.errors import ImageError
from classifier.preprocessing import EXTENSIONS, stored_form
from webui.serving.models import PredictionRecord

log = logging.getLogger(__name__)

# Below this probability an answer goes to review when its version has no threshold of its own.
REVIEW_BELOW = 0.6
# Most old photos removed per recorded answer (the rest go with the next ones).
FORGET_PER_CALL = 20

Source = PredictionRecord.Source
Reason = PredictionRecord.Reason
Review = PredictionRecord.Review


def reason_to_review(result: dict) -> str:
    """Why an answer should be looked at by a person ("" when it need not be)."""
    if result.get("unknown"):
        return Reason.UNKNOWN
    if "labels" in result:  # multi-label: a label close to its threshold
        return Reason.NONE if result["sure"] else Reason.UNSURE
    threshold = result.get("threshold")
    if not result.get("sure", True) or float(result["probability"]) < (threshold or REVIEW_BELOW):
        return Reason.UNSURE
    return Reason.NONE


def keeps_photos(project, source: str) -> bool:
    return project.keep_share_photos if source == Source.SHARE else project.keep_member_photos


def fingerprint(data: bytes) -> str:
    """The hash a record keeps of the bytes it answered (a visitor's "Not right?" must send the same)."""
    return hashlib.sha256(data).hexdigest()


def store_photo(record: PredictionRecord, data: bytes) -> bool:
    """Keep the photo with the record, in the form uploads are stored in (HEIC as JPEG)."""
    try:
        data, info = stored_form(data)
    except ImageError:  # it was answered, so it decodes; never lose the record over its photo
        log.warning("prediction %s: the photo could not be kept", record.pk, exc_info=True)
        return False
    record.photo.save(f"photo.{EXTENSIONS[info.format]}", ContentFile(data), save=False)
    return True


def _said(result: dict) -> str:
    """What the answer said: its label, or for a multi-label answer the labels present ("" for none)."""
    if "labels" in result:
        return ", ".join(row["label"] for row in result["labels"] if row["present"])[:100]
    return result["label"]


def record(project, result: dict, source: str, data: bytes | None = None) -> PredictionRecord | None:
    """Keep one answer `result` (serving.services.predict's) given to `source`; None if it failed.

    Recording never fails a prediction: a database or storage error is logged and the answer stands.
    """
    reason = reason_to_review(result)
    try:
        row = PredictionRecord(
            project=project,
            version_id=result["model_version_id"],
            version_number=result["model_version"],
            source=source,
            label=_said(result),
            probability=float(result["probability"]),
            unknown=bool(result.get("unknown")),
            sure=bool(result.get("sure", True)),
            top=result.get("top") or [],
            reason=reason,
            sha256=fingerprint(data) if data is not None else "",
        )
        # Only an answer whose photo is kept can be reviewed (a person labels the photo).
        if reason and data is not None and keeps_photos(project, source) and store_photo(row, data):
            row.review = Review.QUEUED
        row.save()
        if row.photo:  # only a recording that kept a photo sweeps old ones: most predictions skip it
            forget_old_photos(project)
        return row
    except Exception:
        log.exception("the answer for project %s could not be recorded", project.pk)
        return None


def remove_photo(row: PredictionRecord) -> None:
    if row.photo:
        name = row.photo.name
        PredictionRecord.objects.filter(pk=row.pk).update(photo="")
        row.photo = ""
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("could not remove the kept photo %s", name, exc_info=True)


def forget_old_photos(project) -> int:
    """Remove photos kept longer than the project's keep_photos_days; returns how many."""
    cutoff = timezone.now() - timedelta(days=project.keep_photos_days)
    old = PredictionRecord.objects.filter(project=project, created__lt=cutoff).exclude(photo="")
    rows = list(old[:FORGET_PER_CALL])
    for row in rows:
        remove_photo(row)
    return len(rows)


def daily(version, days: int = 30) -> list[dict]:
    """The version's answers per day over the last `days`, oldest first: {day, answers, confidence
    (mean probability), unknown (share answered "none of these"), unsure (share below its threshold)}."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        PredictionRecord.objects.filter(version=version, created__gte=since)
        .annotate(day=TruncDate("created"))
        .values("day")
        .annotate(
            answers=Count("id"),
            confidence=Avg("probability"),
            unknown=Count("id", filter=Q(unknown=True)),
            unsure=Count("id", filter=Q(sure=False)),
        )
        .order_by("day")
    )
    return [
        {
            "day": row["day"],
            "answers": row["answers"],
            "confidence": row["confidence"],
            "unknown": row["unknown"] / row["answers"],
            "unsure": row["unsure"] / row["answers"],
        }
        for row in rows
    ]
