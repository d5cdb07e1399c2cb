"""From labelled images to a checked model artifact: the one training workflow.

The CLI and the Django workers both call `train_model`. It extracts (or reuses cached) features,
decides how to evaluate honestly, picks a strategy, trains, analyses the data, exports the serving
graph to ONNX, checks that graph against the head, and writes the artifact atomically.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis import UnknownDetector, leakage, likely_mislabeled, near_duplicates
from .artifacts import ONNX_FILE, TAIL_FILE, head_arrays, new_manifest, write_artifact
from .backbones import DEFAULT_BACKBONE, get_backbone
from .errors import ImageError, TrainingError
from .evaluation import evaluate, holdout_split, kfold_evaluate
from .heads import LinearHead
from .training import check_counts, choose_strategy, fit_linear

ProgressFn = Callable[[float, str], None]

# Stages of the progress bar: what a person waits on, roughly in proportion to its cost.
_STAGES = {
    "extract": (0.0, 0.4),
    "mirror": (0.4, 0.55),
    "adapt": (0.55, 0.8),
    "fit": (0.8, 0.9),
    "export": (0.9, 0.97),
}
# With fewer images than this in the smallest label, a 20 % holdout is too noisy: use k-fold instead.
MIN_PER_LABEL_HOLDOUT = 20
# Held-out predictions kept in the metrics (the rest of a very large test split is only counted).
MAX_STORED_PREDICTIONS = 5000
# Largest difference in any probability allowed between the exported graph and the torch model.
EXPORT_TOLERANCE = 1e-4


@dataclass
class Sample:
    """One labelled image.

    Attributes:
        key: sha256 of the image bytes (the feature-cache key).
        source: bytes, a path, a binary file object, or a callable returning bytes (read only when
            the features are not cached).
        label: its label name.
        split: "train", "test" (a frozen evaluation split chosen by the caller) or "auto".
    """

    key: str
    source: object
    label: str
    split: str = "auto"


@dataclass
class TrainOutcome:
    path: Path
    metrics: dict
    manifest: dict
    test_samples: list[Sample] = field(default_factory=list)


def resolve(source):
    """The source in a form the decoder reads (callables are called)."""
    return source() if callable(source) else source


class _Monotonic:
    """Never lets the bar move backwards (a stage may run several sub-steps that each count 0..1)."""

    def __init__(self, on_progress: ProgressFn | None):
        self.on_progress = on_progress
        self.last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if self.on_progress is not None:
            self.last = max(self.last, fraction)
            self.on_progress(self.last, message)


class _Stage:
    """Maps a stage's own 0..1 progress onto its slice of the overall bar."""

    def __init__(self, on_progress: ProgressFn | None, name: str):
        self.on_progress = on_progress
        self.lo, self.hi = _STAGES[name]

    def __call__(self, fraction: float, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(self.lo + (self.hi - self.lo) * min(max(fraction, 0.0), 1.0), message)


def extract_all(extractor, samples: Sequence[Sample], cache, on_progress: ProgressFn | None = None):
    """Features for every sample (cached ones are not decoded).

    Returns:
        (vectors by key, failures by key, number extracted now, number taken from the cache)
    """
    from .features import MemoryCache

    cache = cache if cache is not None else MemoryCache()
    keys = list(dict.fromkeys(s.key for s in samples))
    cached = cache.get_many(extractor.cache_key, keys)
    missing = [s for s in {s.key: s for s in samples}.values() if s.key not in cached]
    failed: dict[str, str] = {}
    items = []
    for sample in missing:
        try:
            items.append((sample.key, resolve(sample.source)))
        except OSError as exc:
            failed[sample.key] = f"cannot be read: {exc}"
    result = extractor.extract_items(items, cache, on_progress=on_progress)
    vectors = dict(cached)
    vectors.update(result.vectors)
    failed.update(result.failed)
    return vectors, failed, result.n_extracted, len(cached)


def train_model(
    samples: Sequence[Sample],
    out_dir: Path,
    *,
    labels: Sequence[str] | None = None,
    backbone: str = DEFAULT_BACKBONE,
    strategy: str = "auto",
    cache=None,
    val_samples: Sequence[Sample] | None = None,
    seed: int = 0,
    device: str = "auto",
    fingerprint: str = "",
    holdout: str = "auto",
    on_progress: ProgressFn | None = None,
    extractor=None,
    pretrained: bool = True,
    augment: bool = True,
) -> TrainOutcome:
    """Train a model version and write its artifact to `out_dir`.

    Args:
        samples: the labelled training images.
        out_dir: where the artifact directory goes (must not exist).
        labels: label names in output order (default: sorted names found in samples).
        backbone: registry name.
        strategy: "auto", "linear", "partial" or "full".
        cache: a FeatureCache (features.DirectoryCache, the site's database cache); None keeps them
            in memory for this call only.
        val_samples: a separate validation set; metrics are then computed on it.
        seed: seed of every split and fit.
        device: "auto", "cpu" or "cuda".
        fingerprint: the caller's identity of this training (stored in the manifest).
        holdout: how to evaluate without val_samples: "auto" (stratified 20 % holdout, k-fold for small
            sets) or "given" (the samples' split fields choose a frozen test split; k-fold if it lacks a
            label). Either way the metrics come from a model that never saw the test images, and the
            final model then learns from every sample.
        on_progress: on_progress(fraction, message); may raise Cancelled, which propagates.
        extractor: a features.Extractor to reuse (workers keep one per backbone).
        pretrained: False uses random weights (tests only).
        augment: train the linear head on mirrored copies of the training images too.
    Returns:
        TrainOutcome with the artifact path, the metrics, the manifest and the test samples.
    Raises:
        TrainingError: too few labels or images, unknown label, or nothing decodable.
    """
    started = time.perf_counter()
    on_progress = _Monotonic(on_progress) if on_progress is not None else None
    if strategy not in ("auto", "linear", "partial", "full"):
        raise TrainingError(f"unknown strategy {strategy!r}; use auto, linear, partial or full")
    spec = get_backbone(backbone)
    if extractor is None:
        from .features import Extractor

        extractor = Extractor(spec, device=device, pretrained=pretrained)
    samples, val_samples = list(samples), list(val_samples or [])
    labels = list(labels) if labels else sorted({s.label for s in samples})
    unknown_labels = sorted({s.label for s in [*samples, *val_samples]} - set(labels))
    if unknown_labels:
        raise TrainingError(f"labels {unknown_labels} are not among the model's labels {labels}")

    # -- features ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    vectors, failed, n_extracted, n_cached = extract_all(
        extractor, [*samples, *val_samples], cache, _Stage(on_progress, "extract")
    )
    extract_s = time.perf_counter() - t0
    samples = [s for s in samples if s.key in vectors]
    val_samples = [s for s in val_samples if s.key in vectors]
    if not samples:
        raise TrainingError("none of the images could be read; " + _first_failures(failed))
    check_counts(dict(Counter(s.label for s in samples)))
    X = np.stack([vectors[s.key] for s in samples]).astype(np.float32)
    y = np.array([labels.index(s.label) for s in samples])

    # -- how to evaluate ---------------------------------------------------------------------------
    train_idx, test_idx, evaluation, refit_all = _evaluation_plan(samples, y, len(labels), holdout, seed)
    if val_samples:
        train_idx, test_idx = np.arange(len(samples)), np.array([], dtype=np.int64)
        evaluation, refit_all = f"validation set of {len(val_samples)} images", False
    counts = dict(Counter(labels[i] for i in y[train_idx]))
    device_name = extractor.device
    if strategy == "auto":
        strategy, reason = choose_strategy(counts, device_name)
    else:
        reason = f"{strategy}: chosen by the person who started the training"

    # -- train -------------------------------------------------------------------------------------
    t1 = time.perf_counter()
    net = None
    fit = _Stage(on_progress, "fit")
    mirrored: dict[str, np.ndarray] = {}
    if strategy == "linear":
        if augment:
            mirror_samples = samples if refit_all else [samples[i] for i in train_idx]
            t_mirror = time.perf_counter()
            mirrored = _mirrored_features(extractor, mirror_samples, cache, on_progress)
            extract_s += time.perf_counter() - t_mirror
            t1 += time.perf_counter() - t_mirror
        X_fit, y_fit, groups = _with_mirrored(
            X[train_idx], y[train_idx], [samples[i] for i in train_idx], mirrored
        )
        result = fit_linear(X_fit, y_fit, labels, seed=seed, groups=groups, on_progress=fit)
        result.features = None  # evaluation and analysis use the original images only
        adapt = None
    else:
        from .adapt import adapt_network

        net, result, adapt = adapt_network(
            spec, strategy, [samples[i] for i in train_idx], y[train_idx], labels,
            device=device_name, seed=seed, pretrained=pretrained, on_progress=_Stage(on_progress, "adapt"),
        )  # fmt: skip
    head = result.head

    # -- evaluate ----------------------------------------------------------------------------------
    oof_metrics, oof = None, None
    if val_samples or len(test_idx):
        eval_samples = val_samples if val_samples else [samples[i] for i in test_idx]
        X_eval = _features_for(eval_samples, vectors, adapt)
        y_eval = np.array([labels.index(s.label) for s in eval_samples])
        eval_proba = head.predict_proba(X_eval)
        metrics = evaluate(y_eval, eval_proba, labels)
        # What the evaluated model answered for each held-out image, so a confusion-matrix cell can list
        # its images later even though the model that serves has since learned from them too.
        metrics["test_predictions"] = [
            {"key": s.key, "predicted": labels[int(row.argmax())], "confidence": round(float(row.max()), 4)}
            for s, row in zip(eval_samples[:MAX_STORED_PREDICTIONS], eval_proba, strict=False)
        ]
    else:
        X_train_final = result.features if result.features is not None else X[train_idx]
        metrics, oof = kfold_evaluate(X_train_final, y[train_idx], labels, seed=seed, on_progress=fit)
        oof_metrics = metrics
    metrics["evaluation"] = evaluation

    # -- the final model ---------------------------------------------------------------------------
    X_final = result.features if result.features is not None else X[train_idx]
    y_final = y[train_idx]
    if refit_all and len(test_idx):
        # The evaluation held images back; the model people use learns from all of them.
        X_final = _features_for(samples, vectors, adapt)
        y_final = y
        X_fit, y_fit, groups = _with_mirrored(X_final, y_final, samples, mirrored)
        head = fit_linear(X_fit, y_fit, labels, seed=seed, groups=groups).head
    fit_s = time.perf_counter() - t1

    # -- analysis (from the features already there) ------------------------------------------------
    if oof is None:
        # Out-of-fold answers only to find suspicious labels: reuse the chosen C rather than search again.
        oof_metrics, oof = kfold_evaluate(
            X_final, y_final, labels, seed=seed,
            make_head=lambda: LinearHead(C=head.C_, calibrate=False, random_state=seed),
        )  # fmt: skip
    final_samples = samples if (refit_all and len(test_idx)) else [samples[i] for i in train_idx]
    analysis = _analysis(final_samples, X_final, y_final, oof, labels, samples, test_idx, vectors, adapt)
    detector = UnknownDetector(random_state=seed).fit(X_final)

    # -- export and write --------------------------------------------------------------------------
    t2 = time.perf_counter()
    export = _Stage(on_progress, "export")
    export(0.0, "exporting the model")
    out_dir = Path(out_dir)
    staging = out_dir.parent / f".{out_dir.name}.onnx"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        onnx_path = staging / ONNX_FILE
        check_sources = [resolve(s.source) for s in final_samples[:4]]
        if adapt is None and extractor.engine == "onnx":
            from .export import append_head_onnx

            append_head_onnx(extractor.onnx_path(), head, onnx_path)
            _check_linear_export(
                onnx_path, head, check_sources, [vectors[s.key] for s in final_samples[:4]], spec
            )
        else:
            from .export import export_serving_onnx

            if net is None:
                # The network whose features the head was trained on (a worker's may sit on a GPU).
                net = copy.deepcopy(extractor.net).cpu().float().eval()
            export_serving_onnx(net, head, onnx_path, spec.preprocessing.crop)
            _check_export(onnx_path, net, head, check_sources, spec.preprocessing)
        export(0.8, "writing the artifact")
        total_s = time.perf_counter() - started
        metrics.update(
            {
                "strategy": strategy,
                "strategy_reason": reason,
                "backbone": spec.name,
                "device": device_name,
                "labels": labels,
                "n_train": int(len(y_final)),
                "n_val": int(len(val_samples) if val_samples else len(test_idx)),
                "cv": _compact(oof_metrics),
                "training": result.metadata,
                "skipped": [{"key": k, "error": e} for k, e in sorted(failed.items())],
                "timings": {
                    "extract_s": round(extract_s, 3),
                    "fit_s": round(fit_s, 3),
                    "export_s": round(time.perf_counter() - t2, 3),
                    "total_s": round(total_s, 3),
                    "images_per_s": round(n_extracted / extract_s, 1) if n_extracted and extract_s else None,
                    "n_extracted": n_extracted,
                    "n_cached": n_cached,
                },
                **analysis,
            }
        )
        manifest = new_manifest(
            backbone={"name": spec.name, "weights_id": spec.weights_id, "feature_dim": spec.feature_dim},
            labels=labels,
            strategy=strategy,
            preprocessing=spec.preprocessing.to_dict(),
            metrics={k: metrics[k] for k in _MANIFEST_METRICS if k in metrics},
            fingerprint=fingerprint,
        )
        arrays = head_arrays(head, detector)
        adapted = {TAIL_FILE: result.state_arrays()} if result.state_dict else None
        path = write_artifact(
            out_dir, manifest=manifest, arrays=arrays, files={ONNX_FILE: onnx_path}, extra_arrays=adapted
        )
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    export(1.0, "done")
    test_samples = val_samples if val_samples else [samples[i] for i in test_idx]
    return TrainOutcome(path=path, metrics=metrics, manifest=manifest, test_samples=test_samples)


_MANIFEST_METRICS = (
    "accuracy", "balanced_accuracy", "per_class", "confusion_matrix", "top_k_accuracy", "ece",
    "log_loss", "n", "evaluation", "strategy", "strategy_reason", "n_train", "n_val",
)  # fmt: skip


def _evaluation_plan(samples, y, n_labels: int, holdout: str, seed: int):
    """(train indices, test indices, description, refit on everything afterwards)."""
    everything = np.arange(len(samples))
    empty = np.array([], dtype=np.int64)
    if holdout == "given":
        test = np.array([i for i, s in enumerate(samples) if s.split == "test"], dtype=np.int64)
        train = np.setdiff1d(everything, test)
        present = np.unique(y)
        ok = len(test) and all((y[test] == c).any() and (y[train] == c).sum() >= 2 for c in present)
        if ok:
            return train, test, f"frozen test split of {len(test)} images", True
        return everything, empty, "cross-validation (the test split lacks a label)", False
    if holdout != "auto":
        raise ValueError(f"holdout must be 'auto' or 'given', not {holdout!r}")
    smallest = np.bincount(y, minlength=n_labels)[np.unique(y)].min()
    if smallest >= MIN_PER_LABEL_HOLDOUT:
        train, test = holdout_split(y, test_fraction=0.2, seed=seed)
        return train, test, f"stratified holdout of {len(test)} images", True
    return everything, empty, "cross-validation", False


def _mirrored_features(extractor, samples, cache, on_progress) -> dict[str, np.ndarray]:
    """Features of the mirrored training images (cached like any other features)."""
    mirror = copy.copy(extractor)  # shares the loaded network and session
    mirror.mirrored = True
    stage = _Stage(on_progress, "extract")
    vectors, _failed, _n, _cached = extract_all(
        mirror,
        samples,
        cache,
        lambda f, m: stage(1.0, "mirrored " + m) if f >= 1 else stage(f, "mirrored " + m),
    )
    return vectors


def _with_mirrored(X, y, samples, mirrored: dict[str, np.ndarray]):
    """Training rows plus their mirrored copies; groups keep an image and its copy in one CV fold."""
    groups = np.arange(len(samples))
    extra = [i for i, s in enumerate(samples) if s.key in mirrored]
    if not extra:
        return X, y, None
    X_m = np.stack([mirrored[samples[i].key] for i in extra]).astype(np.float32)
    return np.concatenate([X, X_m]), np.concatenate([y, y[extra]]), np.concatenate([groups, groups[extra]])


def _features_for(samples, vectors, adapt) -> np.ndarray:
    """Features under the final network: cached ones, or recomputed through an adapted network."""
    if adapt is None:
        return np.stack([vectors[s.key] for s in samples]).astype(np.float32)
    return adapt.features([resolve(s.source) for s in samples])


def _analysis(final_samples, X_final, y_final, oof, labels, samples, test_idx, vectors, adapt) -> dict:
    keys = [s.key for s in final_samples]
    mislabeled = [{**item, "key": keys[item["index"]]} for item in likely_mislabeled(oof, y_final, labels)]
    duplicates = [
        {"a": a, "b": b, "similarity": round(sim, 4)} for a, b, sim in near_duplicates(X_final, ids=keys)
    ][:200]
    leaks = []
    if len(test_idx):
        train_idx = np.setdiff1d(np.arange(len(samples)), test_idx)
        X_train = _features_for([samples[i] for i in train_idx], vectors, adapt)
        X_test = _features_for([samples[i] for i in test_idx], vectors, adapt)
        leaks = [
            {"train": samples[train_idx[i]].key, "test": samples[test_idx[j]].key, "similarity": round(s, 4)}
            for i, j, s in leakage(X_train, X_test)
        ][:200]
    return {"mislabeled": mislabeled[:200], "near_duplicates": duplicates, "leakage": leaks}


def _check_export(onnx_path: Path, net, head, sources: list, prep) -> None:
    """The exported graph must give the torch model's answers on real inputs before anything ships it."""
    if not sources:
        return
    import torch

    from .adapt import images_tensor
    from .export import serving_module
    from .features import INPUT_NAME, make_session

    batch = images_tensor(sources, prep)
    with torch.inference_mode():
        expected = serving_module(net, head)(batch)[0].numpy()
    got = make_session(onnx_path).run(["probabilities"], {INPUT_NAME: batch.numpy()})[0]
    worst = float(np.abs(expected - got).max())
    if worst > EXPORT_TOLERANCE:
        raise TrainingError(f"the exported model disagrees with the trained one (max difference {worst:.2g})")


def _check_linear_export(onnx_path: Path, head, sources: list, cached: list, spec) -> None:
    """The appended head must reproduce the trained head, on features that match the cached ones."""
    if not sources:
        return
    from .features import INPUT_NAME, make_session
    from .predict import preprocess_batch

    probabilities, features = make_session(onnx_path).run(
        ["probabilities", "features"], {INPUT_NAME: preprocess_batch(sources, spec.preprocessing)}
    )
    worst = float(np.abs(head.predict_proba(features) - probabilities).max())
    if worst > EXPORT_TOLERANCE:
        raise TrainingError(f"the exported head disagrees with the trained one (max difference {worst:.2g})")
    reference = np.stack(cached)
    cosine = np.sum(features * reference, axis=1) / (
        np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12
    )
    # Cached features may come from a GPU worker in half precision: compare directions, loosely.
    if float(cosine.min()) < 0.99:
        raise TrainingError(
            "the exported network's features differ from the cached ones "
            f"(cosine {float(cosine.min()):.3f}); the feature cache may hold another network's vectors"
        )


def _compact(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "log_loss", "folds") if k in metrics}


def _first_failures(failed: dict[str, str]) -> str:
    return "; ".join(list(failed.values())[:3]) or "no images given"


__all__ = ["ImageError", "Sample", "TrainOutcome", "extract_all", "resolve", "train_model"]
