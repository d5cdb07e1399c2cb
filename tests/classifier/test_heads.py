"""LinearHead against the estimator contract, its calibration and its exact export formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.base import clone

from classifier.errors import TrainingError
from classifier.evaluation import expected_calibration_error
from classifier.heads import LinearHead, l2_normalize


def blobs(n_per_class=40, n_classes=3, dim=64, sep=3.0, seed=0):
    """Gaussian blobs of positive, ReLU-like features, as a pooled CNN layer gives."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, dim)) * sep / np.sqrt(dim)
    X = np.concatenate([c + rng.normal(0, 1, (n_per_class, dim)) / np.sqrt(dim) * 2 for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return np.abs(X) + 0.05, y


def test_it_follows_the_estimator_contract():
    X, y = blobs()
    head = LinearHead()
    assert head.fit(X, y) is head
    assert list(head.classes_) == [0, 1, 2]
    assert head.coef_.shape == (3, X.shape[1])
    assert head.intercept_.shape == (3,)
    assert head.mean_.shape == head.scale_.shape == (X.shape[1],)
    assert head.temperature_ > 0 and head.C_ > 0
    proba = head.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.mean(head.predict(X) == y) > 0.9
    assert head.get_params()["class_weight"] is None
    assert clone(head).set_params(C=0.5).get_params()["C"] == 0.5


def test_it_accepts_string_labels():
    X, y = blobs(n_classes=2)
    names = np.array(["bees", "ants"])[y]
    head = LinearHead().fit(X, names)
    assert list(head.classes_) == ["ants", "bees"]
    assert set(head.predict(X)) <= {"ants", "bees"}
    assert np.mean(head.predict(X) == names) > 0.9


def test_it_is_deterministic_for_a_random_state():
    X, y = blobs(seed=3)
    a = LinearHead(random_state=7).fit(X, y)
    b = LinearHead(random_state=7).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_it_chooses_c_from_the_training_data_only():
    X, y = blobs(seed=1)
    X_other, _ = blobs(seed=2)
    a = LinearHead().fit(X, y)
    # Predicting on other data between fits must not change what a refit picks.
    a.predict_proba(X_other)
    b = LinearHead().fit(X, y)
    assert a.C_ == b.C_ and a.C_ in LinearHead().c_grid
    assert set(a.cv_scores_) == set(LinearHead().c_grid)
    # One-standard-error rule: the chosen C is the most regularised one within reach of the best score.
    assert min(a.cv_scores_, key=a.cv_scores_.get) >= a.C_
    assert all(a.cv_scores_[c] > a.cv_scores_[a.C_] for c in a.cv_scores_ if c < a.C_)


def test_it_uses_a_given_c_without_searching():
    X, y = blobs()
    head = LinearHead(C=0.123, calibrate=False).fit(X, y)
    assert head.C_ == 0.123 and head.temperature_ == 1.0 and head.cv_log_loss_ is None


def test_it_falls_back_without_cross_validation_on_tiny_data():
    X, y = blobs(n_per_class=1, n_classes=2)
    head = LinearHead().fit(X, y)
    assert head.n_folds_ == 0 and head.temperature_ == 1.0
    assert list(head.predict(X)) == [0, 1]


def test_it_refuses_a_single_class():
    X, _ = blobs(n_classes=1)
    with pytest.raises(TrainingError):
        LinearHead().fit(X, np.zeros(len(X), dtype=int))


def test_it_round_trips_through_arrays():
    X, y = blobs()
    names = np.array(["a", "b", "c"])[y]
    head = LinearHead().fit(X, names)
    arrays = head.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    again = LinearHead.from_arrays(arrays)
    np.testing.assert_array_equal(again.predict_proba(X), head.predict_proba(X))
    assert list(again.classes_) == ["a", "b", "c"]


@pytest.mark.parametrize("l2", [True, False])
def test_it_is_exactly_the_documented_formula(l2):
    X, y = blobs()
    head = LinearHead(l2_normalize=l2).fit(X, y)
    u = l2_normalize(X) if l2 else X
    by_hand = softmax(
        ((u - head.mean_) / head.scale_ @ head.coef_.T + head.intercept_) / head.temperature_, axis=1
    )
    W, b = head.as_affine()
    folded = softmax(u @ W.T + b, axis=1)
    np.testing.assert_allclose(by_hand, head.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(folded, head.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(softmax(head.decision_function(X), axis=1), head.predict_proba(X), atol=1e-12)


def test_it_works_with_more_dimensions_than_samples():
    # The row-space reduction must give the same model as solving in the full space.
    X, y = blobs(n_per_class=10, dim=300)
    reduced = LinearHead(C=1.0, calibrate=False).fit(X, y)
    Xb = np.concatenate([X, X[:1]])  # still fewer rows than columns: same path, sanity check only
    assert reduced.predict_proba(Xb).shape == (len(Xb), 3)
    # Objective gradient at the solution vanishes in the full space too: check the stationarity condition.
    u = (l2_normalize(X) - reduced.mean_) / reduced.scale_
    p = softmax(u @ reduced.coef_.T + reduced.intercept_, axis=1)
    Y = np.eye(3)[y]
    w = len(y) / (3 * np.bincount(y))[y]
    grad = reduced.C_ * ((w[:, None] * (p - Y)).T @ u) + reduced.coef_
    assert np.abs(grad).max() < 1e-3 * max(1.0, np.abs(reduced.coef_).max())


def test_calibration_does_not_worsen_ece_on_an_overconfident_case():
    # Weak regularisation on few, noisy, high-dimensional samples: raw probabilities are overconfident.
    rng = np.random.default_rng(0)
    n, dim = 120, 200
    y = rng.integers(0, 2, n)
    X = rng.normal(0, 1, (n, dim)) + np.outer(y * 2 - 1, np.r_[np.full(5, 0.6), np.zeros(dim - 5)])
    y_test = rng.integers(0, 2, 2000)
    X_test = rng.normal(0, 1, (2000, dim)) + np.outer(
        y_test * 2 - 1, np.r_[np.full(5, 0.6), np.zeros(dim - 5)]
    )
    raw = LinearHead(C=100.0, calibrate=False, l2_normalize=False).fit(X, y)
    cal = LinearHead(C=100.0, calibrate=True, l2_normalize=False).fit(X, y)
    ece_raw = expected_calibration_error(y_test, raw.predict_proba(X_test))
    ece_cal = expected_calibration_error(y_test, cal.predict_proba(X_test))
    assert cal.temperature_ > 1.0
    assert ece_cal <= ece_raw
    # Temperature scaling never changes the ranking.
    np.testing.assert_array_equal(raw.predict(X_test), cal.predict(X_test))


def test_it_keeps_augmented_copies_of_an_image_in_one_fold():
    from classifier.heads import stratified_folds

    y = np.repeat([0, 1], 10)
    groups = np.r_[np.arange(10), np.arange(10)]  # rows i and i + 10 are one image and its mirror
    y2 = np.r_[y[:10], y[:10]]
    folds = stratified_folds(y2, 5, seed=0, groups=groups)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    for fold in folds:
        outside = np.setdiff1d(np.arange(20), fold)
        assert not set(groups[fold]) & set(groups[outside])


def test_it_fits_with_groups():
    X, y = blobs(n_per_class=12, n_classes=2)
    mirrored = X[:, ::-1].copy()
    groups = np.r_[np.arange(len(y)), np.arange(len(y))]
    head = LinearHead().fit(np.r_[X, mirrored], np.r_[y, y], groups=groups)
    assert head.n_folds_ == 5
    with pytest.raises(ValueError):
        LinearHead().fit(X, y, groups=groups)


def test_it_solves_the_same_problem_as_scikit_learns_logistic_regression():
    # LinearHead keeps its own solver because its C search (warm starts along the grid, a row-space
    # reduction when there are fewer images than features) runs far faster; at a fixed C, without its
    # extras, it must find scikit-learn's model.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 40)
    X = rng.normal(0, 1, (120, 10)) + np.eye(3, 10)[y] * 1.5
    head = LinearHead(C=0.7, calibrate=False, l2_normalize=False, standardize=False, class_weight=None).fit(
        X, y
    )
    Xs = (X - head.mean_) / head.scale_  # the head's own centring and global scale
    reference = LogisticRegression(C=0.7, tol=1e-10, max_iter=10_000).fit(Xs, y)
    np.testing.assert_allclose(head.predict_proba(X), reference.predict_proba(Xs), atol=1e-4)
