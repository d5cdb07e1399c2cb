"""Exports of a model version, made by a worker: ask for one, run it, read it back.

A worker copies the version locally, exports it with classifier.exporting (which checks the export's
answers on the version's own scored pictures before writing anything), zips the result and stores the
zip under the project's exports prefix; only then does the job say it succeeded and where the zip is.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.text import slugify

from classifier.errors import Cancelled, ClassifierError, ExportError
from classifier.exporting import FORMATS, UNAVAILABLE, export_version
from classifier.exporting.build import MAX_CHECK_PICTURES
from webui.jobs import lifecycle
from webui.jobs.models import LIVE_STATES, JobStatus
from webui.projects.models import Image
from webui.training import answers
from webui.training.artifacts import local_copy
from webui.training.models import ModelVersion, VersionExport

log = logging.getLogger(__name__)


class ExportRefused(Exception):
    """The export cannot be asked for (an unknown or unavailable format)."""


def formats() -> list[dict]:
    """Every format a person may ask for, with what it is for (for the pages and the API)."""
    return [
        {"format": f.name, "title": f.title, "note": f.note, "checked": f.checked} for f in FORMATS.values()
    ]


def start_export(version: ModelVersion, format_name: str, user=None) -> tuple[VersionExport, bool]:
    """Queue an export of `version` to `format_name`, or return the one already made or under way.

    Returns:
        (the export, whether it was created now).
    Raises:
        ExportRefused: an unknown format, or one Pinhole does not offer (the message says why).
    """
    if format_name not in FORMATS:
        raise ExportRefused(
            UNAVAILABLE.get(format_name) or f"unknown format {format_name!r}; use one of {', '.join(FORMATS)}"
        )
    with transaction.atomic():
        ModelVersion.objects.select_for_update().get(pk=version.pk)  # one request at a time per version
        existing = (
            VersionExport.objects.filter(version=version, format=format_name)
            .filter(status__in=[*LIVE_STATES, JobStatus.SUCCEEDED])
            .order_by("-created")
            .first()
        )
        if existing is not None:
            return existing, False
        job = VersionExport.objects.create(
            version=version,
            format=format_name,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            message="queued",
        )
        lifecycle.enqueue_on_commit(job)
    return job, True


def check_pictures(version: ModelVersion, scratch: Path) -> list[Path]:
    """The pictures an export's answers are compared on: the ones the version was scored on (held out,
    or answered out of fold), as many as are still there; empty: the engine's fixed sample photos.

    Args:
        scratch: where pictures in remote storage are copied to."""
    keys = list(answers.recorded(version))[:MAX_CHECK_PICTURES]
    if not keys:
        return []
    images = Image.objects.filter(project_id=version.project_id, sha256__in=keys)
    paths = []
    for image in images:
        try:
            paths.append(Path(image.file.path))
        except NotImplementedError:  # remote storage: a local copy for the check
            paths.append(_local_picture(image, scratch))
    return paths


def _local_picture(image: Image, scratch: Path) -> Path:
    target = scratch / f"check-{image.pk}"
    with target.open("wb") as out, image.file.open("rb") as source:
        shutil.copyfileobj(source, out)
    return target


def _zip(directory: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())


def open_export(job: VersionExport):
    """The stored zip of a finished export, opened for reading; None when there is none (yet)."""
    if job.status != JobStatus.SUCCEEDED or not job.file:
        return None
    try:
        return default_storage.open(job.file, "rb")
    except (FileNotFoundError, OSError):
        log.warning("the zip of %s is gone from storage", job)
        return None


def file_name(job: VersionExport) -> str:
    """What a download of the export is called: project-v3-tflite.zip."""
    project = slugify(job.version.project.name)[:40] or "model"
    return f"{project}-v{job.version.number}-{job.format}.zip"


def run_export(job_id: int) -> None:
    """Claim an export and make it.

    Raises:
        lifecycle.NotClaimable: another live worker is making it.
    """
    job = lifecycle.claim(VersionExport, job_id)
    if job is None:
        return
    job = VersionExport.objects.select_related("version__project").get(pk=job.pk)
    version = job.version
    work = Path(tempfile.mkdtemp(prefix=f"pinhole-export{job.pk}-"))
    try:
        with lifecycle.Heartbeat(job):
            lifecycle.report(job, 0.02, "copying the version")
            source = local_copy(version)
            pictures = check_pictures(version, work)
            result = export_version(
                source,
                job.format,
                work / job.format,
                check=pictures,
                version=f"{version.project.name} v{version.number}",
                progress=lambda fraction, message: lifecycle.report(job, 0.05 + 0.85 * fraction, message),
            )
            lifecycle.report(job, 0.92, "storing the zip")
            archive = work / "export.zip"
            _zip(result.directory, archive)
            key = f"projects/{version.project_id}/exports/v{version.number}-{job.format}-{job.pk}.zip"
            with archive.open("rb") as handle:
                stored = default_storage.save(key, File(handle, name=archive.name))
            size = archive.stat().st_size
    except Cancelled:
        lifecycle.finish(job, JobStatus.CANCELLED, message="cancelled")
        return
    except (ExportError, ClassifierError) as exc:
        lifecycle.finish(job, JobStatus.FAILED, error=str(exc), message="failed")
        return
    except Exception as exc:
        log.exception("export %s failed", job_id)
        lifecycle.finish(job, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}", message="failed")
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not lifecycle.finish(
        job, JobStatus.SUCCEEDED, message=result.parity.summary(), progress=1.0,
        file=stored, size=size, parity=result.parity.to_dict(),
    ):  # fmt: skip
        default_storage.delete(stored)  # cancelled meanwhile: nothing refers to the zip
