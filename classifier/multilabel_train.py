"""A multi-label model version: which of the labels are in each picture (several, or none).

    plan -> extract -> fit -> evaluate -> refit -> analyse -> export -> write

The same steps as a single-label training (steps.py), with the heads of classifier.multilabel: one
calibrated binary head per label on the cached features, read at several depths where the backbone
offers them (bench.multilabel: 0.84 mAP against 0.80 for the last layer alone). Only the linear
strategy: adapting the network to several independent questions at once is not built yet, and asking
for it says so. The version's graph ends in a sigmoid per label; its manifest says
`"task_type": "multi_label"` and carries each label's threshold.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .analyse import MAX_FINDINGS, data_findings
from .artifacts import ONNX_FILE, head_arrays, new_manifest, write_artifact
from .backbones import DEFAULT_BACKBONE, get_backbone
from .data import Sample
from .errors import TrainingError
from .evaluation import EvaluationKind
from .fit import TrainResult
from .multilabel import MIN_PER_SIDE, check_counts, find_mislabeled, fit_multilabel, out_of_fold, scores
from .pipeline import TrainOutcome, _first_failures, _timings
from .progress import Progress, ReportFn
from .steps import MAX_STORED_PREDICTIONS, EvaluationPlan, FittedModel, Representation, export, extract, width
from .strategies import Strategy, parse_strategy

STAGES = ("extract", "fit", "evaluate", "refit", "analyse", "export", "write")
MULTI_LABEL = "multi_label"


def label_matrix(samples: Sequence[Sample], labels: Sequence[str]) -> np.ndarray:
    """Returns: bool [N, L], which labels each sample has."""
    index = {name: j for j, name in enumerate(labels)}
    Y = np.zeros((len(samples), len(labels)), dtype=bool)
    for i, sample in enumerate(samples):
        for name in sample.labels:
            Y[i, index[name]] = True
    return Y


def plan_multilabel(samples: Sequence[Sample], Y: np.ndarray) -> EvaluationPlan:
    """The frozen test split (the samples' split fields) when every label has a picture with it there
    and enough on both sides to learn from outside it; otherwise the heads' out-of-fold answers."""
    everything = np.arange(len(samples))
    test = np.array([i for i, s in enumerate(samples) if s.split == "test"], dtype=np.int64)
    train = np.setdiff1d(everything, test)
    if len(test) and Y[test].any(axis=0).all():
        have, lack = Y[train].sum(axis=0), (~Y[train]).sum(axis=0)
        if (have >= MIN_PER_SIDE).all() and (lack >= MIN_PER_SIDE).all():
            text = f"frozen test split of {len(test)} images"
            return EvaluationPlan(EvaluationKind.FROZEN_TEST, train, test, True, text)
    empty = np.array([], dtype=np.int64)
    text = "cross-validation" + (" (the test split lacks a label)" if len(test) else "")
    return EvaluationPlan(EvaluationKind.CROSS_VALIDATION, everything, empty, False, text)


def _fitted(heads, samples, spec, representation) -> FittedModel:
    head = heads.serving()
    metadata = {
        "C": [float(h.C_) for h in heads.heads],
        "thresholds": {
            name: round(float(t), 4) for name, t in zip(heads.labels, heads.thresholds, strict=True)
        },
        "n_train": len(samples),
    }
    result = TrainResult(Strategy.LINEAR.value, head, list(heads.labels), metadata)
    return FittedModel(
        Strategy.LINEAR.value,
        result,
        list(samples),
        representation,
        spec.feature_dim,
        width(representation, spec),
    )


def _answers(samples: Sequence[Sample], proba: np.ndarray) -> list[dict]:
    """Each scored picture's labels and probabilities, for the results page and its thresholds."""
    return [
        {"key": s.key, "labels": list(s.labels), "probabilities": [round(float(p), 4) for p in row]}
        for s, row in zip(samples[:MAX_STORED_PREDICTIONS], proba, strict=False)
    ]


def train_multilabel(
    samples: Sequence[Sample],
    out_dir: Path,
    *,
    labels: Sequence[str],
    backbone: str = DEFAULT_BACKBONE,
    strategy: str = "auto",
    cache=None,
    seed: int = 0,
    device: str = "auto",
    fingerprint: str = "",
    on_progress: ReportFn | None = None,
    extractor=None,
    pretrained: bool = True,
) -> TrainOutcome:
    """Train a multi-label model version and write its artifact to `out_dir`.

    Args:
        samples: pictures whose `labels` say which labels each has (empty: none of them, as reviewed
            by a person); `split` "test" marks the frozen evaluation split.
        labels: the label names in output order.
        strategy: "auto" or "linear" (the others are refused).
        backbone, cache, seed, device, fingerprint, on_progress, extractor, pretrained: as in
            pipeline.train_model.
    Returns:
        TrainOutcome; metrics hold per-label precision, recall, F1 and average precision, the mean
        average precision, and each scored picture's probabilities.
    Raises:
        TrainingError: a label with too few pictures with or without it, an unknown label or
            strategy, or nothing readable.
    """
    started = time.perf_counter()
    asked = parse_strategy(strategy)
    if asked not in (Strategy.AUTO, Strategy.LINEAR):
        raise TrainingError(
            f"multi-label projects train linear heads only; the {asked.value} strategy is not built"
        )
    labels = list(labels)
    unknown = sorted({name for s in samples for name in s.labels} - set(labels))
    if unknown:
        raise TrainingError(f"labels {unknown} are not among the model's labels {labels}")
    spec = get_backbone(backbone)
    if extractor is None:
        from .features import Extractor

        extractor = Extractor(spec, device=device, pretrained=pretrained)
    spec = dataclasses.replace(spec, preprocessing=extractor.preprocessing)
    samples = list(samples)
    check_counts(label_matrix(samples, labels), labels)
    progress = Progress(on_progress, STAGES)

    features = extract(extractor, samples, cache, progress.step("extract"))
    samples = [s for s in samples if s.key in features.vectors]
    if not samples:
        raise TrainingError("none of the images could be read; " + _first_failures(features.failed))
    Y = label_matrix(samples, labels)
    check_counts(Y, labels)
    representation = Representation.DEPTHS.value if spec.taps else Representation.LAST.value
    X = np.stack([features.vectors[s.key] for s in samples]).astype(np.float32)[
        :, : width(representation, spec)
    ]
    plan = plan_multilabel(samples, Y)

    fit_started = time.perf_counter()
    heads = fit_multilabel(
        X[plan.train_idx], Y[plan.train_idx], labels, seed=seed, on_progress=progress.step("fit")
    )
    evaluate = progress.step("evaluate")
    if len(plan.test_idx):
        scored = [samples[i] for i in plan.test_idx]
        proba, truth = heads.predict_proba(X[plan.test_idx]), Y[plan.test_idx]
    else:
        scored, proba, truth = samples, out_of_fold(heads), Y
    metrics = {"n": len(scored)}
    if proba is not None:
        metrics.update(scores(truth, proba, heads.thresholds))
        for row, name in zip(metrics["per_label"], labels, strict=True):
            row["label"] = name
        metrics["test_predictions" if len(plan.test_idx) else "oof_predictions"] = _answers(scored, proba)
    evaluate(1.0, f"scored on {len(scored)} images")
    if plan.refit:
        heads = fit_multilabel(X, Y, labels, seed=seed, on_progress=progress.step("refit"))
    final = _fitted(heads, samples, spec, representation)

    progress.step("analyse")(0.0, "checking the data for wrong labels and copies")
    keys = [s.key for s in samples]
    oof = out_of_fold(heads)
    mislabeled = (
        [] if oof is None else [{**f, "key": keys[f["index"]]} for f in find_mislabeled(oof, Y, labels)]
    )
    findings, detector = data_findings(final, X, features, plan, samples, seed=seed)
    findings["mislabeled"] = mislabeled[:MAX_FINDINGS]
    fit_s = time.perf_counter() - fit_started

    export_started = time.perf_counter()
    progress.step("export")(0.0, "exporting the model")
    staging = Path(out_dir).parent / f".{Path(out_dir).name}.onnx"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        onnx_path = export(final, extractor, spec, features.vectors, staging / ONNX_FILE)
        progress.step("write")(0.0, "writing the artifact")
        thresholds = dict(final.result.metadata["thresholds"])
        metrics.update(
            {
                "task_type": MULTI_LABEL,
                "evaluation": plan.description,
                "evaluation_kind": plan.kind.value,
                "strategy": final.strategy,
                "strategy_reason": "linear: multi-label projects train a head per label",
                "representation": representation,
                "backbone": spec.name,
                "device": extractor.device,
                "engine": {"precision": str(extractor.choice.precision), "runtime": extractor.choice.runtime},
                "labels": labels,
                "thresholds": thresholds,
                "n_train": len(samples),
                "n_val": len(scored),
                "training": final.result.metadata,
                "skipped": [{"key": k, "error": e} for k, e in sorted(features.failed.items())],
                "timings": _timings(features, fit_s, export_started, started),
                **findings,
            }
        )
        manifest = new_manifest(
            backbone={"name": spec.name, "weights_id": spec.weights_id, "feature_dim": spec.feature_dim},
            labels=labels,
            strategy=final.strategy,
            preprocessing=spec.preprocessing.to_dict(),
            metrics={k: metrics[k] for k in _MANIFEST_METRICS if k in metrics},
            fingerprint=fingerprint,
            task_type=MULTI_LABEL,
            thresholds=thresholds,
        )
        path = write_artifact(
            Path(out_dir),
            manifest=manifest,
            arrays=head_arrays(final.head, detector),
            files={ONNX_FILE: onnx_path},
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress.finish("done")
    return TrainOutcome(path=path, metrics=metrics, manifest=manifest, test_samples=scored)


_MANIFEST_METRICS = (
    "per_label", "mean_average_precision", "macro_f1", "micro_f1", "exact_match", "n", "evaluation",
    "evaluation_kind", "strategy", "representation", "n_train", "n_val", "engine",
)  # fmt: skip
