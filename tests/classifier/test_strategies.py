"""Strategy rules shared by training and the pages: when to adapt the network, when labels are unbalanced."""

import pytest

from classifier.strategies import choose_strategy


def test_can_adapt_agrees_with_the_strategy_a_gpu_worker_picks():
    """Data health says "enough to adapt" from the same rule choose_strategy follows."""
    from classifier.strategies import can_adapt

    for smallest in (2, 29, 30, 49, 50, 200):
        for other in (smallest, 60, 500):
            counts = {"a": smallest, "b": other}
            picked, _ = choose_strategy(counts, "cuda")
            assert can_adapt(counts) == (picked != "linear"), counts


def test_imbalance_is_reported_above_three_to_one_only():
    from classifier.strategies import imbalance

    assert imbalance({"a": 8, "b": 8}) is None
    assert imbalance({"a": 9, "b": 3}) is None
    assert imbalance({"a": 10, "b": 3}) == pytest.approx(10 / 3)
    assert imbalance({"a": 10, "b": 0}) is None  # an empty label is not a ratio
