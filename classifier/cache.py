"""Where feature vectors live between runs, keyed by (backbone cache key, image sha256).

`FeatureCache` is the protocol; `MemoryCache` (tests, one-off runs) and `DirectoryCache` (.npy files,
the command line) implement it here, and the site's database table in webui/training/featurecache.py.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Protocol

import numpy as np


class FeatureCache(Protocol):
    """Where vectors live between runs, keyed by (backbone cache key, image sha256)."""

    def get_many(self, backbone_key: str, sha256s: list[str]) -> dict[str, np.ndarray]:
        """Returns: the vectors found, by sha256 (missing ones are simply absent)."""
        ...

    def put_many(self, backbone_key: str, vectors: dict[str, np.ndarray]) -> None:
        """Stores vectors by sha256."""
        ...


class MemoryCache:
    """A FeatureCache in a dict, for tests and one-off runs."""

    def __init__(self):
        self._data: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def get_many(self, backbone_key: str, sha256s: list[str]) -> dict[str, np.ndarray]:
        with self._lock:
            return {s: self._data[(backbone_key, s)] for s in sha256s if (backbone_key, s) in self._data}

    def put_many(self, backbone_key: str, vectors: dict[str, np.ndarray]) -> None:
        with self._lock:
            for sha, vec in vectors.items():
                self._data[(backbone_key, sha)] = np.asarray(vec, dtype=np.float32).copy()

    def __len__(self) -> int:
        return len(self._data)


_SAFE_NAME = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_.@+-]{0,199}")


def _safe(name: str, what: str) -> str:
    # Keys become path components: refuse anything that could climb out of the cache directory.
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"invalid {what} for a cache file name: {name!r}")
    return name


class DirectoryCache:
    """A FeatureCache of .npy files: <root>/<backbone key>/<sha[:2]>/<sha>.npy, each written atomically.

    Safe for several processes: a writer renames a finished temporary file into place, so a reader sees
    a whole vector or none; an unreadable file counts as missing and is extracted again.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, backbone_key: str, sha: str) -> Path:
        sha = _safe(sha, "sha256")
        return self.root / _safe(backbone_key, "backbone key") / sha[:2] / f"{sha}.npy"

    def get_many(self, backbone_key: str, sha256s: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for sha in sha256s:
            path = self._path(backbone_key, sha)
            try:
                found[sha] = np.load(path, allow_pickle=False)
            except FileNotFoundError:
                continue
            except (OSError, ValueError):  # half-written by a crashed older version, or corrupt disk
                continue
        return found

    def put_many(self, backbone_key: str, vectors: dict[str, np.ndarray]) -> None:
        for sha, vec in vectors.items():
            path = self._path(backbone_key, sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
            try:
                with os.fdopen(fd, "wb") as fp:
                    np.save(fp, np.asarray(vec, dtype=np.float32), allow_pickle=False)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
