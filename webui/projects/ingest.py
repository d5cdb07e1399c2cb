"""Taking in uploads: validate by content, deduplicate by hash, store; never trusting a file's name.

Views, the API and zip imports call these; they never touch storage or the image decoder themselves."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from classifier.errors import ImageError
from classifier.preprocessing import EXTENSIONS, stored_form
from webui.lib.decoding import check_pixels, slot
from webui.projects.models import Image, Label, Project


class UploadRejected(Exception):
    """One uploaded file cannot become an image; the message says why, for the person who sent it."""


@dataclass
@dataclass
class Ingested:
    image: Image
    created: bool  # False: the same bytes were already in the project


def read_limited(uploaded, limit_bytes: int) -> bytes:
    """The upload's bytes, refusing (without reading further) anything over the per-image limit."""
    size = getattr(uploaded, "size", None)
    if size is not None and size > limit_bytes:
        raise UploadRejected(_too_large(size, limit_bytes))
    uploaded.seek(0)
    data = uploaded.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise UploadRejected(_too_large(len(data), limit_bytes))
    return data


def read_image_upload(uploaded) -> bytes:
    """An uploaded image's bytes within PINHOLE_MAX_IMAGE_MB; UploadRejected when too large or empty."""
    data = read_limited(uploaded, int(settings.PINHOLE_MAX_IMAGE_MB * 1024 * 1024))
    if not data:
        raise UploadRejected("not an image: the file is empty")
    return data


def _too_large(size: int, limit: int) -> str:
    return f"too large: {size / 1e6:.1f} MB; images can be at most {limit / 1e6:.0f} MB"


def ingest_image(
    project: Project, user, uploaded, *, label: Label | None = None, labels: list[Label] | None = None
) -> Ingested:
    """Validate one uploaded file by its content and store it once per project.

    Args:
        project: where the image goes.
        user: who uploaded it (kept on the row).
        uploaded: a Django UploadedFile (or any file object with a name).
        label: optional label for a newly created image (in a multi-label project: its one label).
        labels: multi-label projects: the labels in the picture ([]: none of them); None leaves it
            unlabelled unless `label` is given.

    Returns:
        The image and whether it was created; a duplicate returns the existing row untouched.

    Raises:
        UploadRejected: empty, too large, not an image, incomplete, unsupported or too many pixels.
    """
    limit = int(settings.PINHOLE_MAX_IMAGE_MB * 1024 * 1024)
    data = read_limited(uploaded, limit)
    if not data:
        raise UploadRejected("the file is empty")
    try:
        pixels = check_pixels(data, settings.PINHOLE_UPLOAD_MAX_MEGAPIXELS, purpose="an upload")
        with slot(pixels):
            data, info = stored_form(data)  # HEIC becomes JPEG here, before it is hashed and stored
    except ImageError as exc:
        raise UploadRejected(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    existing = Image.objects.filter(project=project, sha256=digest).first()
    if existing:
        return Ingested(existing, False)

    original = printable_name(getattr(uploaded, "name", "") or "")
    if project.multi_label:
        if label is not None:
            labels = [*(labels or []), label]
        label = None
    labelled = label is not None or labels is not None
    image = Image(
        project=project,
        original_name=original,
        sha256=digest,
        width=info.width,
        height=info.height,
        format=info.format,
        size=len(data),
        uploaded_by=user if getattr(user, "is_authenticated", False) else None,
        label=label,
        labeled_at=timezone.now() if labelled else None,
    )
    # The key's extension follows the decoded format, never the uploaded name.
    image.file.save(f"upload.{EXTENSIONS[info.format]}", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            image.save()
            if labels:
                image.labels.set({label.pk for label in labels})  # "cat" and "Cat" are one label
    except IntegrityError:
        # The same bytes arrived in a concurrent request that committed first.
        default_storage.delete(image.file.name)
        return Ingested(Image.objects.get(project=project, sha256=digest), False)
    except Exception:
        default_storage.delete(image.file.name)
        raise
    return Ingested(image, True)


def printable_name(name: str) -> str:
    """Keep the uploaded name as text only: no control characters, bounded length."""
    cleaned = "".join(ch for ch in name if ch.isprintable())
    return cleaned[-255:]
