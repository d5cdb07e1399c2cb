"""Metrics, splits and cross-validated evaluation of heads trained on cached features.

Everything here works from arrays (labels and probabilities), so the same numbers come out of the
CLI, the worker and the tests. Metric dicts contain only JSON-friendly types (floats, ints, lists,
dicts) so they can go straight into a model version's manifest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from .errors import TrainingError
from .heads import LinearHead, stratified_folds

ECE_BINS = 15


class EvaluationKind(StrEnum):
    """How a version's scores were measured; every kind scores images the scored model never saw."""

    VALIDATION_SET = "validation_set"  # a separate folder the caller held out
    FROZEN_TEST = "frozen_test"  # the caller's frozen test split (the site's, chosen by content hash)
    HOLDOUT = "holdout"  # a stratified 20 % holdout chosen here
    CROSS_VALIDATION = "cross_validation"  # out-of-fold answers, for sets too small to hold images out


def evaluation_kind(metrics: dict) -> EvaluationKind | None:
    """The evaluation kind of a version's metrics, also for versions written before it was recorded.

    Args:
        metrics: a version's metrics dict.
    Returns:
        the kind, or None when the metrics do not say.
    """
    kind = metrics.get("evaluation_kind")
    if kind:
        return EvaluationKind(kind)
    legacy = str(metrics.get("evaluation") or "")  # versions before format 2 said it in words only
    for prefix, found in (
        ("frozen test split", EvaluationKind.FROZEN_TEST),
        ("validation set", EvaluationKind.VALIDATION_SET),
        ("stratified holdout", EvaluationKind.HOLDOUT),
        ("cross-validation", EvaluationKind.CROSS_VALIDATION),
    ):
        if legacy.startswith(prefix):
            return found
    return None


def as_indices(y, labels: Sequence[str]) -> np.ndarray:
    """Args: y: labels as names or as indices into `labels`. Returns: int64 indices."""
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        if y.size and (y.min() < 0 or y.max() >= len(labels)):
            raise ValueError(f"class index out of range for {len(labels)} labels")
        return y.astype(np.int64)
    lookup = {str(name): i for i, name in enumerate(labels)}
    try:
        return np.array([lookup[str(v)] for v in y], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of {list(labels)}") from exc


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-1 confidence over equal-width bins.

    Args:
        y_true: true class indices [N].
        proba: probabilities [N, K].
        n_bins: number of equal-width confidence bins on [0, 1].
    Returns:
        sum over bins of |accuracy - mean confidence| weighted by the bin's share of samples.
    """
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    # Right-closed bins (0, 1/15], ..., so a confidence of exactly 1 lands in the last bin.
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def evaluate(y_true, proba, labels: Sequence[str], top_k: Sequence[int] | None = None) -> dict:
    """Classification metrics from true labels and predicted probabilities.

    Args:
        y_true: true labels [N], as names from `labels` or as indices into it.
        proba: predicted probabilities [N, K], columns in `labels` order.
        labels: class names in index order.
        top_k: the k values for top-k accuracy; default 1, 2, 3, 5 where k < K (and always 1).
    Returns:
        dict with accuracy, balanced_accuracy, per_class {label: {precision, recall, f1, support}},
        confusion_matrix (rows true, columns predicted), labels, top_k_accuracy {k: acc}, ece (15 bins),
        log_loss and n.
    """
    labels = [str(v) for v in labels]
    k = len(labels)
    proba = np.asarray(proba, dtype=np.float64)
    yt = as_indices(y_true, labels)
    if proba.ndim != 2 or proba.shape != (len(yt), k):
        raise ValueError(f"proba must have shape ({len(yt)}, {k}), got {proba.shape}")
    n = len(yt)
    if n == 0:
        raise ValueError("cannot evaluate on zero samples")
    pred = proba.argmax(axis=1)
    classes = np.arange(k)
    cm = confusion_matrix(yt, pred, labels=classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        yt, pred, labels=classes, zero_division=0.0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(labels)
    }
    if top_k is None:
        top_k = [t for t in (1, 2, 3, 5) if t == 1 or t < k]
    top_k_accuracy = {int(t): _top_k_accuracy(yt, pred, proba, int(t)) for t in top_k}
    with warnings.catch_warnings():
        # Labels predicted but absent from y_true are expected on small test splits; the score is
        # averaged over the labels present, as the page explains.
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(yt, pred)
    return {
        "n": int(n),
        "labels": labels,
        "accuracy": float(accuracy_score(yt, pred)),
        "balanced_accuracy": float(balanced),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "top_k_accuracy": top_k_accuracy,
        "ece": expected_calibration_error(yt, proba),
        "log_loss": float(log_loss(yt, proba, labels=classes)),
    }


def _top_k_accuracy(yt: np.ndarray, pred: np.ndarray, proba: np.ndarray, t: int) -> float:
    if t == 1:
        return float(accuracy_score(yt, pred))
    if t >= proba.shape[1]:
        return 1.0  # every label is among the top t
    return float(top_k_accuracy_score(yt, proba, k=t, labels=np.arange(proba.shape[1])))


def holdout_split(y, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of indices.

    Every class with at least 2 samples gets at least one test and one training sample; a class with a
    single sample stays in training.

    Args:
        y: labels [N] (any hashable values).
        test_fraction: share of each class held out.
        seed: shuffling seed.
    Returns:
        (train_idx, test_idx), sorted int arrays.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must lie strictly between 0 and 1")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    test = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        if len(members) < 2:
            continue
        rng.shuffle(members)
        n_test = int(np.clip(round(len(members) * test_fraction), 1, len(members) - 1))
        test.extend(members[:n_test].tolist())
    test_idx = np.sort(np.asarray(test, dtype=np.int64))
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask), test_idx


def kfold_evaluate(
    X,
    y,
    labels: Sequence[str],
    k: int = 5,
    seed: int = 0,
    *,
    make_head: Callable[[], LinearHead] | None = None,
    groups=None,
    on_progress: Callable[[float, str], None] | None = None,
) -> tuple[dict, np.ndarray]:
    """Stratified k-fold evaluation: every sample predicted by a head that never saw it.

    Each fold's head runs its own C search and calibration on its training part only (nested CV), so
    the numbers are honest for small sets where a holdout would be too noisy.

    Args:
        X: features [N, D].
        y: labels [N], names from `labels` or indices.
        labels: class names in index order.
        k: folds (reduced to the smallest class count).
        seed: fold assignment seed.
        make_head: builds an unfitted head per fold (default LinearHead(random_state=seed)).
        groups: optional group id per row (augmented copies of one image); a group stays in one fold.
        on_progress: called as on_progress(fraction, message) after each fold; may raise Cancelled.
    Returns:
        (metrics as from evaluate() plus "folds", out-of-fold probabilities [N, K] in `labels` order).
    """
    labels = [str(v) for v in labels]
    X = np.asarray(X)
    yi = as_indices(y, labels)
    if groups is not None:
        groups = np.asarray(groups)
        _, first = np.unique(groups, return_index=True)
        counts = np.bincount(yi[first], minlength=len(labels))
    else:
        counts = np.bincount(yi, minlength=len(labels))
    present = counts[counts > 0]
    folds = min(int(k), int(present.min()) if present.size else 0)
    if folds < 2 or present.size < 2:
        raise TrainingError("cross-validation needs at least 2 labels with at least 2 images each")
    make_head = make_head or (lambda: LinearHead(random_state=seed))
    oof = np.zeros((len(yi), len(labels)))
    for f, val_idx in enumerate(stratified_folds(yi, folds, seed, groups)):
        train_mask = np.ones(len(yi), dtype=bool)
        train_mask[val_idx] = False
        fold_groups = None if groups is None else groups[train_mask]
        head = make_head().fit(X[train_mask], yi[train_mask], groups=fold_groups)
        # The fold's head only knows the classes it saw; place its columns by class index.
        oof[np.ix_(val_idx, head.classes_.astype(np.int64))] = head.predict_proba(X[val_idx])
        if on_progress is not None:
            on_progress((f + 1) / folds, f"cross-validation: fold {f + 1} of {folds}")
    metrics = evaluate(yi, oof, labels)
    metrics["folds"] = folds
    return metrics, oof
