"""The feature cache in the database, so a worker on any host reuses what another extracted.

Keyed by (backbone cache key, image sha256): the same bytes in two projects share one vector, and a
retrain after adding ten images extracts ten images.
"""

from __future__ import annotations

import numpy as np

from webui.training.models import FeatureVector

_CHUNK = 500  # bounded IN (...) lists; SQLite allows at most 32766 parameters


class DatabaseFeatureCache:
    """classifier.cache.FeatureCache backed by FeatureVector rows (float32 bytes)."""

    def get_many(self, backbone_key: str, sha256s: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(sha256s))
        for start in range(0, len(unique), _CHUNK):
            rows = FeatureVector.objects.filter(
                backbone_id=backbone_key, sha256__in=unique[start : start + _CHUNK]
            ).values_list("sha256", "vector")
            for sha, blob in rows:
                found[sha] = np.frombuffer(bytes(blob), dtype=np.float32).copy()
        return found

    def put_many(self, backbone_key: str, vectors: dict[str, np.ndarray]) -> None:
        rows = [
            FeatureVector(
                backbone_id=backbone_key, sha256=sha, vector=np.asarray(v, dtype=np.float32).tobytes()
            )
            for sha, v in vectors.items()
        ]
        # Two workers extracting the same image both try to insert; the second insert is a no-op.
        FeatureVector.objects.bulk_create(rows, batch_size=_CHUNK, ignore_conflicts=True)
