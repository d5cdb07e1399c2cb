"""From labelled images to a checked model artifact: the one training workflow, in named steps.

    plan -> extract -> mirror -> fit -> evaluate -> refit -> analyse -> export -> write

The evaluated model is fitted on the training rows of the plan and scored on images it never saw; the
model that serves is then fitted by calling the *same* fit on every image (as scikit-learn's
GridSearchCV(refit=True) does), so what ships was made the way what was measured was made. The steps
live in steps.py; the CLI and the Django workers call `train_model`, and `audit_images` runs the same
extraction, fit and analysis without writing a model.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analyse import analyse
from .artifacts import ONNX_FILE
from .backbones import DEFAULT_BACKBONE, get_backbone
from .data import Sample
from .errors import TrainingError
from .progress import ADAPT_WEIGHT, Progress, ReportFn
from .steps import (
    Extracted,
    choose_setting,
    evaluate_model,
    export,
    extract,
    fit,
    mirror,
    plan_evaluation,
    write,
)
from .strategies import Strategy, check_counts, choose_strategy, parse_strategy

STAGES = ("choose", "extract", "mirror", "fit", "evaluate", "refit", "analyse", "export", "write")


@dataclass
class TrainOutcome:
    path: Path
    metrics: dict
    manifest: dict
    test_samples: list[Sample] = field(default_factory=list)


def _planned_weights(strategy: str, samples: Sequence[Sample], holdout: str, augment: bool, has_val: bool):
    """Shares of the progress bar, guessed before extraction (unreadable images rarely change them)."""
    if strategy == Strategy.AUTO:
        try:
            strategy = choose_strategy(dict(Counter(s.label for s in samples)), "cpu")[0]
        except TrainingError:
            strategy = Strategy.LINEAR
    adapting = strategy != Strategy.LINEAR
    maybe_refit = not has_val and (holdout == "auto" or any(s.split == "test" for s in samples))
    weights = {"mirror": 0.0 if adapting or not augment else None}
    if adapting:
        weights.update(fit=ADAPT_WEIGHT, refit=ADAPT_WEIGHT if maybe_refit else 0.0)
    elif not maybe_refit:
        weights["refit"] = 0.0
    return {k: v for k, v in weights.items() if v is not None}


# -- the workflow -------------------------------------------------------------------------------------


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
    on_progress: ReportFn | None = None,
    extractor=None,
    pretrained: bool = True,
    augment: bool = True,
    views: str | None = None,
) -> TrainOutcome:
    """Train a model version and write its artifact to `out_dir`.

    Args:
        samples: the labelled training images.
        out_dir: where the artifact directory goes (must not exist).
        labels: label names in output order (default: sorted names found in samples).
        backbone: registry name.
        strategy: "auto", "linear", "partial" or "full".
        cache: a FeatureCache (cache.DirectoryCache, the site's database cache); None keeps them
            in memory for this call only.
        val_samples: a separate validation set; metrics are then computed on it.
        seed: seed of every split and fit.
        device: "auto", "cpu" or "cuda".
        fingerprint: the caller's identity of this training (stored in the manifest).
        holdout: "auto" or "given" (see plan_evaluation).
        on_progress: receives a progress.ProgressReport per step update; may raise Cancelled.
        extractor: a features.Extractor to reuse (workers keep one per backbone).
        pretrained: False uses random weights (tests only).
        augment: let the linear head learn from mirrored copies of the images when they help.
        views: "identity" or "mirror" imposes the views instead of choosing them by cross-validation.
    Returns:
        TrainOutcome with the artifact path, the metrics, the manifest and the test samples.
    Raises:
        TrainingError: too few labels or images, unknown label or strategy, or nothing decodable.
    """
    started = time.perf_counter()
    asked = parse_strategy(strategy)
    spec = get_backbone(backbone)
    if extractor is None:
        from .features import Extractor

        extractor = Extractor(spec, device=device, pretrained=pretrained)
    samples, val_samples = list(samples), list(val_samples or [])
    labels = list(labels) if labels else sorted({s.label for s in samples})
    unknown_labels = sorted({s.label for s in [*samples, *val_samples]} - set(labels))
    if unknown_labels:
        raise TrainingError(f"labels {unknown_labels} are not among the model's labels {labels}")
    weights = _planned_weights(asked, samples, holdout, augment, bool(val_samples))
    progress = Progress(on_progress, STAGES, weights=weights)
    check_counts(dict(Counter(s.label for s in samples)))

    # The split is planned before anything is read, so the choice of framing never sees a test image.
    y = np.array([labels.index(s.label) for s in samples])
    planned = plan_evaluation(samples, y, len(labels), holdout, seed, has_val=bool(val_samples))
    setting, probed = choose_setting(
        extractor, [samples[i] for i in planned.train_idx], labels, cache, spec,
        seed=seed, augment=augment, views=views, step=progress.step("choose"),
    )  # fmt: skip
    extractor = extractor.variant(framing=setting.framing)
    spec = dataclasses.replace(spec, preprocessing=extractor.preprocessing)
    features = extract(extractor, [*samples, *val_samples], cache, progress.step("extract"))
    # What the probe extracted is work done; what it found cached the steps below count again.
    _add_counts(features, probed, cached=False)
    vectors, failed = features.vectors, dict(features.failed)
    samples = [s for s in samples if s.key in vectors]
    val_samples = [s for s in val_samples if s.key in vectors]
    if not samples:
        raise TrainingError("none of the images could be read; " + _first_failures(failed))
    check_counts(dict(Counter(s.label for s in samples)))
    y = np.array([labels.index(s.label) for s in samples])
    plan = plan_evaluation(samples, y, len(labels), holdout, seed, has_val=bool(val_samples))
    train_samples = [samples[i] for i in plan.train_idx]
    if asked == Strategy.AUTO:
        chosen, reason = choose_strategy(dict(Counter(s.label for s in train_samples)), extractor.device)
    else:
        chosen, reason = asked.value, f"{asked.value}: chosen by the person who started the training"

    mirrored: dict[str, np.ndarray] = {}
    if chosen == Strategy.LINEAR and setting.views == "mirror":
        flipped = mirror(extractor, samples if plan.refit else train_samples, cache, progress.step("mirror"))
        mirrored = flipped.vectors
        _add_counts(features, flipped)

    fit_started = time.perf_counter()
    common = {
        "spec": spec,
        "representation": setting.representation,
        "device": extractor.device,
        "seed": seed,
        "pretrained": pretrained,
    }
    evaluated = fit(
        chosen, train_samples, vectors, labels, mirrored=mirrored, step=progress.step("fit"), **common
    )
    eval_samples = val_samples or [samples[i] for i in plan.test_idx]
    metrics = evaluate_model(
        evaluated, eval_samples, vectors, labels, seed=seed, step=progress.step("evaluate")
    )
    final = evaluated
    if plan.refit:
        # The evaluation held images back; the model people use learns from all of them, the same way.
        final = fit(
            chosen, samples, vectors, labels, mirrored=mirrored, step=progress.step("refit"), **common
        )
    analyse_step = progress.step("analyse")
    analyse_step(0.0, "checking the data for wrong labels and copies")
    findings, detector = analyse(final, features, labels, plan, samples, mirrored=mirrored, seed=seed)
    fit_s = time.perf_counter() - fit_started

    export_started = time.perf_counter()
    progress.step("export")(0.0, "exporting the model")
    staging = Path(out_dir).parent / f".{Path(out_dir).name}.onnx"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        onnx_path = export(final, extractor, spec, vectors, staging / ONNX_FILE)
        progress.step("write")(0.0, "writing the artifact")
        metrics.update(
            {
                "evaluation": plan.description,
                "evaluation_kind": plan.kind.value,
                "strategy": final.strategy,
                "framing": setting.framing,
                "views": setting.views if final.strategy == Strategy.LINEAR else "identity",
                "representation": final.representation,
                "setting_scores": setting.scores,
                "strategy_reason": reason,
                "backbone": spec.name,
                "device": extractor.device,
                "engine": {"precision": str(extractor.choice.precision), "runtime": extractor.choice.runtime},
                "labels": labels,
                "n_train": len(final.samples),
                "n_val": len(eval_samples),
                "training": final.result.metadata,
                "skipped": [{"key": k, "error": e} for k, e in sorted(failed.items())],
                "timings": _timings(features, fit_s, export_started, started),
                **findings,
            }
        )
        path, manifest = write(Path(out_dir), final, detector, onnx_path, spec, labels, metrics, fingerprint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress.finish("done")
    return TrainOutcome(path=path, metrics=metrics, manifest=manifest, test_samples=eval_samples)


@dataclass
class AuditOutcome:
    """What `audit_images` found.

    Attributes:
        findings: {mislabeled, near_duplicates, outliers, leakage} as in analyse.analyse (by image key).
        failed: {key: why} for images that could not be read.
        samples: the readable images that were checked.
    """

    findings: dict
    failed: dict[str, str]
    samples: list[Sample]


def audit_images(
    samples: Sequence[Sample],
    *,
    labels: Sequence[str] | None = None,
    backbone: str = DEFAULT_BACKBONE,
    cache=None,
    seed: int = 0,
    device: str = "auto",
    extractor=None,
    on_progress: ReportFn | None = None,
    augment: bool = True,
    pretrained: bool = True,
) -> AuditOutcome:
    """Check labelled images for wrong labels, copies and outliers, without writing a model.

    The same extraction, linear fit and analysis as a training, so the command line and the site agree.

    Args:
        samples: the labelled images (one key each: exact copies share a key and are checked once).
        labels: label names (default: sorted names found in samples).
        backbone, cache, seed, device, extractor, pretrained: as in train_model.
        on_progress: receives a progress.ProgressReport per step update; may raise Cancelled.
        augment: fit on mirrored copies too, as training does.
    Returns:
        AuditOutcome.
    Raises:
        TrainingError: fewer than 2 labels with 2 readable images each, or nothing readable.
    """
    spec = get_backbone(backbone)
    if extractor is None:
        from .features import Extractor

        extractor = Extractor(spec, device=device, pretrained=pretrained)
    samples = list({s.key: s for s in reversed(list(samples))}.values())[::-1]
    labels = list(labels) if labels else sorted({s.label for s in samples})
    stages = ("choose", "extract", "mirror", "fit", "analyse")
    progress = Progress(on_progress, stages, weights=None if augment else {"mirror": 0.0})
    check_counts(dict(Counter(s.label for s in samples)))
    setting, _probed = choose_setting(
        extractor, samples, labels, cache, spec, seed=seed, augment=augment, step=progress.step("choose")
    )
    extractor = extractor.variant(framing=setting.framing)
    spec = dataclasses.replace(spec, preprocessing=extractor.preprocessing)
    features = extract(extractor, samples, cache, progress.step("extract"))
    samples = [s for s in samples if s.key in features.vectors]
    if not samples:
        raise TrainingError("none of the images could be read; " + _first_failures(features.failed))
    check_counts(dict(Counter(s.label for s in samples)))
    mirrored = {}
    if setting.views == "mirror":
        mirrored = mirror(extractor, samples, cache, progress.step("mirror")).vectors
    fitted = fit(
        Strategy.LINEAR, samples, features.vectors, labels, mirrored=mirrored, spec=spec,
        representation=setting.representation, seed=seed, step=progress.step("fit"),
    )  # fmt: skip
    y = np.array([labels.index(s.label) for s in samples])
    plan = plan_evaluation(samples, y, len(labels), "given", seed, has_val=True)
    progress.step("analyse")(0.0, "checking the data for wrong labels, copies and outliers")
    findings, _detector = analyse(
        fitted, features, labels, plan, samples, mirrored=mirrored, seed=seed, limit=None
    )
    progress.finish("done")
    return AuditOutcome(findings, dict(features.failed), samples)


def _add_counts(features: Extracted, more: Extracted, *, cached: bool = True) -> None:
    features.n_extracted += more.n_extracted
    features.n_cached += more.n_cached if cached else 0
    features.seconds += more.seconds
    features.n_decoded += more.n_decoded
    features.stage_seconds = {
        stage: features.stage_seconds.get(stage, 0.0) + more.stage_seconds.get(stage, 0.0)
        for stage in {*features.stage_seconds, *more.stage_seconds}
    }


def _timings(features: Extracted, fit_s: float, export_started: float, started: float) -> dict:
    now = time.perf_counter()
    rate = features.n_extracted / features.seconds if features.n_extracted and features.seconds else None
    return {
        # Vectors extracted now and taken from the cache; an image and its mirror image count as two.
        "extract_s": round(features.seconds, 3),
        "fit_s": round(fit_s, 3),
        "export_s": round(now - export_started, 3),
        "total_s": round(now - started, 3),
        "images_per_s": round(rate, 1) if rate else None,
        "n_extracted": features.n_extracted,
        "n_cached": features.n_cached,
        # Where extraction's time went, in CPU milliseconds: per decoded image for reading, hashing and
        # resizing (one decoding serves every view of an image), per vector for the network.
        "n_decoded": features.n_decoded,
        "ms_per_image": {
            stage: round(
                1000 * seconds / (features.n_extracted if stage == "inference" else features.n_decoded), 2
            )
            for stage, seconds in sorted(features.stage_seconds.items())
            if (features.n_extracted if stage == "inference" else features.n_decoded)
        },
    }


def _first_failures(failed: dict[str, str]) -> str:
    return "; ".join(list(failed.values())[:3]) or "no images given"


__all__ = ["AuditOutcome", "Sample", "TrainOutcome", "audit_images", "train_model"]
