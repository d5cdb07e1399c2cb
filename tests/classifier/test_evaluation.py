"""evaluate(), holdout_split() and kfold_evaluate() checked against small hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from classifier.errors import TrainingError
from classifier.evaluation import evaluate, expected_calibration_error, holdout_split, kfold_evaluate

LABELS = ["ants", "bees", "wasps"]
# Six samples; true: a a b b c c; predicted (argmax): a b b b c a.
Y = ["ants", "ants", "bees", "bees", "wasps", "wasps"]
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.1, 0.8],
        [0.5, 0.1, 0.4],
    ]
)


def test_it_computes_accuracy_and_the_confusion_matrix():
    m = evaluate(Y, P, LABELS)
    assert m["n"] == 6
    assert m["labels"] == LABELS
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # Recalls 1/2, 2/2, 1/2.
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)


def test_it_computes_per_class_precision_recall_f1():
    pc = evaluate(Y, P, LABELS)["per_class"]
    assert pc["ants"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert pc["bees"]["precision"] == pytest.approx(2 / 3)
    assert pc["bees"]["recall"] == 1.0
    assert pc["bees"]["f1"] == pytest.approx(0.8)
    assert pc["wasps"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})


def test_it_computes_top_k_log_loss_and_accepts_indices():
    m = evaluate([0, 0, 1, 1, 2, 2], P, LABELS, top_k=(1, 2, 3))
    # Rank of the true class: 1, 2, 1, 1, 1, 2 -> top-2 catches all.
    assert m["top_k_accuracy"] == pytest.approx({1: 4 / 6, 2: 1.0, 3: 1.0})
    expected = -np.mean(np.log([0.7, 0.3, 0.8, 0.5, 0.8, 0.4]))
    assert m["log_loss"] == pytest.approx(expected)
    assert evaluate(Y, P, LABELS)["top_k_accuracy"] == pytest.approx({1: 4 / 6, 2: 1.0})


def test_it_computes_expected_calibration_error():
    # Confidences 0.7 0.6 0.8 0.5 0.8 0.5 in bins (15 equal widths, right-closed):
    # 0.5 -> bin 7 (both wrong... sample 3 right, sample 5 wrong), 0.6 -> bin 8, 0.7 -> bin 10, 0.8 -> bin 11.
    y = np.array([0, 0, 1, 1, 2, 2])
    conf = P.max(axis=1)
    correct = P.argmax(axis=1) == y
    bins = {}
    for c, ok in zip(conf, correct, strict=True):
        bins.setdefault(math.ceil(c * 15) - 1, []).append((c, ok))
    by_hand = sum(
        len(b) / 6 * abs(np.mean([ok for _, ok in b]) - np.mean([c for c, _ in b])) for b in bins.values()
    )
    assert expected_calibration_error(y, P) == pytest.approx(by_hand)
    assert evaluate(y, P, LABELS)["ece"] == pytest.approx(by_hand)
    perfect = np.eye(3)[y]
    assert expected_calibration_error(y, perfect) == 0.0


def test_its_metrics_are_json_serialisable():
    json.dumps(evaluate(Y, P, LABELS))


def test_it_rejects_mismatched_shapes_and_unknown_labels():
    with pytest.raises(ValueError):
        evaluate(Y, P[:, :2], LABELS)
    with pytest.raises(ValueError):
        evaluate(["ants"] * 5 + ["hornets"], P, LABELS)


def test_holdout_split_is_stratified_disjoint_and_deterministic():
    y = np.array([0] * 50 + [1] * 10 + [2] * 2 + [3])
    tr, te = holdout_split(y, test_fraction=0.2, seed=1)
    assert len(np.intersect1d(tr, te)) == 0
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(len(y)))
    assert np.bincount(y[te], minlength=4).tolist() == [10, 2, 1, 0]
    tr2, te2 = holdout_split(y, test_fraction=0.2, seed=1)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, holdout_split(y, test_fraction=0.2, seed=2)[1])


def test_kfold_evaluate_predicts_every_sample_out_of_fold():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    X = np.abs(rng.normal(0, 1, (60, 16)) + np.eye(3)[y] @ rng.normal(0, 3, (3, 16)))
    calls = []
    metrics, oof = kfold_evaluate(
        X, y, ["a", "b", "c"], k=4, seed=0, on_progress=lambda f, m: calls.append(f)
    )
    assert oof.shape == (60, 3)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)
    assert metrics["folds"] == 4 and metrics["n"] == 60
    assert metrics["accuracy"] > 0.8
    assert calls == [0.25, 0.5, 0.75, 1.0]


def test_kfold_evaluate_refuses_labels_with_one_image():
    X = np.ones((5, 3))
    with pytest.raises(TrainingError):
        kfold_evaluate(X, [0, 0, 0, 0, 1], ["a", "b"])
