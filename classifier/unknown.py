"""The "none of these" detector: is a picture unlike everything the model learned from?

A classifier always answers with one of its labels, however strange the picture; this detector says
when that answer is a guess. It scores an image by its distance to the training images in feature space
and flags it above a threshold calibrated on the training images themselves, held out one at a time.
Importing this module never imports torch.
"""

from __future__ import annotations

import numpy as np

from .heads import SHRINK_PSEUDO_ROWS, l2_normalize

# 8M float32 similarities = 32 MB per block.
_BLOCK_ELEMENTS = 8_000_000
# Neighbour rank of the score, and the share of held-out training images that must score as known.
# Measured with efficientnet_lite0 on hymenoptera (references: the 245 training photos and their mirror
# images) against 140 generated pictures of none of its labels (flat colours, gradients, noise,
# drawings, text scans, checkerboards): k=10 at 0.95 flags 2.6 % of the 153 validation photos and 94 %
# of the others (AUROC 0.994). Centring without standardising, k=5 at 0.99, flagged 0.7 % and 48 %.
NEIGHBOUR_RANK = 10
KNOWN_QUANTILE = 0.95


def _shrunk_scale(centred: np.ndarray) -> np.ndarray:
    """Per-dimension spread, shrunk towards the average as heads.LinearHead does (a few dozen images
    give noisy variances), with a floor for dead channels."""
    n = len(centred)
    variance = centred.var(axis=0)
    variance = (n * variance + SHRINK_PSEUDO_ROWS * float(variance.mean())) / (n + SHRINK_PSEUDO_ROWS)
    std = np.sqrt(variance)
    return np.maximum(std, max(float(np.median(std)) * 1e-2, 1e-8))


def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(n_cols, 1))


class UnknownDetector:
    """Flags inputs unlike the training images, by cosine distance to their k-th nearest training image.

    Features are standardised per dimension on the training images before normalising: pooled CNN
    features are all positive, so raw cosine similarities crowd near 1, and a few high-variance channels
    would otherwise decide every distance (flat colours and noise then pass as familiar). The references are the training images
    and their augmented views (mirror images, when the model learned from those too): what the model
    treats as its kind. The threshold is the `quantile` of the training images' own scores, each computed
    with the image and its views held out, so about 1 - quantile of new images like the training data are
    flagged, whatever the backbone or the data set.

    Args:
        k: neighbour rank; the k-th rather than the nearest so a single near-duplicate does not hide an
            outlier (and one odd training image does not make its neighbourhood look familiar).
        quantile: share of held-out training images that must score as known.
        max_reference: most training rows kept as references (random subsample beyond that).
        random_state: seed of that subsample.
    """

    def __init__(
        self,
        k: int = NEIGHBOUR_RANK,
        quantile: float = KNOWN_QUANTILE,
        max_reference: int = 5000,
        random_state: int = 0,
    ):
        self.k = k
        self.quantile = quantile
        self.max_reference = max_reference
        self.random_state = random_state

    def embed(self, X) -> np.ndarray:
        """Args: X: features [N, D]. Returns: the rows as the detector compares them [N, d]: the last
        layer's features standardised on the training images, unit length (float32)."""
        return self._embed(X)

    def _embed(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        width = self.mean_.shape[0]
        if X.ndim != 2 or X.shape[1] < width:
            raise ValueError(f"expected features [N, {width}], got shape {X.shape}")
        # A served graph whose head also reads earlier blocks puts them after the last layer's features;
        # the detector reads the last layer's (earlier blocks' pooled outputs separate far worse here).
        return l2_normalize((X[:, :width] - self.mean_) / self.scale_).astype(np.float32)

    def _kth_similarity(self, U: np.ndarray, row_groups: np.ndarray | None = None) -> np.ndarray:
        """k-th largest similarity of each row to the references; with row_groups, references of the
        row's own group are left out (a held-out score)."""
        R = self.reference_
        k = self.k_
        out = np.empty(len(U), dtype=np.float64)
        step = _block_rows(len(R))
        for start in range(0, len(U), step):
            sims = U[start : start + step] @ R.T
            if row_groups is not None:
                sims[row_groups[start : start + step, None] == self.reference_groups_[None, :]] = -np.inf
            # k-th largest similarity per row without a full sort.
            out[start : start + step] = np.partition(sims, -k, axis=1)[:, -k]
        return out

    def fit(self, X_train, groups=None) -> UnknownDetector:
        """Keep (a sample of) the training features and set the threshold from them.

        Args:
            X_train: training features [N, D], N >= 2 images.
            groups: image id per row when X_train also holds augmented views (an image and its mirror
                image share an id); default one image per row. The threshold and train_scores_ count
                each image once, its first row.
        Returns:
            self, with mean_, reference_, k_, threshold_ and train_scores_ (each image's score with
            all its views held out, in the order of first rows) set.
        """
        X_all = np.asarray(X_train, dtype=np.float64)
        groups = np.arange(len(X_all)) if groups is None else np.asarray(groups)
        if X_all.ndim != 2 or len(np.unique(groups)) < 2 or len(groups) != len(X_all):
            raise ValueError("the unknown detector needs feature rows of at least 2 images, one group each")
        chosen = np.arange(len(X_all))
        if len(X_all) > self.max_reference:
            rng = np.random.default_rng(self.random_state)
            chosen = np.sort(rng.choice(len(X_all), self.max_reference, replace=False))
        X = X_all[chosen]
        self.mean_ = X.mean(axis=0)
        self.scale_ = _shrunk_scale(X - self.mean_)
        self.reference_ = l2_normalize((X - self.mean_) / self.scale_).astype(np.float32)
        self.reference_groups_ = groups[chosen]
        held_out = np.bincount(np.unique(self.reference_groups_, return_inverse=True)[1])
        # Holding an image out removes its views too: k must stay below what is left.
        self.k_ = int(max(1, min(self.k, len(X) - int(held_out.max()))))
        _, first = np.unique(groups, return_index=True)
        first = np.sort(first)
        self.train_scores_ = 1.0 - self._kth_similarity(self._embed(X_all[first]), groups[first])
        self.threshold_ = float(np.quantile(self.train_scores_, self.quantile))
        return self

    def score(self, X) -> np.ndarray:
        """Unusualness of each row: 1 - cosine similarity to its k-th nearest training image.

        Args:
            X: features [N, D].
        Returns:
            float array [N], in [0, 2]; higher is more unusual.
        """
        return 1.0 - self._kth_similarity(self._embed(X))

    def is_unknown(self, X) -> np.ndarray:
        """Whether each row scores above the training threshold.

        Args:
            X: features [N, D].
        Returns:
            bool array [N].
        """
        return self.unknown_at(self.score(X))

    def unknown_at(self, scores: np.ndarray) -> np.ndarray:
        """Args: scores: from `score`. Returns: bool array, whether each is above the training threshold
        (the one rule; a caller that shows the scores too need not compute them twice)."""
        return np.asarray(scores) > self.threshold_

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted detector as plain arrays (safetensors-ready).

        Returns:
            {"mean", "scale", "reference", "k", "threshold", "quantile"}.
        """
        return {
            "mean": np.ascontiguousarray(self.mean_, dtype=np.float64),
            "scale": np.ascontiguousarray(self.scale_, dtype=np.float64),
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
            # Versions made before the detector standardised its features only centred them.
            det.scale_ = np.asarray(d["scale"], dtype=np.float64) if "scale" in d else np.ones_like(det.mean_)
            det.reference_ = np.ascontiguousarray(d["reference"], dtype=np.float32)
            det.threshold_ = float(d["threshold"][0])
        except KeyError as exc:
            raise ValueError(f"detector arrays lack {exc.args[0]!r}") from exc
        det.k_ = det.k
        det.max_reference = max(det.max_reference, len(det.reference_))
        return det
