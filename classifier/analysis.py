"""Data checks computed from features that are already cached: suspicious labels, duplicates, leakage,
and a detector for inputs unlike anything the model was trained on.

All similarity work is blockwise, so memory stays bounded (about `_BLOCK_ELEMENTS` floats at a time)
whatever the number of images. Importing this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .evaluation import _as_indices
from .heads import l2_normalize

# 8M float32 similarities = 32 MB per block.
_BLOCK_ELEMENTS = 8_000_000


def likely_mislabeled(oof_proba, y, labels: Sequence[str], *, threshold: float = 0.8) -> list[dict]:
    """Images whose out-of-fold prediction confidently disagrees with their given label.

    Out-of-fold probabilities come from a head that never saw the image (kfold_evaluate), so a confident
    disagreement is evidence against the label rather than memorisation.

    Args:
        oof_proba: out-of-fold probabilities [N, K], columns in `labels` order.
        y: given labels [N], names or indices.
        labels: class names in index order.
        threshold: minimum probability of the predicted (other) label.
    Returns:
        list of {index, given, predicted, confidence, given_probability}, most confident first.
    """
    labels = [str(v) for v in labels]
    proba = np.asarray(oof_proba, dtype=np.float64)
    yi = _as_indices(y, labels)
    pred = proba.argmax(axis=1)
    conf = proba[np.arange(len(yi)), pred]
    hits = np.flatnonzero((pred != yi) & (conf >= threshold))
    hits = hits[np.argsort(-conf[hits], kind="stable")]
    return [
        {
            "index": int(i),
            "given": labels[yi[i]],
            "predicted": labels[pred[i]],
            "confidence": float(conf[i]),
            "given_probability": float(proba[i, yi[i]]),
        }
        for i in hits
    ]


def _unit_rows(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D array [N, D], got shape {X.shape}")
    return l2_normalize(X).astype(np.float32)


def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(n_cols, 1))


def near_duplicates(X, *, threshold: float = 0.97, ids: Sequence | None = None) -> list[tuple]:
    """Pairs of images whose features are nearly identical (cosine similarity >= threshold).

    Args:
        X: features [N, D].
        threshold: cosine similarity from which a pair counts as a near-duplicate.
        ids: optional names for the rows; pairs then carry ids instead of row indices.
    Returns:
        list of (i, j, similarity) with i < j in row order, most similar first.
    """
    U = _unit_rows(X)
    n = len(U)
    if ids is not None and len(ids) != n:
        raise ValueError(f"{n} feature rows but {len(ids)} ids")
    pairs = []
    step = _block_rows(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        # Only columns after each row: every pair once, never a row with itself.
        sims = U[start:stop] @ U[start:].T
        rows, cols = np.nonzero(np.triu(sims, k=1) >= threshold)
        for r, c in zip(rows, cols, strict=True):
            pairs.append((start + int(r), start + int(c), float(sims[r, c])))
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    if ids is not None:
        pairs = [(ids[i], ids[j], s) for i, j, s in pairs]
    return pairs


def leakage(X_train, X_test, threshold: float = 0.97) -> list[tuple[int, int, float]]:
    """Test images that (nearly) duplicate a training image, which would inflate test metrics.

    Args:
        X_train: training features [N, D].
        X_test: test features [M, D].
        threshold: cosine similarity from which a pair counts.
    Returns:
        list of (i_train, j_test, similarity), most similar first.
    """
    A, B = _unit_rows(X_train), _unit_rows(X_test)
    pairs = []
    step = _block_rows(len(A))
    for start in range(0, len(B), step):
        sims = B[start : start + step] @ A.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows, cols, strict=True):
            pairs.append((int(c), start + int(r), float(sims[r, c])))
    pairs.sort(key=lambda p: (-p[2], p[1], p[0]))
    return pairs


class UnknownDetector:
    """Flags inputs unlike the training images, by cosine distance to their k-th nearest training image.

    Features are centred on the training mean before normalising: pooled CNN features are all positive,
    so raw cosine similarities crowd near 1 and separate poorly. The threshold is the `quantile` of the
    leave-one-out scores of the training images themselves, so about 1 - quantile of images like the
    training data are flagged, whatever the backbone or the data set.

    Args:
        k: neighbour rank; the k-th rather than the nearest so a single near-duplicate does not hide an
            outlier (and one odd training image does not make its neighbourhood look familiar).
        quantile: share of training images that must score as known.
        max_reference: most training rows kept as references (random subsample beyond that).
        random_state: seed of that subsample.
    """

    def __init__(self, k: int = 5, quantile: float = 0.99, max_reference: int = 5000, random_state: int = 0):
        self.k = k
        self.quantile = quantile
        self.max_reference = max_reference
        self.random_state = random_state

    def _embed(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"expected features [N, {self.mean_.shape[0]}], got shape {X.shape}")
        return l2_normalize(X - self.mean_).astype(np.float32)

    def _kth_similarity(self, U: np.ndarray, exclude_self: bool) -> np.ndarray:
        R = self.reference_
        k = self.k_
        out = np.empty(len(U), dtype=np.float64)
        step = _block_rows(len(R))
        for start in range(0, len(U), step):
            sims = U[start : start + step] @ R.T
            if exclude_self:
                rows = np.arange(sims.shape[0])
                sims[rows, start + rows] = -np.inf
            # k-th largest similarity per row without a full sort.
            out[start : start + step] = np.partition(sims, -k, axis=1)[:, -k]
        return out

    def fit(self, X_train) -> UnknownDetector:
        """Keep (a sample of) the training features and set the threshold from them.

        Args:
            X_train: training features [N, D], N >= 2.
        Returns:
            self, with mean_, reference_, k_, threshold_ set.
        """
        X = np.asarray(X_train, dtype=np.float64)
        if X.ndim != 2 or len(X) < 2:
            raise ValueError("the unknown detector needs at least 2 training feature rows")
        if len(X) > self.max_reference:
            rng = np.random.default_rng(self.random_state)
            X = X[np.sort(rng.choice(len(X), self.max_reference, replace=False))]
        self.mean_ = X.mean(axis=0)
        self.reference_ = l2_normalize(X - self.mean_).astype(np.float32)
        self.k_ = int(min(self.k, len(X) - 1))
        loo = 1.0 - self._kth_similarity(self.reference_, exclude_self=True)
        self.train_scores_ = loo
        self.threshold_ = float(np.quantile(loo, self.quantile))
        return self

    def score(self, X) -> np.ndarray:
        """Unusualness of each row: 1 - cosine similarity to its k-th nearest training image.

        Args:
            X: features [N, D].
        Returns:
            float array [N], in [0, 2]; higher is more unusual.
        """
        return 1.0 - self._kth_similarity(self._embed(X), exclude_self=False)

    def is_unknown(self, X) -> np.ndarray:
        """Whether each row scores above the training threshold.

        Args:
            X: features [N, D].
        Returns:
            bool array [N].
        """
        return self.score(X) > self.threshold_

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted detector as plain arrays (safetensors-ready).

        Returns:
            {"mean", "reference", "k", "threshold", "quantile"}.
        """
        return {
            "mean": np.ascontiguousarray(self.mean_, dtype=np.float64),
            "reference": np.ascontiguousarray(self.reference_, dtype=np.float32),
            "k": np.array([self.k_], dtype=np.int64),
            "threshold": np.array([self.threshold_], dtype=np.float64),
            "quantile": np.array([self.quantile], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> UnknownDetector:
        """Rebuild a fitted detector from `to_arrays` output.

        Args:
            d: the arrays (extra keys ignored).
        Returns:
            a fitted UnknownDetector.
        """
        try:
            det = cls(k=int(d["k"][0]), quantile=float(d["quantile"][0]))
            det.mean_ = np.asarray(d["mean"], dtype=np.float64)
            det.reference_ = np.ascontiguousarray(d["reference"], dtype=np.float32)
            det.threshold_ = float(d["threshold"][0])
        except KeyError as exc:
            raise ValueError(f"detector arrays lack {exc.args[0]!r}") from exc
        det.k_ = det.k
        det.max_reference = max(det.max_reference, len(det.reference_))
        return det
