"""The steps of a training, each taking values and returning values.

    plan_evaluation -> choose_setting -> extract -> mirror -> fit -> evaluate_model -> (fit again)
    -> analyse (analyse.py) -> export -> write

pipeline.py runs them in order for a training (`train_model`) and a data audit (`audit_images`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from .artifacts import ONNX_FILE, TAIL_FILE, head_arrays, new_manifest, write_artifact
from .audit import PERCEPTUAL_HASH
from .cache import MemoryCache
from .data import Sample, resolve
from .errors import ImageError, TrainingError
from .evaluation import EvaluationKind, evaluate, holdout_split, kfold_evaluate
from .fit import TrainResult, fit_linear
from .heads import LinearHead
from .preprocessing import FRAMINGS, read_bytes
from .progress import StepFn
from .strategies import Strategy

MIN_PER_LABEL_HOLDOUT = 20
# Answers kept in the metrics per scored image, held out or out-of-fold (the rest are only counted).
MAX_STORED_PREDICTIONS = 5000
# Most training images the framing / views / representation choice is made on: enough for a stable
# cross-validated score, few enough that trying 2 framings x 2 views costs seconds, not minutes.
PROBE_IMAGES = 300
# Images the exported graph is checked on before anything ships it.
EXPORT_CHECK_IMAGES = 4


class Representation(StrEnum):
    """What of an image's cached vector a linear head reads."""

    LAST = "last"  # the pooled output of the last layer, as the backbone's own classifier reads it
    DEPTHS = "depths"  # that, and the pooled outputs of earlier blocks (strokes, textures, parts)
    LAYOUT = "layout"  # that, and the middle blocks pooled over a grid: where in the frame things are


def width(representation: str, spec) -> int:
    """Args: representation; spec: the Backbone. Returns: how many leading columns of a cached vector
    (features, taps, layout cells: Backbone.vector_dim) a head with that representation reads."""
    return {
        Representation.LAST: spec.feature_dim,
        Representation.DEPTHS: spec.depth_dim,
        Representation.LAYOUT: spec.vector_dim,
    }[Representation(representation)]


def taps_read(representation: str, spec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Args: representation; spec: the Backbone. Returns: (blocks whose pooled outputs, blocks whose
    grid cells) a head with that representation reads after the features, as the serving graph takes them."""
    reads = Representation(representation)
    taps = spec.taps if reads != Representation.LAST else ()
    return taps, spec.layout_taps if reads == Representation.LAYOUT else ()


def represent(X: np.ndarray, representation: str, spec) -> np.ndarray:
    """Args: X: cached vectors [N, vector_dim]; representation; spec: the Backbone.
    Returns: the columns a head with that representation reads."""
    return X[:, : width(representation, spec)]


@dataclass
class EvaluationPlan:
    """How a training measures itself.

    Attributes:
        kind: what the scores are measured on.
        train_idx: rows of the samples that fit the evaluated model.
        test_idx: rows it is scored on (empty for a separate validation set and for cross-validation).
        refit: whether the serving model is fitted again on every row afterwards.
        description: the plan in words, for people.
    """

    kind: EvaluationKind
    train_idx: np.ndarray
    test_idx: np.ndarray
    refit: bool
    description: str


@dataclass
class Extracted:
    """Feature vectors (and perceptual hashes) by image key, and what could not be read."""

    vectors: dict[str, np.ndarray]
    failed: dict[str, str]
    n_extracted: int
    n_cached: int
    seconds: float
    hashes: dict[str, np.ndarray] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # features.StageClock's
    n_decoded: int = 0


@dataclass
class FittedModel:
    """What one fit made: the head and, for partial / full, the adapted network.

    Attributes:
        strategy: "linear", "partial" or "full".
        result: the fit's TrainResult (head, metadata, adapted weights).
        samples: the images it learned from.
        representation: what of a cached vector the head reads (Representation).
        feature_dim: the last layer's width (the first columns of a cached vector).
        width: how many leading columns of a cached vector the head reads.
        net: the adapted BackboneNet on the CPU (None for linear).
        adapted: computes features under `net` (None for linear: the cached features are its own).
    """

    strategy: str
    result: TrainResult
    samples: list[Sample]
    representation: str = Representation.LAST.value
    feature_dim: int = 0
    width: int = 0
    net: object | None = None
    adapted: object | None = None

    @property
    def head(self) -> LinearHead:
        return self.result.head

    def features(self, samples: Sequence[Sample], vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Args: samples: images; vectors: cached vectors. Returns: what this model's head reads of them."""
        if self.adapted is None:
            X = np.stack([vectors[s.key] for s in samples]).astype(np.float32)
            return X[:, : self.width]
        return self.adapted.features([resolve(s.source) for s in samples])


# -- plan ---------------------------------------------------------------------------------------------


def plan_evaluation(
    samples: Sequence[Sample], y: np.ndarray, n_labels: int, holdout: str, seed: int, *, has_val: bool
) -> EvaluationPlan:
    """Decide what the scores will be measured on.

    Args:
        samples: the readable training images.
        y: their label indices.
        n_labels: number of labels.
        holdout: "auto" (stratified 20 % holdout, k-fold for small sets) or "given" (the samples' split
            fields choose a frozen test split; k-fold if it lacks a label).
        seed: split seed.
        has_val: a separate validation set will be scored instead.
    Returns:
        the EvaluationPlan.
    """
    everything = np.arange(len(samples))
    empty = np.array([], dtype=np.int64)
    if has_val:
        return EvaluationPlan(EvaluationKind.VALIDATION_SET, everything, empty, False, "validation set")
    cv = EvaluationPlan(EvaluationKind.CROSS_VALIDATION, everything, empty, False, "cross-validation")
    if holdout == "given":
        test = np.array([i for i, s in enumerate(samples) if s.split == "test"], dtype=np.int64)
        train = np.setdiff1d(everything, test)
        present = np.unique(y)
        ok = len(test) and all((y[test] == c).any() and (y[train] == c).sum() >= 2 for c in present)
        if ok:
            text = f"frozen test split of {len(test)} images"
            return EvaluationPlan(EvaluationKind.FROZEN_TEST, train, test, True, text)
        cv.description = "cross-validation (the test split lacks a label)"
        return cv
    if holdout != "auto":
        raise ValueError(f"holdout must be 'auto' or 'given', not {holdout!r}")
    smallest = np.bincount(y, minlength=n_labels)[np.unique(y)].min()
    if smallest >= MIN_PER_LABEL_HOLDOUT:
        train, test = holdout_split(y, test_fraction=0.2, seed=seed)
        text = f"stratified holdout of {len(test)} images"
        return EvaluationPlan(EvaluationKind.HOLDOUT, train, test, True, text)
    return cv


# -- extract ------------------------------------------------------------------------------------------


def extract(
    extractor, samples: Sequence[Sample], cache, step: StepFn | None = None, *, hashes: bool = True
) -> Extracted:
    """Features (and perceptual hashes) for every sample; cached ones are not read, the rest are read
    one batch at a time.

    Args:
        extractor: a features.Extractor (its `mirrored` flag picks mirrored images).
        samples: the images.
        cache: a FeatureCache, or None for this call only.
        step: progress of this step.
        hashes: also compute each image's perceptual hash (for the duplicate search).
    Returns:
        Extracted.
    """
    started = time.perf_counter()
    cache = cache if cache is not None else MemoryCache()
    # Sources stay unresolved: the extractor reads each image in the lane that decodes it.
    result = extractor.extract_items(
        [(s.key, s.source) for s in samples],
        cache,
        on_progress=step,
        image_hash=PERCEPTUAL_HASH if hashes else None,
    )
    seconds = time.perf_counter() - started
    return Extracted(
        result.vectors, result.failed, result.n_extracted, result.n_cached, seconds, result.hashes,
        result.stage_seconds, result.n_decoded,
    )  # fmt: skip


def mirror(extractor, samples: Sequence[Sample], cache, step: StepFn | None = None) -> Extracted:
    """Features of the mirrored images (training augmentation: a bee facing left is still a bee)."""
    mirrored = extractor.variant(mirrored=True)
    named = (
        None if step is None else (lambda fraction, message: step(fraction, f"mirrored images: {message}"))
    )
    return extract(mirrored, samples, cache, named, hashes=False)


# -- choose -------------------------------------------------------------------------------------------


@dataclass
class Setting:
    """How a training frames, views and reads its images, chosen by cross-validation on a probe.

    Attributes:
        framing: "crop" or "full" (preprocessing.FRAMINGS).
        views: "identity" (each image as it is) or "mirror" (also mirrored: a bee facing left is a bee;
            a mirrored 2 is no digit).
        representation: what of the cached vectors a linear head reads (Representation).
        scores: cross-validated log-loss of every candidate, by "framing/views/representation".
        probe_size: images the choice was made on.
    """

    framing: str
    views: str
    representation: str
    scores: dict = field(default_factory=dict)
    probe_size: int = 0


def choose_setting(
    extractor,
    samples: Sequence[Sample],
    labels: Sequence[str],
    cache,
    spec,
    *,
    seed: int = 0,
    augment: bool = True,
    views: str | None = None,
    step: StepFn | None = None,
) -> tuple[Setting, Extracted]:
    """Pick framing and representation together, then views, by cross-validating a linear head on a
    stratified probe of at most PROBE_IMAGES training images (lowest log-loss; a tie keeps the simpler).

    That costs one decoding of each probe image, four views of it through the network (both framings,
    and their mirror images when views may be mirrored) and seven head fits; the probe's vectors and
    hashes land in the cache under the keys the training uses, so the chosen setting's are not
    extracted again.

    Args:
        extractor: the features.Extractor.
        samples: training images only (never the ones the version will be scored on).
        labels: label names.
        cache: a FeatureCache.
        spec: the Backbone.
        seed: seed of the probe and the folds.
        augment: consider mirrored views.
        views: "identity" or "mirror" to impose the views instead of choosing them (None: choose).
        step: progress of this step.
    Returns:
        (the Setting, what the probe extracted, for the timings).
    """
    labels = list(labels)
    probe = _probe(samples, seed)
    augment = augment and views != "identity"
    # Every view the choice may need, from one decoding of each probe image (and its perceptual hash,
    # which the extract step would otherwise decode the image again for).
    wanted = [(framing, mirrored) for mirrored in (False, True)[: 1 + int(augment)] for framing in FRAMINGS]
    sub = None
    if step is not None:
        sub = lambda f, m: step(0.9 * f, f"choosing how to frame the pictures: {m}")  # noqa: E731
    started = time.perf_counter()
    got = extractor.extract_views(
        [(s.key, s.source) for s in probe],
        [extractor.variant(framing=framing, mirrored=mirrored) for framing, mirrored in wanted],
        cache if cache is not None else MemoryCache(),
        on_progress=sub,
        image_hash=PERCEPTUAL_HASH,
    )
    extracted = dict(zip(wanted, got, strict=True))
    total = Extracted(
        {}, {}, sum(r.n_extracted for r in got), sum(r.n_cached for r in got), time.perf_counter() - started,
        stage_seconds=got[0].stage_seconds, n_decoded=got[0].n_decoded,
    )  # fmt: skip

    def vectors_of(framing: str, mirrored: bool) -> dict[str, np.ndarray]:
        return extracted[(framing, mirrored)].vectors

    scores: dict[str, float] = {}

    def score(name: str, plain: dict, flipped: dict, representation: Representation) -> float | None:
        kept = [s for s in probe if s.key in plain]
        y = np.array([labels.index(s.label) for s in kept])
        X = represent(np.stack([plain[s.key] for s in kept]), representation, spec) if kept else None
        flips = {k: represent(v[None, :], representation, spec)[0] for k, v in flipped.items()}
        try:
            X, y_fit, groups = _with_mirrored(X, y, kept, flips)
            loss = LinearHead(random_state=seed).fit(X, y_fit, groups=groups).cv_log_loss_
        except (TrainingError, ValueError):
            return None
        if loss is not None:
            scores[name] = round(float(loss), 5)
        return loss

    def better(new: float | None, old: float | None) -> bool:
        return new is not None and (old is None or new < old)

    plain = {framing: vectors_of(framing, False) for framing in FRAMINGS}
    representations = [Representation.LAST]
    representations += [Representation.DEPTHS] if spec.taps else []
    representations += [Representation.LAYOUT] if spec.layout_taps else []
    # Framing and representation together: what the edges hold can show in earlier blocks only (on
    # digits, deciding the framing on the last layer alone cost 1.8 points).
    framing, representation, best = FRAMINGS[0], Representation.LAST, None
    for name in FRAMINGS:  # the backbone's own crop and its last layer first: they win ties
        for candidate in representations:
            loss = score(f"{name}/identity/{candidate.value}", plain[name], {}, candidate)
            if better(loss, best):
                framing, representation, best = name, candidate, loss
    chosen_views = "identity"
    if augment:
        mirrored = vectors_of(framing, True)
        loss = score(f"{framing}/mirror/{representation.value}", plain[framing], mirrored, representation)
        if views == "mirror" or better(loss, best):
            chosen_views, best = "mirror", loss
    views = chosen_views
    if step is not None:
        step(1.0, f"framing chosen: {framing}")
    return Setting(framing, views, representation.value, scores, len(probe)), total


def _probe(samples: Sequence[Sample], seed: int) -> list[Sample]:
    """At most PROBE_IMAGES samples, each label in proportion (at least 2 each where it has them)."""
    samples = list(samples)
    if len(samples) <= PROBE_IMAGES:
        return samples
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_label.setdefault(s.label, []).append(i)
    share = PROBE_IMAGES / len(samples)
    chosen = []
    for members in by_label.values():
        n = min(len(members), max(2, round(len(members) * share)))
        chosen.extend(rng.choice(members, n, replace=False).tolist())
    return [samples[i] for i in sorted(chosen)]


# -- fit ----------------------------------------------------------------------------------------------


def fit(
    strategy: str,
    samples: Sequence[Sample],
    vectors: dict[str, np.ndarray],
    labels: Sequence[str],
    *,
    mirrored: dict[str, np.ndarray] | None = None,
    spec=None,
    representation: str = "last",
    device: str = "cpu",
    seed: int = 0,
    pretrained: bool = True,
    step: StepFn | None = None,
) -> FittedModel:
    """Fit one model with a strategy; the evaluated model and the serving model both come from here.

    Args:
        strategy: "linear", "partial" or "full".
        samples: the images to learn from.
        vectors: cached features by key (linear uses them; partial/full start from the pixels).
        labels: label names in output order.
        mirrored: features of mirrored images by key (linear only: extra training rows).
        spec: the Backbone (with the chosen framing in its preprocessing).
        representation: what of the cached vectors a linear head reads (see Representation).
        device: "cpu" or "cuda".
        seed: seed of every split and fit.
        pretrained: False uses random weights (tests only).
        step: progress of this step.
    Returns:
        FittedModel.
    """
    samples = list(samples)
    y = np.array([list(labels).index(s.label) for s in samples])
    if strategy == Strategy.LINEAR:
        return _fit_linear_head(samples, y, vectors, labels, mirrored or {}, spec, representation, seed, step)
    from .finetune import adapt_network

    net, result, adapted = adapt_network(
        spec, strategy, samples, y, labels, device=device, seed=seed, pretrained=pretrained, on_progress=step
    )
    last = Representation.LAST.value
    return FittedModel(
        str(strategy), result, samples, last, spec.feature_dim, spec.feature_dim, net=net, adapted=adapted
    )


def _fit_linear_head(samples, y, vectors, labels, mirrored, spec, representation, seed, step) -> FittedModel:
    X = represent(np.stack([vectors[s.key] for s in samples]).astype(np.float32), representation, spec)
    flipped = {k: represent(v[None, :], representation, spec)[0] for k, v in mirrored.items()}
    X, y_fit, groups = _with_mirrored(X, y, samples, flipped)
    result = fit_linear(X, y_fit, labels, seed=seed, groups=groups, on_progress=step)
    return FittedModel(
        Strategy.LINEAR.value, result, samples, representation, spec.feature_dim, width(representation, spec)
    )


def _with_mirrored(X, y, samples, mirrored: dict[str, np.ndarray]):
    """Training rows plus their mirrored copies; groups keep an image and its copy in one CV fold."""
    groups = np.arange(len(samples))
    extra = [i for i, s in enumerate(samples) if s.key in mirrored]
    if not extra:
        return X, y, None
    X_m = np.stack([mirrored[samples[i].key] for i in extra]).astype(np.float32)
    return np.concatenate([X, X_m]), np.concatenate([y, y[extra]]), np.concatenate([groups, groups[extra]])


# -- evaluate -----------------------------------------------------------------------------------------


def evaluate_model(
    fitted: FittedModel,
    eval_samples: Sequence[Sample],
    vectors: dict[str, np.ndarray],
    labels: Sequence[str],
    *,
    seed: int = 0,
    step: StepFn | None = None,
) -> dict:
    """Score a fitted model on images it never saw, or by cross-validation when there are none.

    Args:
        fitted: the evaluated model.
        eval_samples: held-out images (empty: cross-validate on what the model learned from).
        vectors: cached features by key.
        labels: label names in output order.
        seed: fold seed.
        step: progress of this step.
    Returns:
        metrics as from evaluation.evaluate, plus test_predictions (held out) or folds (CV).
    """
    labels = list(labels)
    if not eval_samples:
        X = fitted.features(fitted.samples, vectors)
        y = np.array([labels.index(s.label) for s in fitted.samples])
        metrics, oof = kfold_evaluate(X, y, labels, seed=seed, on_progress=step)
        metrics["oof_predictions"] = _answers(fitted.samples, oof, labels)
        return metrics
    eval_samples = list(eval_samples)
    proba = fitted.head.predict_proba(fitted.features(eval_samples, vectors))
    metrics = evaluate([labels.index(s.label) for s in eval_samples], proba, labels)
    metrics["test_predictions"] = _answers(eval_samples, proba, labels)
    if step is not None:
        step(1.0, f"scored on {len(eval_samples)} held-out images")
    return metrics


def _answers(samples: Sequence[Sample], proba: np.ndarray, labels: list[str]) -> list[dict]:
    """What the evaluated model answered for each scored image, with the label it was scored against.

    A confusion-matrix cell can then list exactly the images that make its count, and two versions can
    be compared image by image, although the model that serves has since learned from these images too.
    Held-out answers come from the model trained without them; cross-validated ones from the fold's
    head that never saw them.
    """
    return [
        {
            "key": s.key,
            "label": s.label,
            "predicted": labels[int(row.argmax())],
            "confidence": round(float(row.max()), 4),
        }
        for s, row in zip(samples[:MAX_STORED_PREDICTIONS], proba, strict=False)
    ]


# -- export and write ---------------------------------------------------------------------------------


def export(final: FittedModel, extractor, spec, vectors, out: Path) -> Path:
    """Write the serving graph (backbone + head + softmax) to `out` and check it before it ships.

    Returns:
        out.
    """
    from .export import append_head_onnx, check_appended_head, check_serving_export, export_serving_onnx

    checked, sources = _still_readable(final.samples, EXPORT_CHECK_IMAGES)
    taps, layout_taps = taps_read(final.representation, spec)
    if final.adapted is None and extractor.engine == "onnx":
        append_head_onnx(extractor.onnx_path(), final.head, out, with_taps=bool(taps))
        check_appended_head(
            out, final.head, sources, final.features(checked, vectors), spec.preprocessing,
            precision=extractor.choice.precision,
        )  # fmt: skip
        return out
    # The network whose features the head was trained on (a worker's may sit on a GPU).
    net = final.net if final.net is not None else copy.deepcopy(extractor.net).cpu().float().eval()
    export_serving_onnx(net, final.head, out, spec.preprocessing.crop, taps=taps, layout_taps=layout_taps)
    check_serving_export(
        out, net, final.head, sources, spec.preprocessing, taps=taps, layout_taps=layout_taps
    )
    return out


def _still_readable(samples: Sequence[Sample], n: int) -> tuple[list[Sample], list[bytes]]:
    """The first `n` samples whose files can still be read, with their bytes: a picture deleted while
    the model trained must not fail the check of the finished model."""
    checked, sources = [], []
    for sample in samples:
        if len(checked) == n:
            break
        try:
            sources.append(read_bytes(resolve(sample.source)))
        except ImageError:
            continue
        checked.append(sample)
    return checked, sources


_MANIFEST_METRICS = (
    "accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "top_k_accuracy", "ece",
    "log_loss", "n", "evaluation", "evaluation_kind", "strategy", "framing", "views", "representation", "setting_scores", "strategy_reason", "n_train", "n_val", "engine",
)  # fmt: skip


def write(out_dir: Path, final: FittedModel, detector, onnx_path: Path, spec, labels, metrics, fingerprint):
    """Write the version directory atomically. Returns: (its path, its manifest)."""
    manifest = new_manifest(
        backbone={"name": spec.name, "weights_id": spec.weights_id, "feature_dim": spec.feature_dim},
        labels=list(labels),
        strategy=final.strategy,
        preprocessing=spec.preprocessing.to_dict(),
        metrics={k: metrics[k] for k in _MANIFEST_METRICS if k in metrics},
        fingerprint=fingerprint,
    )
    adapted = {TAIL_FILE: final.result.state_arrays()} if final.result.state_dict else None
    path = write_artifact(
        out_dir,
        manifest=manifest,
        arrays=head_arrays(final.head, detector),
        files={ONNX_FILE: onnx_path},
        extra_arrays=adapted,
    )
    return path, manifest
