"""Data checks from cached features: planted mislabels, planted duplicates, leakage, unknown inputs."""

from __future__ import annotations

import numpy as np

from classifier import analysis
from classifier.analysis import UnknownDetector, leakage, likely_mislabeled, near_duplicates
from classifier.evaluation import kfold_evaluate


def clusters(n_per_class=40, n_classes=3, dim=48, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, dim)) * 2.0
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = np.abs(centres[y] + rng.normal(0, 0.6, (len(y), dim)))
    return X, y


def test_it_finds_planted_mislabels():
    X, y = clusters()
    planted = [3, 50, 100]
    given = y.copy()
    given[planted] = (y[planted] + 1) % 3
    labels = ["ants", "bees", "wasps"]
    _, oof = kfold_evaluate(X, given, labels, k=5, seed=0)
    found = likely_mislabeled(oof, given, labels, threshold=0.8)
    assert {f["index"] for f in found} == set(planted)
    by_index = {f["index"]: f for f in found}
    assert by_index[3] == {
        "index": 3,
        "given": "bees",
        "predicted": "ants",
        "confidence": by_index[3]["confidence"],
        "given_probability": by_index[3]["given_probability"],
    }
    confidences = [f["confidence"] for f in found]
    assert confidences == sorted(confidences, reverse=True) and min(confidences) >= 0.8


def test_it_finds_nothing_when_labels_agree():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert likely_mislabeled(proba, [0, 1, 1], ["a", "b"], threshold=0.8) == []
    assert [f["index"] for f in likely_mislabeled(proba, [0, 1, 1], ["a", "b"], threshold=0.55)] == [2]


def test_it_finds_planted_near_duplicates():
    X, _ = clusters(n_per_class=30)
    rng = np.random.default_rng(1)
    X = np.concatenate([X, X[[5, 40]] + rng.normal(0, 1e-3, (2, X.shape[1]))])  # rows 90, 91
    pairs = near_duplicates(X, threshold=0.999)
    assert {(i, j) for i, j, _ in pairs} == {(5, 90), (40, 91)}
    assert all(s >= 0.999 for *_, s in pairs)
    ids = [f"img{i}" for i in range(len(X))]
    assert {(a, b) for a, b, _ in near_duplicates(X, threshold=0.999, ids=ids)} == {
        ("img5", "img90"),
        ("img40", "img91"),
    }


def test_near_duplicates_are_the_same_in_small_blocks(monkeypatch):
    X, _ = clusters(n_per_class=20)
    X = np.concatenate([X, X[:7] * 1.0001])
    whole = near_duplicates(X, threshold=0.995)
    monkeypatch.setattr(analysis, "_BLOCK_ELEMENTS", 3 * len(X))  # three rows per block
    assert near_duplicates(X, threshold=0.995) == whole
    assert len(whole) >= 7


def test_it_finds_test_images_leaked_from_training():
    X, _ = clusters()
    train, test = X[:100], np.concatenate([X[100:], X[[7, 42]]])
    found = leakage(train, test, threshold=0.9999)
    assert {(i, j) for i, j, _ in found} == {(7, 20), (42, 21)}


def test_unknown_detector_flags_far_away_samples_and_few_familiar_ones():
    X, y = clusters(n_per_class=60)
    X_train, X_new = X[::2], X[1::2]
    rng = np.random.default_rng(5)
    far = np.abs(rng.normal(0, 1, (50, X.shape[1])) * 2.0 + 8.0 * rng.normal(0, 1, X.shape[1]))
    det = UnknownDetector().fit(X_train)
    assert det.is_unknown(far).mean() >= 0.95
    assert det.is_unknown(X_new).mean() <= 0.1
    assert det.score(far).min() > np.median(det.score(X_new))


def test_unknown_detector_round_trips_through_arrays():
    X, _ = clusters()
    det = UnknownDetector(k=3).fit(X)
    arrays = det.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    again = UnknownDetector.from_arrays(arrays)
    probe = X[:10] + 0.5
    np.testing.assert_allclose(again.score(probe), det.score(probe))
    assert again.threshold_ == det.threshold_


def test_unknown_detector_caps_its_reference_set():
    X, _ = clusters(n_per_class=100)
    det = UnknownDetector(max_reference=50).fit(X)
    assert det.reference_.shape == (50, X.shape[1])
