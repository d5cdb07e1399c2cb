"""Which unlabeled pictures to label next: the ones a label would teach the model most.

Two things make a picture worth a label. The model is unsure of it (uncertainty: the margin between
its two likeliest labels is small), and it is unlike what is labelled already (diversity: a label on
the tenth near-copy of a labelled picture teaches nothing). Picking by uncertainty alone fills a batch
with near-copies of one confusing picture; picking by distance alone (core-set) fills it with oddballs
no one else resembles. So each candidate is scored

    score = (½ + ½ uncertainty) × typicality × distance to the nearest labelled or already chosen picture

and the order is built greedily: take the best score, count that picture as labelled, score again.
Typicality (how dense the features are around a picture) keeps the first labels on pictures that stand
for many others, which is what matters most with few labels; before any model exists, uncertainty is
the same for all and the order is by typicality and spread alone. Uncertainty only tempers the score
(a sure picture keeps half its worth): a model trained on a few dozen labels is often sure and wrong,
and on hymenoptera this mix beat plain uncertainty at every mark (bench/active_learning.py).

Features are compared by cosine distance. Pure numpy; the greedy part costs one matrix-vector product
per chosen picture, so only the first `ranked` pictures are ordered this way and the rest follow by
uncertainty × typicality.
"""

from __future__ import annotations

import numpy as np

# Neighbours whose mean similarity measures how typical a picture is.
TYPICALITY_NEIGHBOURS = 10
# The least a picture's typicality counts for.
TYPICALITY_FLOOR = 0.05
# How many pictures the greedy part orders; the rest follow by score without the diversity term.
RANKED = 500
# Candidates compared pairwise at most (typicality); beyond it, typicality is measured on a sample.
MAX_PAIRWISE = 2000


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """Args: probabilities [N, K] (K ≥ 2). Returns: 1 − (p₁ − p₂) per row, in [0, 1]: 1 is a coin toss."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)
    return 1.0 - (p[:, -1] - p[:, -2])


def typicality(X: np.ndarray, neighbours: int = TYPICALITY_NEIGHBOURS, seed: int = 0) -> np.ndarray:
    """How typical each row is among all rows: its mean cosine similarity to its nearest neighbours,
    scaled to [TYPICALITY_FLOOR, 1] (the oddest picture of the set still counts for something).

    Args:
        X: unit-length features [N, D].
        neighbours: how many nearest neighbours count.
        seed: which rows stand for the rest when N exceeds MAX_PAIRWISE.
    """
    n = len(X)
    if n < 2:
        return np.ones(n)
    reference = X
    if n > MAX_PAIRWISE:
        reference = X[np.random.default_rng(seed).choice(n, MAX_PAIRWISE, replace=False)]
    k = min(neighbours, len(reference) - 1)
    similarity = X @ reference.T
    if reference is X:
        np.fill_diagonal(similarity, -np.inf)
    nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
    typical = nearest.mean(axis=1)
    low, high = float(typical.min()), float(typical.max())
    if high - low < 1e-9:
        return np.ones(n)
    # Scaled within the set: on hymenoptera, raw similarities (about 0.2 to 0.5 in the detector's
    # space) weighed too little against uncertainty, and "next" needed 64 labels instead of 48.
    return TYPICALITY_FLOOR + (1.0 - TYPICALITY_FLOOR) * (typical - low) / (high - low)


def order_to_label(
    features: np.ndarray,
    labelled: np.ndarray,
    unsure: np.ndarray | None = None,
    *,
    ranked: int = RANKED,
    seed: int = 0,
) -> np.ndarray:
    """The unlabeled rows in the order they are best labelled.

    Args:
        features: every picture's features [N, D], labelled and unlabeled.
        labelled: bool [N], True for pictures with a label.
        unsure: the current model's `uncertainty` per picture [N] (rows of labelled pictures are
            ignored), or None before any model exists.
        ranked: how many pictures the greedy, diversity-aware part orders.
        seed: sampling for typicality on very large sets.
    Returns:
        Row indices of the unlabeled pictures, best first (every unlabeled row exactly once).
    """
    X = _unit(features)
    labelled = np.asarray(labelled, dtype=bool)
    if X.shape[0] != labelled.shape[0]:
        raise ValueError("features and labelled must have one row per picture")
    candidates = np.flatnonzero(~labelled)
    if len(candidates) == 0:
        return candidates
    worth = typicality(X, seed=seed)[candidates]
    if unsure is not None:
        worth = worth * (0.5 + 0.5 * np.clip(np.asarray(unsure, dtype=np.float64)[candidates], 0.0, 1.0))
    # Cosine distance to the nearest labelled picture; with none yet, every candidate is equally far.
    spread = np.ones(len(candidates))
    if labelled.any():
        spread = 1.0 - (X[candidates] @ X[labelled].T).max(axis=1)
    spread = np.maximum(spread, 0.0)
    chosen: list[int] = []
    taken = np.zeros(len(candidates), dtype=bool)
    for _ in range(min(ranked, len(candidates))):
        score = np.where(taken, -np.inf, worth * np.maximum(spread, 1e-6))
        best = int(np.argmax(score))
        chosen.append(best)
        taken[best] = True
        spread = np.minimum(spread, np.maximum(1.0 - X[candidates] @ X[candidates[best]], 0.0))
    rest = np.flatnonzero(~taken)
    rest = rest[np.argsort(-worth[rest], kind="stable")]
    return candidates[np.concatenate([np.asarray(chosen, dtype=int), rest])]
