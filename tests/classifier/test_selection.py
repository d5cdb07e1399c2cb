"""Which pictures to label next (classifier/selection.py): uncertain, typical and unlike what is labelled."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.selection import order_to_label, typicality, uncertainty


def _cloud(rng, centre, n, spread=0.02):
    return centre + spread * rng.standard_normal((n, len(centre)))


def test_every_unlabeled_picture_comes_once_and_no_labelled_one_does():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8))
    labelled = np.zeros(60, dtype=bool)
    labelled[::7] = True
    for unsure in (None, uncertainty(rng.dirichlet([1, 1, 1], 60))):
        for ranked in (0, 5, 500):
            order = order_to_label(X, labelled, unsure, ranked=ranked)
            assert sorted(order.tolist()) == np.flatnonzero(~labelled).tolist()
    assert order_to_label(X, np.ones(60, dtype=bool)).size == 0
    with pytest.raises(ValueError):
        order_to_label(X, np.zeros(59, dtype=bool))


def test_a_batch_spreads_over_groups_instead_of_taking_near_copies_of_one_confusing_picture():
    rng = np.random.default_rng(1)
    centres = np.eye(4, 16) * 3
    X = np.vstack([_cloud(rng, c, 20) for c in centres])
    group = np.repeat(np.arange(4), 20)
    # The model is unsure of every picture of group 0 and fairly sure of the rest.
    probabilities = np.where(group[:, None] == 0, [0.5, 0.5], [0.9, 0.1])
    first = order_to_label(X, np.zeros(len(X), dtype=bool), uncertainty(probabilities))[:4]
    assert sorted(group[first]) == [0, 1, 2, 3]
    assert group[first[0]] == 0  # the unsure group is asked about first
    by_uncertainty_alone = np.argsort(-uncertainty(probabilities), kind="stable")[:4]
    assert set(group[by_uncertainty_alone]) == {0}  # what the diversity term prevents


def test_before_any_model_the_first_picture_stands_for_many():
    rng = np.random.default_rng(2)
    crowd = _cloud(rng, np.eye(1, 16)[0] * 3, 50, spread=0.3)
    oddballs = rng.standard_normal((3, 16)) * 3
    X = np.vstack([crowd, oddballs])
    order = order_to_label(X, np.zeros(len(X), dtype=bool))
    assert order[0] < 50
    typical = typicality(X / np.linalg.norm(X, axis=1, keepdims=True))
    assert typical[50:].max() < np.median(typical[:50])


def test_pictures_like_labelled_ones_wait():
    rng = np.random.default_rng(3)
    a, b = _cloud(rng, np.eye(2, 16)[0] * 3, 20), _cloud(rng, np.eye(2, 16)[1] * 3, 20)
    X = np.vstack([a, b])
    labelled = np.zeros(40, dtype=bool)
    labelled[:10] = True  # half of group a is labelled already
    first = order_to_label(X, labelled)[0]
    assert first >= 20


def test_typicality_matches_a_brute_force_reference():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 6))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    mine = typicality(X, neighbours=5)
    similarity = X @ X.T
    reference = np.array([np.sort(np.delete(row, i))[-5:].mean() for i, row in enumerate(similarity)])
    scaled = 0.05 + 0.95 * (reference - reference.min()) / (reference.max() - reference.min())
    np.testing.assert_allclose(mine, scaled, atol=1e-5)
    assert np.argsort(mine).tolist() == np.argsort(reference).tolist()


def test_uncertainty_is_one_for_a_coin_toss_and_zero_for_a_sure_answer():
    np.testing.assert_allclose(uncertainty(np.array([[0.5, 0.5], [1.0, 0.0]])), [1, 0])
    np.testing.assert_allclose(uncertainty(np.array([[0.2, 0.5, 0.3]])), [0.8])
