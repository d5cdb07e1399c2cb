"""Serving a model version: load an artifact once, predict batches on this CPU's fastest engine, no torch.

The web process keeps a few Predictors loaded; a downloaded artifact works the same way:

    from classifier.predict import Predictor
    predictor = Predictor("path/to/version")
    [result] = predictor.predict(["photo.jpg"])
    print(result.label, result.probability, result.unknown)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import UNKNOWN_PREFIX, load_arrays, split_prefixed, verify_artifact
from .engines import choose, cpu_count, open_session
from .errors import ArtifactError
from .features import default_model_cache
from .graphs import INPUT_NAME
from .preprocessing import Preprocessing, load_rgb, preprocess
from .unknown import UnknownDetector

_BATCH = 32


def preprocess_batch(sources: Sequence, prep: Preprocessing) -> np.ndarray:
    """Images (bytes, paths, file objects) as one float32 batch [N, 3, crop, crop]."""
    batch = np.empty((len(sources), 3, prep.crop, prep.crop), dtype=np.float32)
    for i, source in enumerate(sources):
        batch[i] = preprocess(load_rgb(source, target_size=prep.resize), prep)
    return batch


@dataclass(frozen=True)
class Prediction:
    """One image's answer.

    Attributes:
        label: the most likely label.
        probability: its calibrated probability.
        top: (label, probability) pairs, most likely first.
        unknown: True when the image is unlike everything seen in training (do not trust `label`).
        unknown_score: how unusual the image is; above the artifact's threshold means unknown.
        embedding: the image as the unknown detector compares it (`Predictor.embed`), when asked for.
        labels: multi-label versions only: (label, probability, present) for every label, in the
            model's order; present means at or above that label's threshold. None for single-label.
    """

    label: str
    probability: float
    top: list[tuple[str, float]]
    unknown: bool
    unknown_score: float
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    labels: list[tuple[str, float, bool]] | None = None

    @property
    def present(self) -> list[str]:
        """Multi-label: the labels in the picture, most likely first (empty: none of them)."""
        rows = sorted(self.labels or [], key=lambda row: -row[1])
        return [name for name, _p, present in rows if present]

    def to_dict(self) -> dict:
        answer = {
            "label": self.label,
            "probability": self.probability,
            "top": [{"label": name, "probability": p} for name, p in self.top],
            "unknown": self.unknown,
            "unknown_score": self.unknown_score,
        }
        if self.labels is not None:
            answer["labels"] = [
                {"label": name, "probability": p, "present": present} for name, p, present in self.labels
            ]
        return answer


class Predictor:
    """A loaded model version.

    Args:
        path: the artifact directory (checked against its manifest's hashes and format version).
        threads: inference threads (default: every core this process may use).
        precision: "auto", "fp32", "bf16" or "int8" (default: PINHOLE_ENGINE, else "auto"; see
            engines.choose). The artifact's model.onnx stays fp32; only how this host runs it changes.
        quantized_dir: where an int8 copy of model.onnx is kept (default: PINHOLE_MODEL_CACHE/int8),
            never inside the immutable version.
    Raises:
        ArtifactError: missing, corrupt, tampered or incompatible artifact.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        precision: str | None = None,
        quantized_dir: str | os.PathLike | None = None,
    ):
        self.path = Path(path)
        self.manifest = verify_artifact(self.path)
        self.labels: list[str] = list(self.manifest["labels"])
        self.task_type: str = self.manifest.get("task_type", "single_label")
        # Multi-label: each label's threshold as trained (a site may serve others: `predict(thresholds=)`).
        self.thresholds: dict[str, float] = dict(self.manifest.get("thresholds") or {})
        try:
            self.preprocessing = Preprocessing.from_dict(self.manifest["preprocessing"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"model version {path} has no usable preprocessing ({exc!r}); the artifact is corrupt"
            ) from exc
        self.engine = choose(precision)
        prep = self.preprocessing
        try:
            self.session = open_session(
                self.path / "model.onnx", self.engine, threads or cpu_count(),
                normalisation=(prep.mean, prep.std),
                quantized_dir=quantized_dir or default_model_cache() / "int8",
            )  # fmt: skip
        except Exception as exc:  # each runtime raises its own exception types for a bad graph
            raise ArtifactError(f"model.onnx cannot be loaded: {exc}") from exc
        arrays = load_arrays(self.path)
        unknown = split_prefixed(arrays, UNKNOWN_PREFIX)
        self.detector = UnknownDetector.from_arrays(unknown) if unknown else None
        self._explainer = None
        self._explainer_lock = threading.Lock()

    @property
    def version_info(self) -> dict:
        return {
            "backbone": self.manifest["backbone"],
            "labels": self.labels,
            "strategy": self.manifest.get("strategy"),
            "task_type": self.task_type,
        }

    def _tensor(self, sources: Sequence) -> np.ndarray:
        return preprocess_batch(sources, self.preprocessing)

    def run(self, sources: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities [N, K] and features [N, D] for images (bytes, paths or file objects).

        Raises:
            ImageError: an image cannot be decoded (the whole call fails; predict one by one to isolate).
        """
        probs, feats = [], []
        for start in range(0, len(sources), _BATCH):
            batch = self._tensor(sources[start : start + _BATCH])
            p, f = self.session.run(["probabilities", "features"], {INPUT_NAME: batch})
            probs.append(p)
            feats.append(f)
        if not probs:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(probs), np.concatenate(feats)

    def predict_proba(self, sources: Sequence) -> np.ndarray:
        """Returns: probabilities [N, K] in `labels` order."""
        return self.run(sources)[0]

    def explain(self, source, label_index: int | None = None):
        """Where in one picture the answer (or `label_index`) came from: a classifier.explain.Explanation.

        The explaining graph is opened on first use (fp32 ONNX Runtime, whatever engine predicts).

        Raises:
            ImageError: the picture cannot be decoded.
            ArtifactError: the graph cannot be explained.
        """
        from .explain import Explainer

        with self._explainer_lock:
            if self._explainer is None:
                self._explainer = Explainer(self.path, self.preprocessing, threads=1)
        # Decoded as for a prediction (the same reduced JPEG decode), so the explained answer is the one given.
        photo = load_rgb(source, target_size=self.preprocessing.resize)
        return self._explainer.explain(photo, label_index)

    def embed(self, features: np.ndarray) -> np.ndarray:
        """Features from `run` as the unknown detector compares them (standardised on the training
        images, unit length), or just unit length for a version without a detector. [N, d] float32."""
        if self.detector is not None:
            return self.detector.embed(features)
        features = np.asarray(features, dtype=np.float32)
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    def references(self) -> np.ndarray:
        """The training images as the detector compares them [R, d] (empty without a detector)."""
        if self.detector is None:
            return np.zeros((0, 0), np.float32)
        return self.detector.reference_

    @property
    def multi_label(self) -> bool:
        return self.task_type == "multi_label"

    def predict(
        self, sources: Sequence, top_k: int = 5, *, embed: bool = False, thresholds: dict | None = None
    ) -> list[Prediction]:
        """Args: sources: images; top_k: how many labels to list; embed: fill each Prediction's
        `embedding`; thresholds: multi-label: {label: threshold} to use instead of the trained ones
        (labels not named keep theirs). Returns: one Prediction per image."""
        probs, feats = self.run(sources)
        embeddings = self.embed(feats) if embed and len(feats) else [None] * len(probs)
        if self.detector is not None and len(feats):
            scores = self.detector.score(feats)
            unknown = self.detector.unknown_at(scores)
        else:
            scores, unknown = np.zeros(len(probs)), np.zeros(len(probs), dtype=bool)
        k = max(1, min(int(top_k), len(self.labels)))
        cut = None
        if self.multi_label:
            chosen = {**self.thresholds, **(thresholds or {})}
            cut = np.array([float(chosen.get(name, 0.5)) for name in self.labels])
        results = []
        for row, score, is_unknown, embedding in zip(probs, scores, unknown, embeddings, strict=True):
            order = np.argsort(-row, kind="stable")[:k]
            top = [(self.labels[i], float(row[i])) for i in order]
            each = None
            if cut is not None:
                each = [
                    (name, float(p), bool(p >= t)) for name, p, t in zip(self.labels, row, cut, strict=True)
                ]
            results.append(
                Prediction(top[0][0], top[0][1], top, bool(is_unknown), float(score), embedding, labels=each)
            )
        return results
