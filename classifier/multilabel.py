"""Multi-label heads: for each label, is it in the picture? Several labels, or none, per picture.

One calibrated binary LinearHead per label on the same cached features (the strategies' features, so
the same steps serve both kinds of project), its C chosen by out-of-fold average precision. Each
label's threshold is chosen on out-of-fold
probabilities (the head's own cross-validation: each picture answered by a head that never saw it),
where F1 is best; a label without enough pictures on both sides to cross-validate keeps 0.5.
Importing this module never imports torch.

    heads = fit_multilabel(X, Y, ["cat", "dog", "car"])     # Y: bool [N, 3]
    heads.predict_proba(X_new)                              # [M, 3], each column on its own
    heads.predict(X_new)                                    # bool [M, 3]: at or above each threshold
    scores(Y_test, heads.predict_proba(X_test), heads.thresholds)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import TrainingError
from .heads import LinearHead

# The fewest pictures with and without a label for it to get a head.
MIN_PER_SIDE = 2
DEFAULT_THRESHOLD = 0.5


@dataclass
class MultiLabelHeads:
    labels: list[str]
    heads: list[LinearHead]
    thresholds: np.ndarray  # [L], each label's decision threshold on its probability

    def predict_proba(self, X) -> np.ndarray:
        """Returns: [N, L], each label's calibrated probability of being in the picture."""
        return np.column_stack([head.predict_proba(X)[:, 1] for head in self.heads])

    def predict(self, X) -> np.ndarray:
        """Returns: bool [N, L], the labels present (at or above their threshold)."""
        return self.predict_proba(X) >= self.thresholds[None, :]


def _softmax_positive(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, 1] / e.sum(axis=1)


def _average_precision(probabilities: np.ndarray, y: np.ndarray) -> float:
    """How well out-of-fold probabilities rank the pictures that have the label: what a multi-label
    head is judged by (its log loss preferred heavier regularisation, which ranked worse: see
    bench/README.md)."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y == 1, probabilities[:, 1]))


def best_f1_threshold(truth: np.ndarray, probability: np.ndarray) -> float:
    """The threshold on `probability` where F1 for `truth` is highest (midway between the two
    neighbouring probabilities, so a new picture scored like a boundary one is decided like it);
    DEFAULT_THRESHOLD when there is nothing to decide (no positives)."""
    truth = np.asarray(truth, dtype=bool)
    if not truth.any():
        return DEFAULT_THRESHOLD
    order = np.argsort(-probability, kind="stable")
    p, t = probability[order], truth[order]
    hits = np.cumsum(t)
    said = np.arange(1, len(p) + 1)
    f1 = 2 * hits / (said + truth.sum())
    # Only cut where the next probability differs (ties go together).
    cut = np.flatnonzero(np.append(p[1:] < p[:-1], True))
    best = cut[np.argmax(f1[cut])]
    below = p[best + 1] if best + 1 < len(p) else 0.0
    return float((p[best] + below) / 2)


def fit_multilabel(X, Y, labels: Sequence[str], *, seed: int = 0, C: float | None = None) -> MultiLabelHeads:
    """A head per label.

    Args:
        X: features [N, D].
        Y: bool or 0/1 [N, L]: which labels each picture has (a row of zeros: none of them).
        labels: the L label names.
        seed: fold seed of each head's cross-validation.
        C: fixed regularisation; None searches it per label by cross-validation.
    Raises:
        TrainingError: a label with fewer than MIN_PER_SIDE pictures with it, or without it.
    """
    X = np.asarray(X)
    Y = np.asarray(Y, dtype=bool)
    if Y.ndim != 2 or Y.shape != (len(X), len(labels)):
        raise ValueError(f"Y must be [N, {len(labels)}] for N={len(X)} pictures, got {Y.shape}")
    heads, thresholds = [], []
    for j, name in enumerate(labels):
        have = int(Y[:, j].sum())
        lack = len(Y) - have
        if have < MIN_PER_SIDE or lack < MIN_PER_SIDE:
            side = "with" if have < MIN_PER_SIDE else "without"
            raise TrainingError(
                f"each label needs at least {MIN_PER_SIDE} pictures with it and {MIN_PER_SIDE} without it; "
                f"{name!r} has {min(have, lack)} {side} it"
            )
        head = LinearHead(C=C, random_state=seed, c_score=_average_precision).fit(X, Y[:, j].astype(int))
        head.classes_ = np.array([f"not {name}", name])
        heads.append(head)
        oof = getattr(head, "oof_decision_", None)
        thresholds.append(
            best_f1_threshold(Y[:, j], _softmax_positive(oof)) if oof is not None else DEFAULT_THRESHOLD
        )
    return MultiLabelHeads(list(labels), heads, np.asarray(thresholds))


def scores(Y_true, probabilities, thresholds) -> dict:
    """Per-label precision, recall, F1 and average precision, and their means.

    Args:
        Y_true: bool [N, L]; probabilities: [N, L]; thresholds: [L].
    Returns:
        {"per_label": [{precision, recall, f1, average_precision, support}], "mean_average_precision",
        "macro_f1", "micro_f1", "exact_match"}; a label with no positives has no average precision and
        is left out of the mean.
    """
    from sklearn.metrics import average_precision_score

    Y_true = np.asarray(Y_true, dtype=bool)
    P = np.asarray(probabilities, dtype=np.float64)
    said = np.asarray(thresholds)[None, :] <= P
    per_label = []
    for j in range(Y_true.shape[1]):
        truth, guess = Y_true[:, j], said[:, j]
        hits = int((truth & guess).sum())
        precision = hits / guess.sum() if guess.any() else None
        recall = hits / truth.sum() if truth.any() else None
        f1 = 2 * hits / (guess.sum() + truth.sum()) if (guess.any() or truth.any()) else None
        ap = float(average_precision_score(truth, P[:, j])) if truth.any() else None
        per_label.append(
            {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "average_precision": ap,
                "support": int(truth.sum()),
            }
        )
    aps = [row["average_precision"] for row in per_label if row["average_precision"] is not None]
    f1s = [row["f1"] for row in per_label if row["f1"] is not None]
    hits = int((Y_true & said).sum())
    return {
        "per_label": per_label,
        "mean_average_precision": float(np.mean(aps)) if aps else None,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "micro_f1": 2 * hits / (said.sum() + Y_true.sum()) if (said.any() or Y_true.any()) else None,
        "exact_match": float(np.mean((said == Y_true).all(axis=1))),
    }
