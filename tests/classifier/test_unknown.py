"""The "none of these" detector: far-away inputs flagged, the project's own kind left alone."""

from __future__ import annotations

import numpy as np

from classifier.unknown import UnknownDetector


def clusters(n_per_class=40, n_classes=3, dim=48, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, dim)) * 2.0
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = np.abs(centres[y] + rng.normal(0, 0.6, (len(y), dim)))
    return X, y


def test_it_flags_far_away_samples_and_few_familiar_ones():
    X, y = clusters(n_per_class=60)
    X_train, X_new = X[::2], X[1::2]
    rng = np.random.default_rng(5)
    far = np.abs(rng.normal(0, 1, (50, X.shape[1])) * 2.0 + 8.0 * rng.normal(0, 1, X.shape[1]))
    det = UnknownDetector().fit(X_train)
    assert det.is_unknown(far).mean() >= 0.95
    assert det.is_unknown(X_new).mean() <= 0.1
    assert det.score(far).min() > np.median(det.score(X_new))


def test_it_round_trips_through_arrays():
    X, _ = clusters()
    det = UnknownDetector(k=3).fit(X)
    arrays = det.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    again = UnknownDetector.from_arrays(arrays)
    probe = X[:10] + 0.5
    np.testing.assert_allclose(again.score(probe), det.score(probe))
    assert again.threshold_ == det.threshold_


def test_it_caps_its_reference_set():
    X, _ = clusters(n_per_class=100)
    det = UnknownDetector(max_reference=50).fit(X)
    assert det.reference_.shape == (50, X.shape[1])


def test_it_holds_out_an_image_with_its_views_when_calibrating():
    X, _ = clusters(n_per_class=40)
    views = X + np.random.default_rng(2).normal(0, 1e-4, X.shape)  # a near-identical view of each image
    groups = np.concatenate([np.arange(len(X)), np.arange(len(X))])
    det = UnknownDetector(k=3).fit(np.concatenate([X, views]), groups=groups)
    alone = UnknownDetector(k=3).fit(X)
    # Each image's own view would score it as perfectly familiar; held out with it, it is scored by
    # the other images (and their views), as an image of its kind arriving new would be.
    assert det.train_scores_.shape == (len(X),) and det.train_scores_.min() > 1e-3
    assert np.corrcoef(det.train_scores_, alone.train_scores_)[0, 1] > 0.9


def test_it_reads_the_last_layer_of_wider_served_features():
    X, _ = clusters()
    det = UnknownDetector().fit(X)
    wider = np.concatenate([X[:5], np.ones((5, 7))], axis=1)  # earlier blocks' outputs appended
    np.testing.assert_allclose(det.score(wider), det.score(X[:5]))
