"""Workflows on a project's data: taking in uploads (validate, deduplicate, store) and labelling.

Views and the API call these; they never touch storage or the image decoder themselves.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image as PILImage

from classifier.errors import ImageError
from classifier.preprocessing import EXTENSIONS, stored_form
from classifier.strategies import MIN_PER_LABEL, USEFUL_PER_LABEL, can_adapt, imbalance
from classifier.strategies import MIN_PER_LABEL_PARTIAL as ADAPT_PER_LABEL
from webui.projects.models import Image, Label, Membership, Project
from webui.training.findings import findings, images_by_sha

log = logging.getLogger(__name__)


class UploadRejected(Exception):
    """One uploaded file cannot become an image; the message says why, for the person who sent it."""


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


def ingest_image(project: Project, user, uploaded, *, label: Label | None = None) -> Ingested:
    """Validate one uploaded file by its content and store it once per project.

    Args:
        project: where the image goes.
        user: who uploaded it (kept on the row).
        uploaded: a Django UploadedFile (or any file object with a name).
        label: optional label for a newly created image.

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
        data, info = stored_form(data)  # HEIC becomes JPEG here, before it is hashed and stored
    except ImageError as exc:
        raise UploadRejected(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    existing = Image.objects.filter(project=project, sha256=digest).first()
    if existing:
        return Ingested(existing, False)

    original = printable_name(getattr(uploaded, "name", "") or "")
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
        labeled_at=timezone.now() if label else None,
    )
    # The key's extension follows the decoded format, never the uploaded name.
    image.file.save(f"upload.{EXTENSIONS[info.format]}", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            image.save()
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


def delete_image(image: Image) -> None:
    """Remove the row, then its file once the deletion has committed."""
    name = image.file.name
    image.delete()
    transaction.on_commit(lambda: default_storage.delete(name))


def delete_project(project: Project) -> None:
    """Remove a project, its rows and, once that commits, its stored images and artifacts."""
    from webui.serving.services import evict

    version_ids = list(project.versions.values_list("pk", flat=True))
    files = list(project.images.values_list("file", flat=True))
    for version in project.versions.all():
        files.extend(version.artifact_files())
    files.extend(project.zip_imports.values_list("archive", flat=True))  # imports not finished yet
    with transaction.atomic():
        # The serving pointer PROTECTs its version; release it so the cascade can remove versions.
        Project.objects.filter(pk=project.pk).update(serving_version=None)
        project.delete()
        transaction.on_commit(lambda: _remove_files(files))
    for version_id in version_ids:
        evict(version_id)


def _remove_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("could not remove %s of a deleted project", name, exc_info=True)


# --- derivatives (what the browser is shown) -----------------------------------------------------

DERIVATIVES = {"thumb": 256, "full": 1600}


def derivative(image: Image, kind: str) -> bytes:
    """A freshly encoded JPEG of the image's decoded pixels, never the stored bytes
    (bytes hidden in a comment or an appended page never reach a browser).

    Cached on disk by content hash under PINHOLE_MODEL_CACHE/thumbs, so each image is decoded once.
    """
    from classifier.preprocessing import load_rgb

    box = DERIVATIVES[kind]
    path = Path(settings.PINHOLE_MODEL_CACHE) / "thumbs" / kind / image.sha256[:2] / f"{image.sha256}.jpg"
    try:
        return path.read_bytes()
    except OSError:
        pass
    with default_storage.open(image.file.name, "rb") as handle:
        data = handle.read()
    picture = load_rgb(data, target_size=box)
    picture.thumbnail((box, box), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=82 if kind == "thumb" else 88, optimize=True)
    encoded = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(encoded)
        os.replace(temporary, path)  # atomic: a concurrent reader sees the old state or the whole file
    except OSError:
        log.warning("could not cache the %s of image %s", kind, image.pk, exc_info=True)
    return encoded


# --- data health ----------------------------------------------------------------------------------

# Findings of each kind the overview lists (the serving version's results page lists them all).
HEALTH_FINDINGS = 6


def data_health(project: Project) -> dict:
    """What a person should know before training: per-label readiness, imbalance, engine findings."""
    from django.db.models import Count

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
    ready = sum(1 for r in rows if r["count"] >= MIN_PER_LABEL)
    ratio = imbalance(counts)
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
        "can_train": ready >= 2,
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


class MembershipError(Exception):
    """A membership change the owner asked for cannot be made; the message says why."""


def add_member(project: Project, username: str, role: str) -> Membership:
    """Share the project with an existing user (or change their role)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise MembershipError(f"there is no user called {username.strip()!r}; an admin can create one")
    if user.pk == project.owner_id:
        raise MembershipError("the owner already has every right")
    membership, _created = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def remove_member(project: Project, membership_id: int) -> str | None:
    """Remove one membership of this project.

    Returns:
        The removed member's user name, or None when the project has no such membership.
    """
    membership = Membership.objects.filter(project=project, pk=membership_id).select_related("user").first()
    if membership is None:
        return None
    membership.delete()
    return membership.user.get_username()
