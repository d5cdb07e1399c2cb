"""The analyse step of a training or an audit: what a person should check in their data (likely
mislabeled images, copies, outliers, train/test leakage) and the "none of these" detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .audit import HASH_BITS, find_leakage, find_mislabeled, find_near_duplicates
from .evaluation import kfold_evaluate
from .heads import LinearHead
from .unknown import UnknownDetector

if TYPE_CHECKING:  # pragma: no cover
    from .data import Sample
    from .steps import EvaluationPlan, Extracted, FittedModel

# Findings kept per kind in the metrics (the site lists them; more than this nobody reviews).
MAX_FINDINGS = 200


def analyse(
    final: FittedModel,
    features: Extracted,
    labels: Sequence[str],
    plan: EvaluationPlan,
    samples: Sequence[Sample],
    *,
    mirrored: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    limit: int | None = MAX_FINDINGS,
) -> tuple[dict, UnknownDetector]:
    """What a person should check in their data, and the "none of these" detector.

    Args:
        final: the serving model.
        features: the extracted backbone features and perceptual hashes.
        labels: label names in output order.
        plan: the evaluation plan (its test rows are checked for leakage from the training rows).
        samples: the readable training images, in plan row order.
        mirrored: vectors of the mirror images the serving model also learned from, by key.
        seed: seed of any folds.
        limit: most findings kept per kind (None: all).
    Returns:
        ({mislabeled, near_duplicates, outliers, leakage}, fitted UnknownDetector); each finding names
        images by key, most suspicious first.
    """
    labels = list(labels)
    X = final.features(final.samples, features.vectors)
    y = np.array([labels.index(s.label) for s in final.samples])
    keys = [s.key for s in final.samples]
    oof = _out_of_fold(final, X, y, labels, seed)
    mislabeled = [{**item, "key": keys[item["index"]]} for item in find_mislabeled(oof, y, labels)]
    findings, detector = data_findings(
        final, X, features, plan, samples, mirrored=mirrored, seed=seed, limit=limit
    )
    return {"mislabeled": mislabeled[:limit], **findings}, detector


def data_findings(
    final: FittedModel,
    X: np.ndarray,
    features: Extracted,
    plan: EvaluationPlan,
    samples: Sequence[Sample],
    *,
    mirrored: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    limit: int | None = MAX_FINDINGS,
) -> tuple[dict, UnknownDetector]:
    """What does not depend on the labels: copies, train/test leakage, outliers, and the "none of
    these" detector; single-label and multi-label trainings share it.

    Args:
        final, features, plan, samples, mirrored, seed, limit: as in `analyse`.
        X: what the serving model's head reads of final.samples.
    Returns:
        ({near_duplicates, outliers, leakage}, fitted UnknownDetector).
    """
    vectors = features.vectors
    keys = [s.key for s in final.samples]
    # Copies are judged on the pretrained features, whatever the strategy: what a picture shows, not
    # what the adapted network learned to separate.
    pretrained = _last_layer(vectors, keys, final.feature_dim)
    duplicates = [
        {"a": a, "b": b, "similarity": round(sim, 4)}
        for a, b, sim in find_near_duplicates(pretrained, _hashes(keys, features.hashes), ids=keys)
    ]
    leaks = []
    if len(plan.test_idx):
        train = [samples[i].key for i in plan.train_idx]
        test = [samples[i].key for i in plan.test_idx]
        found = find_leakage(
            _last_layer(vectors, train, final.feature_dim),
            _hashes(train, features.hashes),
            _last_layer(vectors, test, final.feature_dim),
            _hashes(test, features.hashes),
        )
        leaks = [{"train": train[i], "test": test[j], "similarity": round(s, 4)} for i, j, s in found]
    # The detector reads the last layer's features (see UnknownDetector) of every image and of every
    # view of it the model learned from.
    # Served features start with the last layer's: the adapted network's for partial / full.
    served = X[:, : final.feature_dim]
    row = {k: i for i, k in enumerate(keys)}
    views = [k for k in keys if k in (mirrored or {})] if final.adapted is None else []
    reference = np.concatenate(
        [served, *([np.stack([mirrored[k][: final.feature_dim] for k in views])] if views else [])]
    )
    groups = np.concatenate([np.arange(len(keys)), np.array([row[k] for k in views], dtype=np.int64)])
    detector = UnknownDetector(random_state=seed).fit(reference, groups=groups)
    held_out = detector.train_scores_
    # The same rule as "none of these" for a new picture: about 1 - KNOWN_QUANTILE of a project's own
    # images are listed, most unusual first (held-out scores crowd together in a small set, so a
    # far-out fence above them missed even a plain blue square among 83 insect photos).
    unusual = np.flatnonzero(held_out > detector.threshold_)
    outliers = [
        {"key": keys[i], "label": _label_text(final.samples[i]), "score": round(float(held_out[i]), 4)}
        for i in unusual[np.argsort(-held_out[unusual], kind="stable")]
    ]
    findings = {"near_duplicates": duplicates[:limit], "outliers": outliers[:limit], "leakage": leaks[:limit]}
    return findings, detector


def _label_text(sample: Sample) -> str:
    return sample.label or ", ".join(sample.labels)


def _last_layer(vectors: dict[str, np.ndarray], keys: Sequence[str], feature_dim: int) -> np.ndarray:
    return np.stack([vectors[k][:feature_dim] for k in keys]).astype(np.float32)


def _hashes(keys: Sequence[str], hashes: dict[str, np.ndarray]) -> np.ndarray:
    # An image whose hash could not be taken (read once, unreadable now) gets all-zero bits: half a
    # typical hash away from anything, so it pairs with nothing.
    empty = np.zeros(HASH_BITS, dtype=np.uint8)
    return np.stack([np.asarray(hashes.get(k, empty), dtype=np.uint8) for k in keys])


def _out_of_fold(final: FittedModel, X, y, labels, seed: int) -> np.ndarray:
    """Calibrated probabilities for every training image from heads that never saw it."""
    from scipy.special import softmax

    oof = getattr(final.head, "oof_decision_", None)
    if oof is not None and len(oof) >= len(y):
        # The head's own C search already answered every row out of fold; originals come first.
        return softmax(oof[: len(y)], axis=1)
    # Heads of the adapted strategies have no C search: cross-validate a head with their C.
    _metrics, proba = kfold_evaluate(
        X, y, labels, seed=seed, make_head=lambda: LinearHead(C=final.head.C_, random_state=seed)
    )
    return proba
