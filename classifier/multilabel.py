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

import json
from collections.abc import Callable, Sequence
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

    def serving(self) -> SigmoidHead:
        """The heads folded into one affine map with a sigmoid per label: what a version serves."""
        return SigmoidHead.from_heads(self)


@dataclass
class SigmoidHead:
    """Every label's head as one layer: p = sigmoid(u @ W.T + b), u the unit-length features.

    Each LinearHead is a calibrated two-class softmax, and softmax over two logits is the sigmoid of
    their difference; so row j of W is the difference of head j's two rows, and the answers are exactly
    the heads' (to float rounding). It has the members the export step reads (as_affine, coef_,
    l2_normalize, predict_proba) and `activation`, which tells the graph to end in a Sigmoid.
    """

    labels: list[str]
    weight: np.ndarray  # [L, D]
    bias: np.ndarray  # [L]
    thresholds: np.ndarray  # [L]
    l2_normalize: bool = True
    activation = "sigmoid"

    @classmethod
    def from_heads(cls, heads: MultiLabelHeads) -> SigmoidHead:
        norms = {bool(head.l2_normalize) for head in heads.heads}
        if len(norms) != 1:
            raise ValueError("every label's head must normalise its features the same way")
        rows, biases = [], []
        for head in heads.heads:
            W, b = head.as_affine()
            rows.append(W[1] - W[0])
            biases.append(b[1] - b[0])
        return cls(
            list(heads.labels), np.stack(rows), np.asarray(biases), np.asarray(heads.thresholds), norms.pop()
        )

    @property
    def coef_(self) -> np.ndarray:
        return self.weight

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.labels)

    def as_affine(self) -> tuple[np.ndarray, np.ndarray]:
        return self.weight, self.bias

    def predict_proba(self, X) -> np.ndarray:
        """Returns: [N, L], each label's probability of being in the picture."""
        X = np.asarray(X, dtype=np.float64)
        if self.l2_normalize:
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        return 1.0 / (1.0 + np.exp(-(X @ self.weight.T + self.bias)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "sigmoid_weight": np.ascontiguousarray(self.weight, dtype=np.float64),
            "sigmoid_bias": np.ascontiguousarray(self.bias, dtype=np.float64),
            "thresholds": np.ascontiguousarray(self.thresholds, dtype=np.float64),
            "l2_normalize": np.array([int(bool(self.l2_normalize))], dtype=np.int8),
            "classes_json": np.frombuffer(json.dumps(self.labels).encode("utf-8"), dtype=np.uint8).copy(),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> SigmoidHead:
        try:
            labels = json.loads(bytes(np.asarray(d["classes_json"], dtype=np.uint8)).decode("utf-8"))
            head = cls(
                labels,
                np.asarray(d["sigmoid_weight"], dtype=np.float64),
                np.asarray(d["sigmoid_bias"], dtype=np.float64),
                np.asarray(d["thresholds"], dtype=np.float64),
                bool(int(d["l2_normalize"][0])),
            )
        except KeyError as exc:
            raise ValueError(f"multi-label head arrays lack {exc.args[0]!r}") from exc
        if head.weight.shape[0] != len(labels) or head.bias.shape != (len(labels),):
            raise ValueError("multi-label head arrays have inconsistent shapes")
        return head


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


def check_counts(Y, labels: Sequence[str]) -> None:
    """Raises: TrainingError naming the first label with too few pictures with it or without it."""
    Y = np.asarray(Y, dtype=bool)
    if len(labels) < 1:
        raise TrainingError("a multi-label model needs at least one label")
    for j, name in enumerate(labels):
        have = int(Y[:, j].sum())
        lack = len(Y) - have
        if have < MIN_PER_SIDE or lack < MIN_PER_SIDE:
            side = "with" if have < MIN_PER_SIDE else "without"
            raise TrainingError(
                f"each label needs at least {MIN_PER_SIDE} pictures with it and {MIN_PER_SIDE} without it; "
                f"{name!r} has {min(have, lack)} {side} it"
            )


def fit_multilabel(
    X,
    Y,
    labels: Sequence[str],
    *,
    seed: int = 0,
    C: float | None = None,
    on_progress: Callable[[float, str], None] | None = None,
) -> MultiLabelHeads:
    """A head per label.

    Args:
        X: features [N, D].
        Y: bool or 0/1 [N, L]: which labels each picture has (a row of zeros: none of them).
        labels: the L label names.
        seed: fold seed of each head's cross-validation.
        C: fixed regularisation; None searches it per label by cross-validation.
        on_progress: called with (fraction done, message) before each label's head.
    Raises:
        TrainingError: a label with fewer than MIN_PER_SIDE pictures with it, or without it.
    """
    X = np.asarray(X)
    Y = np.asarray(Y, dtype=bool)
    if Y.ndim != 2 or Y.shape != (len(X), len(labels)):
        raise ValueError(f"Y must be [N, {len(labels)}] for N={len(X)} pictures, got {Y.shape}")
    check_counts(Y, labels)
    heads, thresholds = [], []
    for j, name in enumerate(labels):
        if on_progress is not None:
            on_progress(j / len(labels), f"learning {name!r}")
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
        precision = float(hits / guess.sum()) if guess.any() else None
        recall = float(hits / truth.sum()) if truth.any() else None
        f1 = float(2 * hits / (guess.sum() + truth.sum())) if (guess.any() or truth.any()) else None
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
        "micro_f1": float(2 * hits / (said.sum() + Y_true.sum())) if (said.any() or Y_true.any()) else None,
        "exact_match": float(np.mean((said == Y_true).all(axis=1))),
    }


def out_of_fold(heads: MultiLabelHeads) -> np.ndarray | None:
    """Each training picture's probability per label from folds that never saw it [N, L] (the heads'
    own cross-validation at the chosen C), or None when a head was fitted without cross-validation."""
    columns = []
    for head in heads.heads:
        oof = getattr(head, "oof_decision_", None)
        if oof is None:
            return None
        columns.append(_softmax_positive(oof))
    return np.column_stack(columns)


def find_mislabeled(oof, Y, labels: Sequence[str]) -> list[dict]:
    """Likely wrong labels: per label, confident learning (audit.find_mislabeled) on the two-class
    question "is it in the picture?", so both a label wrongly given and one wrongly left out are found.

    Args:
        oof: out-of-fold probabilities [N, L]; Y: the given labels, bool [N, L]; labels: names.
    Returns:
        [{index, label, given ("present" or "absent"), probability (of being present)}], most
        suspicious first (largest margin against what was given).
    """
    from .audit import find_mislabeled as confident_learning

    oof = np.asarray(oof, dtype=np.float64)
    Y = np.asarray(Y, dtype=bool)
    found = []
    for j, name in enumerate(labels):
        two = np.column_stack([1.0 - oof[:, j], oof[:, j]])
        for item in confident_learning(two, Y[:, j].astype(int), ["absent", "present"]):
            found.append(
                {
                    "index": int(item["index"]),
                    "label": name,
                    "given": item["given"],
                    "probability": round(float(oof[item["index"], j]), 4),
                    "margin": float(item["confidence"] - item["given_probability"]),
                }
            )
    found.sort(key=lambda f: (-f["margin"], f["index"], f["label"]))
    for item in found:
        del item["margin"]
    return found
