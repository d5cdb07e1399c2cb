"""The model version format: one directory per version, written atomically and checked on every load.

Layout::

    manifest.json       format_version, created, backbone {name, weights_id, feature_dim}, preprocessing,
                        labels (index order), strategy, metrics, fingerprint, library_versions,
                        files {name: {sha256, size}}, extra, manifest_sha256
    head.safetensors    LinearHead.to_arrays() (+ "unknown."-prefixed UnknownDetector arrays)
    tail.safetensors    adapted backbone weights (partial / full only)
    model.onnx          backbone + head + softmax, written by the export

A version is built in a hidden temporary sibling directory, every file and the directory are fsynced,
and only then is it renamed into place, so a reader (or a crash) sees either no version or a whole one.
Importing this module never imports torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"
TAIL_FILE = "tail.safetensors"
ONNX_FILE = "model.onnx"
UNKNOWN_PREFIX = "unknown."
REQUIRED_KEYS = ("backbone", "labels")
_CHUNK = 1 << 20


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _canonical(manifest: Mapping) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default).encode("utf-8")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a version was made with (torch only if it is already imported).

    Returns:
        {python, numpy, onnxruntime, torch?, classifier}.
    """
    from . import __version__

    versions = {"python": platform.python_version(), "numpy": np.__version__, "classifier": __version__}
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    # Importing torch here would defeat the web process's promise never to load it.
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        versions["torch"] = torch.__version__
    else:
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions["torch"] = version("torch")
    return versions


def new_manifest(
    *,
    backbone: Mapping,
    labels: list[str],
    strategy: str,
    preprocessing: Mapping | None = None,
    metrics: Mapping | None = None,
    fingerprint: str = "",
    extra: Mapping | None = None,
    task_type: str = "single_label",
    thresholds: Mapping[str, float] | None = None,
) -> dict:
    """A manifest with every documented key; write_artifact adds files, hashes and versions.

    Args:
        backbone: {name, weights_id, feature_dim}.
        labels: class names in index order.
        strategy: "linear", "partial" or "full".
        preprocessing: the backbone's preprocessing config.
        metrics: evaluation results.
        fingerprint: the training run's data fingerprint.
        extra: free-form facts.
        task_type: "single_label" (probabilities sum to one) or "multi_label" (each label's own).
        thresholds: multi-label: each label's decision threshold (present at or above it).
    Returns:
        manifest dict.
    """
    return {
        "format_version": FORMAT_VERSION,
        "backbone": dict(backbone),
        "preprocessing": dict(preprocessing or {}),
        "labels": [str(v) for v in labels],
        "task_type": task_type,
        **({"thresholds": {str(k): float(v) for k, v in thresholds.items()}} if thresholds else {}),
        "strategy": strategy,
        "metrics": dict(metrics or {}),
        "fingerprint": fingerprint,
        "extra": dict(extra or {}),
    }


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes the entries (file names, the rename) durable; not supported everywhere.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _copy_file(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())


def _safetensors_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()})


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directory entries (Linux renameat2); False where the system lacks it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def write_artifact(
    out_dir: Path,
    *,
    manifest: dict,
    arrays: Mapping[str, np.ndarray] | None = None,
    files: Mapping[str, bytes | Path] | None = None,
    extra_arrays: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model version directory atomically.

    Args:
        out_dir: the version directory to create.
        manifest: manifest content (see new_manifest); format_version, created, library_versions, files
            and manifest_sha256 are filled in here.
        arrays: head arrays, written as head.safetensors (omitted when None or empty).
        files: other files by name, as bytes or as a path to copy (e.g. {"model.onnx": path}).
        extra_arrays: more safetensors files by name, e.g. {"tail.safetensors": state arrays}.
        overwrite: replace an existing out_dir (atomically where the OS can swap directories).
    Returns:
        out_dir.
    Raises:
        ArtifactError: out_dir exists and overwrite is False, a required manifest key is missing, a file
            name is unsafe, or writing failed (nothing half-written is left visible).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ArtifactError(f"model version {out_dir} already exists; versions are never overwritten")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ArtifactError(f"manifest lacks {', '.join(missing)}")

    payload: dict[str, bytes | Path] = {}
    if arrays:
        payload[HEAD_FILE] = _safetensors_bytes(arrays)
    for name, arrs in (extra_arrays or {}).items():
        payload[name] = _safetensors_bytes(arrs)
    for name, src in (files or {}).items():
        payload[name] = src
    for name in payload:
        if name == MANIFEST or "/" in name or "\\" in name or name.startswith(".") or not name:
            raise ArtifactError(f"{name!r} cannot be a file name inside a model version")

    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling on the same file system, so the final rename is atomic and listings skip it.
    tmp = parent / f".{out_dir.name}.tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        entries = {}
        for name, src in payload.items():
            path = tmp / name
            if isinstance(src, bytes | bytearray | memoryview):
                _write_bytes(path, bytes(src))
            else:
                _copy_file(Path(src), path)
            digest, size = _sha256_file(path)
            entries[name] = {"sha256": digest, "size": size}
        full = dict(manifest)
        full["format_version"] = FORMAT_VERSION
        full.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        full.setdefault("library_versions", library_versions())
        for key in ("preprocessing", "metrics", "extra"):
            full.setdefault(key, {})
        full.setdefault("strategy", "linear")
        full.setdefault("fingerprint", "")
        full["files"] = entries
        full["manifest_sha256"] = hashlib.sha256(_canonical(full)).hexdigest()
        text = json.dumps(full, indent=2, sort_keys=True, default=_json_default, allow_nan=False)
        _write_bytes(tmp / MANIFEST, text.encode("utf-8"))
        _fsync_dir(tmp)

        if out_dir.exists():
            if not _exchange(tmp, out_dir):
                # No atomic swap here: move the old one aside first; it is restored if the rename fails.
                aside = parent / f".{out_dir.name}.old-{secrets.token_hex(6)}"
                os.rename(out_dir, aside)
                try:
                    os.rename(tmp, out_dir)
                except OSError:
                    os.rename(aside, out_dir)
                    raise
                tmp = aside
            shutil.rmtree(tmp, ignore_errors=True)  # after a swap tmp holds the old version
        else:
            os.rename(tmp, out_dir)
        _fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ArtifactError | KeyboardInterrupt | SystemExit):
            raise
        if isinstance(exc, OSError | TypeError | ValueError):
            raise ArtifactError(f"could not write model version {out_dir}: {exc}") from exc
        raise
    return out_dir


def add_files(path: Path, files: Mapping[str, bytes | Path]) -> Path:
    """Add files (e.g. a model.onnx exported later) to a verified version, by rewriting it atomically.

    Args:
        path: an existing version directory.
        files: {name: bytes or path}; a name already present is replaced.
    Returns:
        path.
    Raises:
        ArtifactError: the version does not verify, or writing fails (the old version then stays).
    """
    path = Path(path)
    manifest = verify_artifact(path)
    merged: dict[str, bytes | Path] = {name: path / name for name in manifest["files"]}
    merged.update(files)
    keep = {k: v for k, v in manifest.items() if k not in ("files", "manifest_sha256")}
    return write_artifact(path, manifest=keep, files=merged, overwrite=True)


def read_manifest(path: Path) -> dict:
    """Parse a version's manifest.json (no hash checks; see verify_artifact).

    Args:
        path: the version directory.
    Returns:
        the manifest dict.
    Raises:
        ArtifactError: missing directory or manifest, or unparseable JSON.
    """
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"model version {path} does not exist")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(f"model version {path} has no {MANIFEST}; it is incomplete or not a model")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"{MANIFEST} of {path} cannot be parsed ({exc}); the artifact is corrupt"
        ) from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{MANIFEST} of {path} is not a JSON object; the artifact is corrupt")
    return manifest


def verify_artifact(path: Path) -> dict:
    """Check a version completely before anything uses it.

    Args:
        path: the version directory.
    Returns:
        the manifest dict.
    Raises:
        ArtifactError: missing directory or manifest, unparseable or edited manifest, unsupported
            format_version, a listed file missing, or a file whose size or sha256 does not match.
    """
    path = Path(path)
    manifest = read_manifest(path)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        hint = (
            " (made by a newer Pinhole; upgrade to load it)"
            if isinstance(version, int) and version > 1
            else ""
        )
        raise ArtifactError(
            f"model version {path} has format_version {version!r}{hint}; this build reads format_version "
            f"{FORMAT_VERSION}"
        )
    recorded = manifest.get("manifest_sha256")
    if recorded is not None and recorded != hashlib.sha256(_canonical(manifest)).hexdigest():
        raise ArtifactError(f"{MANIFEST} of {path} fails its checksum: the manifest was edited or corrupted")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{MANIFEST} of {path} has no file list; the artifact is corrupt")
    for key in REQUIRED_KEYS:
        if key not in manifest:
            raise ArtifactError(f"{MANIFEST} of {path} lacks {key!r}; the artifact is corrupt")
    for name, entry in files.items():
        fpath = path / name
        if Path(name).name != name or not isinstance(entry, dict):
            raise ArtifactError(f"{MANIFEST} of {path} lists an invalid file entry {name!r}")
        if not fpath.is_file():
            raise ArtifactError(f"{name} is missing from model version {path}")
        digest, size = _sha256_file(fpath)
        if size != entry.get("size") or digest != entry.get("sha256"):
            raise ArtifactError(f"{name} fails its checksum: the artifact was modified or truncated")
    return manifest


def load_arrays(path: Path, name: str = HEAD_FILE, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Read a safetensors file of a version after verifying the version.

    Args:
        path: the version directory.
        name: file name inside it.
        verify: check the whole version first (skip only when verify_artifact was just called).
    Returns:
        {name: numpy array}.
    Raises:
        ArtifactError: verification fails, the file is not listed, or it is not valid safetensors.
    """
    from safetensors.numpy import load

    path = Path(path)
    manifest = verify_artifact(path) if verify else read_manifest(path)
    if name not in manifest.get("files", {}):
        raise ArtifactError(f"model version {path} has no {name}")
    data = (path / name).read_bytes()
    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise ArtifactError(f"{name} in {path} is not a valid safetensors file: {exc}") from exc


def split_prefixed(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays whose names start with prefix, with the prefix removed.

    Args:
        arrays: e.g. the contents of head.safetensors.
        prefix: e.g. UNKNOWN_PREFIX.
    Returns:
        {name without prefix: array}.
    """
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def head_arrays(head, detector=None) -> dict[str, np.ndarray]:
    """The arrays for head.safetensors: head arrays, and detector arrays under UNKNOWN_PREFIX.

    Args:
        head: a fitted LinearHead.
        detector: an optional fitted UnknownDetector.
    Returns:
        {name: array}.
    """
    arrays = dict(head.to_arrays())
    if detector is not None:
        arrays.update({UNKNOWN_PREFIX + k: v for k, v in detector.to_arrays().items()})
    return arrays
