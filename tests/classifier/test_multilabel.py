"""Multi-label heads (classifier/multilabel.py): a calibrated binary head per label, thresholds where F1
is best out of fold, and scores checked against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from classifier.errors import TrainingError
from classifier.multilabel import best_f1_threshold, fit_multilabel, scores


def _synthetic(n: int, seed: int):
    """Pictures with any of three labels (or none); each label lights up its own features."""
    rng = np.random.default_rng(seed)
    Y = rng.random((n, 3)) < 0.35
    X = rng.normal(0, 1, (n, 24)) + 0.5
    for j in range(3):
        X[:, 8 * j : 8 * j + 8] += 2.5 * Y[:, [j]]
    return X, Y


def test_the_best_threshold_is_where_f1_is_highest_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.random(40) < 0.3
        p = np.clip(truth * 0.3 + rng.random(40) * 0.7, 0, 1)
        chosen = best_f1_threshold(truth, p)
        best = max(f1_score(truth, p >= t, zero_division=0) for t in np.unique(p))
        assert f1_score(truth, p >= chosen, zero_division=0) == pytest.approx(best)
    assert best_f1_threshold(np.zeros(5, bool), np.linspace(0, 1, 5)) == 0.5


def test_heads_find_each_label_on_its_own_including_none_and_several():
    X, Y = _synthetic(240, 1)
    heads = fit_multilabel(X, Y, ["a", "b", "c"])
    X_test, Y_test = _synthetic(200, 2)
    P = heads.predict_proba(X_test)
    assert P.shape == (200, 3) and not np.allclose(P.sum(axis=1), 1)  # independent, not a softmax
    said = heads.predict(X_test)
    assert (said == Y_test).mean() > 0.95
    assert (~Y_test.any(axis=1)).any() and (said[~Y_test.any(axis=1)].sum(axis=1) == 0).mean() > 0.8
    assert ((Y_test.sum(axis=1) >= 2) & (said.sum(axis=1) >= 2)).any()
    assert all(0 < t < 1 for t in heads.thresholds)


def test_scores_agree_with_scikit_learn():
    rng = np.random.default_rng(3)
    Y = rng.random((60, 4)) < 0.4
    Y[:, 3] = False  # a label nobody has: no average precision, left out of the mean
    P = np.clip(Y * 0.4 + rng.random((60, 4)) * 0.6, 0, 1)
    thresholds = np.array([0.5, 0.6, 0.4, 0.5])
    result = scores(Y, P, thresholds)
    said = thresholds <= P
    for j, row in enumerate(result["per_label"][:3]):
        assert row["precision"] == pytest.approx(precision_score(Y[:, j], said[:, j]))
        assert row["recall"] == pytest.approx(recall_score(Y[:, j], said[:, j]))
        assert row["f1"] == pytest.approx(f1_score(Y[:, j], said[:, j]))
        assert row["average_precision"] == pytest.approx(average_precision_score(Y[:, j], P[:, j]))
    assert result["per_label"][3]["average_precision"] is None
    assert result["mean_average_precision"] == pytest.approx(
        np.mean([average_precision_score(Y[:, j], P[:, j]) for j in range(3)])
    )
    assert result["micro_f1"] == pytest.approx(f1_score(Y, said, average="micro"))


def test_a_label_with_too_few_pictures_on_one_side_is_refused_with_its_name():
    X, Y = _synthetic(30, 4)
    Y[:, 1] = False
    Y[0, 1] = True
    with pytest.raises(TrainingError, match="'b' has 1 with it"):
        fit_multilabel(X, Y, ["a", "b", "c"])
    with pytest.raises(ValueError):
        fit_multilabel(X, Y[:, :2], ["a", "b", "c"])


def test_a_head_judges_each_c_by_the_score_it_is_given():
    from classifier.heads import LinearHead

    X, Y = _synthetic(120, 5)
    y = Y[:, 0].astype(int)
    grid = (0.01, 1.0, 100.0)
    # A score that prefers heavier regularisation, whatever the answers: the smallest C wins.
    least = LinearHead(c_grid=grid, c_score=lambda p, y: -float(np.abs(p[:, 1] - 0.5).mean())).fit(X, y)
    assert least.C_ == 0.01
    most = LinearHead(c_grid=grid, c_score=lambda p, y: float(np.abs(p[:, 1] - 0.5).mean())).fit(X, y)
    assert most.C_ == 100.0
    assert most.oof_decision_ is not None  # the thresholds read the chosen C's out-of-fold answers


def test_the_serving_head_answers_exactly_as_the_heads_and_survives_its_arrays():
    from classifier.multilabel import SigmoidHead

    X, Y = _synthetic(90, 6)
    heads = fit_multilabel(X, Y, ["a", "b", "c"])
    serving = heads.serving()
    np.testing.assert_allclose(serving.predict_proba(X), heads.predict_proba(X), atol=1e-9)
    again = SigmoidHead.from_arrays(serving.to_arrays())
    np.testing.assert_allclose(again.predict_proba(X), heads.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(again.thresholds, heads.thresholds)
    assert again.labels == ["a", "b", "c"] and again.activation == "sigmoid"


def test_planted_wrong_labels_are_found_whether_given_or_left_out():
    from classifier.multilabel import find_mislabeled, out_of_fold

    X, Y = _synthetic(160, 8)
    given = Y.copy()
    planted = {(3, 0), (17, 1), (40, 2), (77, 0)}
    for i, j in planted:
        given[i, j] = not given[i, j]
    heads = fit_multilabel(X, given, ["a", "b", "c"])
    found = find_mislabeled(out_of_fold(heads), given, ["a", "b", "c"])
    flagged = {(f["index"], "abc".index(f["label"])) for f in found}
    assert len(planted & flagged) >= 3, found
    assert len(flagged) <= 2 * len(planted), found
    for f in found:
        assert f["given"] == ("present" if given[f["index"], "abc".index(f["label"])] else "absent")
