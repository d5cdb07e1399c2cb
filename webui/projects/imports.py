"""Zip imports: the request checks and stores the archive, a worker imports its pictures.

The request refuses a bad archive at once from its central directory (`check_zip`: nothing is extracted
and nothing stored), then stores it and queues a `ZipImport`. The worker ingests the entries one by one
through the same `ingest_image` as a single upload (each decoded, deduplicated, stored), saving how far
it got as it goes: a worker that takes over a job whose worker died continues from there. The archive is
removed once the job has ended, whatever the outcome.
"""

from __future__ import annotations

import logging
import re
import stat
import time
import uuid
import zipfile
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from classifier.errors import Cancelled
from webui.jobs import lifecycle
from webui.jobs.models import JobStatus
from webui.projects import manifest
from webui.projects.export import EXTRA_FILES
from webui.projects.ingest import UploadRejected, ingest_image, printable_name
from webui.projects.labels import get_or_create_label
from webui.projects.models import Label, Project, ZipImport

log = logging.getLogger(__name__)

# The worker saves its position and counts after this many entries, or this many seconds.
SAVE_EVERY_ENTRIES = 25
SAVE_EVERY_SECONDS = 2.0

IGNORED_ZIP_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


class ZipRejected(Exception):
    """The archive as a whole is refused before anything in it is extracted; the message says why."""


@dataclass
class ZipEntry:
    info: zipfile.ZipInfo
    name: str  # the entry's file name, without folders
    label: str | None  # the first folder (after a shared wrapper folder), or None at the top


def zip_limits() -> dict[str, float]:
    """The caps a bulk import must stay under, from settings with defaults."""
    return {
        "max_zip_mb": float(settings.PINHOLE_ZIP_MAX_MB),
        "max_uncompressed_mb": float(getattr(settings, "PINHOLE_ZIP_MAX_UNCOMPRESSED_MB", 200)),
        "max_entries": int(getattr(settings, "PINHOLE_ZIP_MAX_ENTRIES", 2000)),
        "max_ratio": float(getattr(settings, "PINHOLE_ZIP_MAX_RATIO", 50)),
        "max_entry_mb": float(settings.PINHOLE_MAX_IMAGE_MB),
    }


def _unsafe_zip_path(name: str) -> bool:
    if not name or "\x00" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return any(part == ".." for part in re.split(r"[\\/]+", name))


def check_zip(archive: zipfile.ZipFile) -> list[ZipEntry]:
    """Validate an archive from its central directory alone, before a single byte is decompressed.

    Refuses the whole archive for: too many entries, an entry or a total over the size caps, a
    compression ratio only a zip bomb has, a path that escapes (`../`, absolute, drive letters), a
    symbolic link, or encryption.

    Returns:
        The image candidates, each with the label its folder gives it.
    """
    limits = zip_limits()
    infos = archive.infolist()
    if len(infos) > limits["max_entries"]:
        raise ZipRejected(
            f"the archive has {len(infos)} entries; at most {limits['max_entries']} are allowed"
        )
    max_entry = limits["max_entry_mb"] * 1024 * 1024
    max_total = limits["max_uncompressed_mb"] * 1024 * 1024
    total = 0
    candidates: list[tuple[zipfile.ZipInfo, list[str]]] = []
    for info in infos:
        shown = printable_name(info.filename)[:80]
        if _unsafe_zip_path(info.filename):
            raise ZipRejected(f"the archive contains an unsafe path ({shown!r}); nothing was imported")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ZipRejected(f"the archive contains a symbolic link ({shown!r}); nothing was imported")
        if info.flag_bits & 0x1:
            raise ZipRejected("the archive is encrypted; zip it again without a password")
        if info.is_dir():
            continue
        if info.file_size > max_entry:
            raise ZipRejected(
                f"{shown!r} would unpack to {info.file_size / 1e6:.0f} MB; "
                f"images can be at most {limits['max_entry_mb']:.0f} MB"
            )
        # Tiny entries may compress well for innocent reasons; only large ones can be bombs.
        if info.file_size > 1024 * 1024 and info.file_size > limits["max_ratio"] * max(info.compress_size, 1):
            raise ZipRejected(
                f"{shown!r} is compressed {info.file_size / max(info.compress_size, 1):.0f} times; "
                "photos do not compress like that (is it a zip bomb?)"
            )
        total += info.file_size
        if total > max_total:
            raise ZipRejected(
                f"the archive would unpack to more than {limits['max_uncompressed_mb']:.0f} MB; "
                "split it into smaller archives or upload the folders instead"
            )
        parts = [p for p in re.split(r"[\\/]+", info.filename) if p]
        if any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in IGNORED_ZIP_NAMES:
            continue
        if len(parts) == 1 and parts[0].lower() in EXTRA_FILES:  # a dataset export's manifest and README
            continue
        candidates.append((info, parts))
    # A zipped folder ("photos/ants/1.jpg", "photos/bees/2.jpg"): its name is a wrapper, not a label.
    tops = {tuple(parts[:1]) for _info, parts in candidates}
    if len(tops) == 1 and candidates and all(len(parts) >= 3 for _info, parts in candidates):
        candidates = [(info, parts[1:]) for info, parts in candidates]
    return [
        ZipEntry(info, parts[-1], parts[0].strip()[:100] if len(parts) >= 2 else None)
        for info, parts in candidates
    ]


def start_zip_import(project: Project, user, uploaded) -> ZipImport:
    """Check an uploaded archive, store it, and queue its import.

    Raises:
        ZipRejected: too large, not a zip, or refused by `check_zip`; nothing is stored then.
    """
    limit = zip_limits()["max_zip_mb"] * 1024 * 1024
    if (getattr(uploaded, "size", 0) or 0) > limit:
        raise ZipRejected(f"the archive is larger than {limit / 1024 / 1024:.0f} MB")
    try:
        uploaded.seek(0)
        with zipfile.ZipFile(uploaded) as archive:
            entries = check_zip(archive)
            skipped = sum(1 for info in archive.infolist() if not info.is_dir()) - len(entries)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ZipRejected("this is not a zip archive (or it is damaged)") from None
    if not entries:
        raise ZipRejected("the archive holds no pictures")
    uploaded.seek(0)
    name = default_storage.save(f"projects/{project.pk}/imports/{uuid.uuid4().hex}.zip", uploaded)
    try:
        with transaction.atomic():
            job = ZipImport.objects.create(
                project=project,
                archive=name,
                name=printable_name(getattr(uploaded, "name", "") or "archive.zip")[:255],
                size=getattr(uploaded, "size", 0) or 0,
                entries=len(entries),
                skipped=skipped,
                created_by=user if getattr(user, "is_authenticated", False) else None,
                message=f"waiting for a worker to import {len(entries)} pictures",
            )
            lifecycle.enqueue_on_commit(job)
    except BaseException:
        default_storage.delete(name)  # no row refers to it
        raise
    return job


def cancel_import(job: ZipImport) -> ZipImport:
    """Cancel a queued import at once (its archive goes), or ask a running one to stop; the pictures
    imported so far stay.

    Raises:
        InvalidTransition: the import has already ended.
    """
    job = lifecycle.cancel(job)
    if job.status == JobStatus.CANCELLED:
        _remove_archive(job.archive)
    return job


@dataclass
class _Position:
    """What the worker has done so far, saved to the job as it goes."""

    job: ZipImport
    saved_at: float = 0.0

    def save(self, *, force: bool = False) -> None:
        job = self.job
        if (
            not force
            and job.processed % SAVE_EVERY_ENTRIES
            and time.monotonic() - self.saved_at < SAVE_EVERY_SECONDS
        ):
            return
        ZipImport.objects.filter(pk=job.pk).update(
            processed=job.processed,
            created_count=job.created_count,
            created_unlabeled=job.created_unlabeled,
            duplicates=job.duplicates,
            rejected=job.rejected,
            labels=job.labels,
        )
        self.saved_at = time.monotonic()
        lifecycle.report(
            job, job.processed / max(job.entries, 1), f"{job.processed} of {job.entries} pictures"
        )


def run_zip_import(job_id: int) -> None:
    """Import a stored archive's pictures, continuing where an earlier attempt stopped.

    Raises:
        lifecycle.NotClaimable: another live worker is importing this archive.
    """
    job = lifecycle.claim(ZipImport, job_id)
    if job is None:
        return
    job = ZipImport.objects.select_related("project", "created_by").get(pk=job.pk)
    try:
        with lifecycle.Heartbeat(job):
            _import_entries(job)
    except Cancelled:
        lifecycle.finish(job, JobStatus.CANCELLED, message=f"cancelled; {_summary(job)}")
    except ZipRejected as exc:
        lifecycle.finish(job, JobStatus.FAILED, error=str(exc))
    except FileNotFoundError:
        lifecycle.finish(job, JobStatus.FAILED, error="the stored archive is gone; upload it again")
    except Exception as exc:
        log.exception("zip import %s failed", job.pk)
        lifecycle.finish(
            job, JobStatus.FAILED, error=f"internal error ({type(exc).__name__}); {_summary(job)}"
        )
    else:
        lifecycle.finish(job, JobStatus.SUCCEEDED, progress=1.0, message=_summary(job))
    finally:
        if ZipImport.objects.filter(
            pk=job.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
        ).exists():
            _remove_archive(job.archive)


def _summary(job: ZipImport) -> str:
    return (
        f"imported {job.created_count} of {job.entries} pictures "
        f"({job.duplicates} already in the project, {len(job.rejected)} refused)"
    )


def _remove_archive(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:
        log.warning("could not remove the imported archive %s", name, exc_info=True)


def _import_entries(job: ZipImport) -> None:
    position = _Position(job)
    max_entry = int(settings.PINHOLE_MAX_IMAGE_MB * 1024 * 1024)
    labels: dict[str, Label] = {}
    with default_storage.open(job.archive, "rb") as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, ValueError, EOFError):
            raise ZipRejected("this is not a zip archive (or it is damaged)") from None
        with archive:
            entries = check_zip(archive)  # again: trust nothing the request did
            listed = _manifest(job, archive)
            for entry in entries[job.processed :]:
                label = None
                if listed is not None and entry.info.filename in listed:
                    names = listed[entry.info.filename]
                    tags = [labels.get(n.lower()) or _label(job, labels, n) for n in names]
                    _import_one(job, archive, entry, None, max_entry, tags=tags)
                    job.processed += 1
                    position.save()
                    continue
                if entry.label:
                    if entry.label.lower() not in labels:
                        labels[entry.label.lower()] = get_or_create_label(job.project, entry.label)
                    label = labels[entry.label.lower()]
                    if label.name not in job.labels:
                        job.labels = sorted([*job.labels, label.name])
                _import_one(job, archive, entry, label, max_entry)
                job.processed += 1
                position.save()
    position.save(force=True)


def _manifest(job: ZipImport, archive: zipfile.ZipFile) -> dict[str, list[str]] | None:
    """A multi-label project's labels per file from the archive's manifest (manifest.py), if any; a
    manifest that cannot be read is reported and the folders give the labels instead."""
    if not job.project.multi_label:
        return None
    try:
        return manifest.read(archive)
    except (manifest.ManifestError, zipfile.BadZipFile, OSError, EOFError) as exc:
        job.rejected = [
            *job.rejected,
            {"name": "labels manifest", "error": f"{exc}; folders give the labels"},
        ]
        return None


def _label(job: ZipImport, labels: dict[str, Label], name: str) -> Label:
    labels[name.lower()] = label = get_or_create_label(job.project, name)
    if label.name not in job.labels:
        job.labels = sorted([*job.labels, label.name])
    return label


def _import_one(
    job: ZipImport, archive: zipfile.ZipFile, entry: ZipEntry, label, max_entry: int, *, tags=None
) -> None:
    shown = printable_name(entry.info.filename)
    try:
        with archive.open(entry.info) as handle:
            # The declared size was checked; never read past it even if the header lies.
            data = handle.read(max_entry + 1)
        upload = ContentFile(data, name=entry.name)
        ingested = ingest_image(job.project, job.created_by, upload, label=label, labels=tags)
    except UploadRejected as exc:
        job.rejected = [*job.rejected, {"name": shown, "error": str(exc)}]
        return
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
        job.rejected = [*job.rejected, {"name": shown, "error": f"damaged in the archive ({exc})"}]
        return
    if ingested.created:
        job.created_count += 1
        job.created_unlabeled += int(label is None and tags is None)
    else:
        job.duplicates += 1
