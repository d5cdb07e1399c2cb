"""Model version artifacts in Django storage: store, fetch a local copy, check, zip.

The engine (classifier.artifacts) reads and writes a version as a local directory. Here a version
lives in the project's storage (local files or S3) under one prefix, so any web process or worker on
any host can load it. The manifest is uploaded last and a ModelVersion row points at a prefix only
after every file is stored, so a failed upload never leaves a half-written version visible.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.utils.text import slugify

MANIFEST = "manifest.json"


class ArtifactBroken(Exception):
    """A stored artifact is missing, truncated or fails its checksums."""


def artifact_prefix(project_id: int, token: str) -> str:
    return f"projects/{project_id}/versions/{token}"


def store_artifact(local_dir: Path, prefix: str) -> int:
    """Upload a version directory; the manifest goes last. Returns the total size in bytes."""
    files = sorted(p for p in Path(local_dir).iterdir() if p.is_file())
    ordered = [p for p in files if p.name != MANIFEST] + [p for p in files if p.name == MANIFEST]
    total = 0
    for path in ordered:
        key = f"{prefix}/{path.name}"
        with path.open("rb") as handle:
            saved = default_storage.save(key, File(handle, name=path.name))
        if saved != key:
            # The storage renamed it because the key existed; a version prefix is never reused.
            raise ArtifactBroken(f"storage refused to write {key} (it already exists)")
        total += path.stat().st_size
    return total


def local_copy(version) -> Path:
    """A local directory with the version's files, for the engine to load.

    Local storage is read in place; remote storage is downloaded once into the model cache and
    renamed into place, so a concurrent reader never sees a partial copy.
    """
    if hasattr(default_storage, "path"):
        try:
            return Path(default_storage.path(version.artifact))
        except NotImplementedError:
            pass
    target = (
        Path(settings.PINHOLE_MODEL_CACHE)
        / "versions"
        / f"{version.project_id}-{version.pk}-{version.number}"
    )
    if (target / MANIFEST).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        for key in version.artifact_files():
            with default_storage.open(key, "rb") as src, (staging / Path(key).name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / MANIFEST).exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def check_artifact(version, local: Path | None = None) -> Path:
    """Verify a version's files against its manifest; raise ArtifactBroken with the reason.

    Args:
        local: a local directory with the same files (the one just uploaded), checked instead of the
            stored copy; default: the stored artifact (downloaded once where storage is remote).
    """
    from classifier.artifacts import verify_artifact
    from classifier.errors import ArtifactError

    path = Path(local) if local is not None else local_copy(version)
    if not (path / MANIFEST).exists():
        raise ArtifactBroken(f"v{version.number} has no manifest; its artifact is incomplete")
    try:
        verify_artifact(path)
    except ArtifactError as exc:
        raise ArtifactBroken(f"v{version.number} cannot serve: {exc}") from exc
    return path


def zip_artifact(version) -> bytes:
    """The version's manifest, weights and ONNX model as one zip, for download."""
    folder = f"{slugify(version.project.name)[:40] or 'model'}-v{version.number}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in version.artifact_files():
            with default_storage.open(key, "rb") as handle:
                archive.writestr(f"{folder}/{Path(key).name}", handle.read())
    return buffer.getvalue()
