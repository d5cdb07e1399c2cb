"""What every strategy returns (`TrainResult`), and the linear strategy: a head on cached features.

The partial and full strategies (finetune.py) end the same way, with a calibrated `LinearHead`, so
serving, export and analysis see one kind of head. Importing this module never imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .evaluation import as_indices
from .heads import LinearHead
from .strategies import check_counts

StepFn = Callable[[float, str], None]


@dataclass
class TrainResult:
    """What a training produced.

    Attributes:
        strategy: "linear", "partial" or "full".
        head: the fitted LinearHead; its classes_ are the label names, its columns in `labels` order.
        labels: class names in index order.
        metadata: JSON-friendly facts (C, cv_log_loss, cv_accuracy, temperature, fit_seconds, n_train, ...).
        state_dict: adapted backbone weights (tail for partial, whole net for full) as CPU tensors.
        features: the training features under the adapted weights [N, D] (None for linear: unchanged).
    """

    strategy: str
    head: LinearHead
    labels: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, Any] | None = None
    features: np.ndarray | None = None

    @property
    def C(self) -> float:
        return float(self.head.C_)

    @property
    def cv_score(self) -> float | None:
        return self.metadata.get("cv_log_loss")

    @property
    def fit_seconds(self) -> float:
        return float(self.metadata.get("fit_seconds", 0.0))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The adapted weights as numpy arrays for safetensors (empty for linear).

        Returns:
            {parameter or buffer name: array}.
        """
        if not self.state_dict:
            return {}
        return {k: v.detach().cpu().contiguous().numpy() for k, v in self.state_dict.items()}


def fit_head(
    X: np.ndarray, yi: np.ndarray, labels: list[str], seed: int, C: float | None, groups=None
) -> LinearHead:
    """A LinearHead on label indices whose classes_ are then the label names, in `labels` order."""
    head = LinearHead(C=C, random_state=seed).fit(X, yi, groups=groups)
    # Trained on indices so the columns follow `labels` (not alphabetical order); names are for people.
    head.classes_ = np.asarray(labels)
    return head


def head_metadata(head: LinearHead, n: int) -> dict[str, Any]:
    """The JSON-friendly facts of a fitted head, for a version's metrics."""
    return {
        "C": float(head.C_),
        "temperature": float(head.temperature_),
        "cv_log_loss": head.cv_log_loss_,
        "cv_accuracy": head.cv_accuracy_,
        "cv_folds": int(head.n_folds_),
        "n_train": int(n),
        "head_fit_seconds": float(head.fit_seconds_),
    }


def labels_and_indices(y, labels: Sequence[str] | None, groups=None) -> tuple[list[str], np.ndarray]:
    """Label names and y as indices into them; refuses label sets nothing can be trained on."""
    if labels is None:
        labels = [str(v) for v in np.unique(np.asarray(y))]
    labels = [str(v) for v in labels]
    yi = as_indices(y, labels)
    # Augmented copies of one image are one image when counting what a label has.
    firsts = yi if groups is None else yi[np.unique(np.asarray(groups), return_index=True)[1]]
    counts = np.bincount(firsts, minlength=len(labels))
    check_counts({name: int(c) for name, c in zip(labels, counts, strict=True)})
    return labels, yi


def fit_linear(
    X,
    y,
    labels: Sequence[str] | None = None,
    *,
    seed: int = 0,
    C: float | None = None,
    groups=None,
    on_progress: StepFn | None = None,
) -> TrainResult:
    """Train the head alone on cached features.

    Args:
        X: features [N, D].
        y: labels [N], names from `labels` or indices into it.
        labels: class names in index order (default: sorted unique y).
        seed: CV fold seed.
        C: fixed regularisation; None searches it by cross-validation.
        groups: optional image id per row when X holds augmented copies (e.g. the features of each image
            and of its mirror image); copies of one image stay in one CV fold.
        on_progress: on_progress(fraction, message); may raise Cancelled.
    Returns:
        TrainResult with strategy "linear" and metadata C, cv_log_loss, cv_accuracy, temperature,
        fit_seconds, n_train.
    """
    started = time.perf_counter()
    labels, yi = labels_and_indices(y, labels, groups)
    if on_progress is not None:
        on_progress(0.0, "training the classifier head")
    head = fit_head(np.asarray(X), yi, labels, seed, C, groups)
    meta = head_metadata(head, len(yi) if groups is None else len(np.unique(groups)))
    meta["fit_seconds"] = time.perf_counter() - started
    if on_progress is not None:
        on_progress(1.0, "classifier head trained")
    return TrainResult(strategy="linear", head=head, labels=labels, metadata=meta)
