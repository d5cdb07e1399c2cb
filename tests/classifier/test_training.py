"""Strategy selection, the linear strategy, and adapting a (tiny, synthetic) network tail."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.errors import Cancelled, TrainingError
from classifier.fit import fit_linear
from classifier.strategies import choose_strategy


@pytest.mark.parametrize(
    ("counts", "device", "strategy"),
    [
        ({"ants": 5, "bees": 8}, "cpu", "linear"),
        ({"ants": 29, "bees": 500}, "cuda", "linear"),
        ({"a": 30, "b": 35, "c": 40}, "cuda", "partial"),
        ({"ants": 40, "bees": 40}, "cuda", "linear"),  # 80 images in all: too few whatever the spread
        ({"ants": 60, "bees": 60}, "cuda", "partial"),
        ({"ants": 121, "bees": 130}, "cpu", "linear"),
        ({"ants": 300, "bees": 310}, "cpu", "linear"),  # a CPU never adapts the network by itself
        ({"ants": 300, "bees": 300}, "cuda", "partial"),
        ({"ants": 999, "bees": 5000}, "cuda:0", "partial"),
        ({"ants": 1000, "bees": 5000}, "cuda:0", "full"),
        ({"ants": 5000, "bees": 5000}, "cpu", "linear"),
    ],
)
def test_it_chooses_the_strategy_by_images_per_label_and_device(counts, device, strategy):
    chosen, reason = choose_strategy(counts, device)
    assert chosen == strategy
    assert reason.startswith(f"{strategy}: ")
    assert str(min(counts.values())) in reason or str(sum(counts.values())) in reason


def test_it_explains_why_it_stays_linear():
    _, reason = choose_strategy({"ants": 12, "bees": 20}, "cpu")
    assert reason == "linear: 12 images per label at least; too few to adapt the network without overfitting"


def test_it_only_trains_the_head_on_cpu_unless_asked():
    for n in (10, 100, 1000, 100_000):
        assert choose_strategy({"a": n, "b": n}, "cpu")[0] == "linear"


@pytest.mark.parametrize(
    ("counts", "message"),
    [({"ants": 10}, "at least 2 labels"), ({"ants": 10, "bees": 1}, "'bees' has 1")],
)
def test_it_refuses_what_cannot_be_trained(counts, message):
    with pytest.raises(TrainingError, match=message):
        choose_strategy(counts, "cpu")


def _features(n=60, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = np.abs(rng.normal(0, 1, (n, dim)) + np.outer(y, np.r_[np.full(4, 2.0), np.zeros(dim - 4)]))
    return X, y


def test_fit_linear_returns_the_head_and_its_metadata():
    X, y = _features()
    calls = []
    result = fit_linear(
        X, np.array(["bees", "ants"])[y], ["bees", "ants"], on_progress=lambda f, m: calls.append(f)
    )
    assert result.strategy == "linear"
    assert result.labels == ["bees", "ants"]
    # Columns follow the given label order, not the alphabetical one.
    assert list(result.head.classes_) == ["bees", "ants"]
    assert result.head.predict_proba(X[:1]).shape == (1, 2)
    assert np.mean(result.head.predict(X) == np.array(["bees", "ants"])[y]) > 0.9
    meta = result.metadata
    assert meta["C"] == result.C and meta["cv_log_loss"] == result.cv_score
    assert meta["n_train"] == 60 and meta["fit_seconds"] > 0 and 0 < meta["cv_accuracy"] <= 1
    assert calls[0] == 0.0 and calls[-1] == 1.0


def test_fit_linear_lets_cancellation_through():
    X, y = _features()

    def cancel(fraction, message):
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        fit_linear(X, y, ["a", "b"], on_progress=cancel)


# -- partial / full: small synthetic networks -----------------------------------------------------------


def _separable_activations(n=160, amplitude=1.5, seed=0):
    """Trunk output [N, 8, 6, 6] whose class shows in which channel group carries a bright blob."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    acts = rng.normal(0, 1, (n, 8, 6, 6)).astype(np.float32)
    for i, cls in enumerate(y):
        acts[i, cls * 4 : cls * 4 + 4, 1:4, 1:4] += amplitude
    return acts, y


def _tiny_tail(seed=0):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_fit_partial_adapts_a_tail_beyond_what_a_linear_probe_reaches():
    torch = pytest.importorskip("torch")
    from classifier.finetune import fit_partial

    acts, y = _separable_activations(n=496, amplitude=0.7)
    train, fresh = slice(0, 96), slice(96, None)
    names = np.array(["left", "right"])
    tail = _tiny_tail()
    before = {k: v.clone() for k, v in tail.state_dict().items()}
    with torch.no_grad():
        probe = fit_linear(tail(torch.from_numpy(acts)).numpy()[train], y[train], list(names))
        probe_acc = np.mean(
            probe.head.predict(tail(torch.from_numpy(acts[fresh])).numpy()) == names[y[fresh]]
        )
    messages = []
    result = fit_partial(
        acts[train], y[train], tail, 16, labels=list(names), epochs=10, lr=1e-2, patience=3, seed=0,
        on_progress=lambda f, m: messages.append((f, m)),
    )  # fmt: skip
    with torch.no_grad():
        adapted_acc = np.mean(
            result.head.predict(tail(torch.from_numpy(acts[fresh])).numpy()) == names[y[fresh]]
        )
    # Measured: probe 0.89, adapted 0.93 on the 400 images neither saw.
    assert adapted_acc > 0.9 and adapted_acc > probe_acc
    assert result.strategy == "partial"
    assert result.features.shape == (96, 16)
    assert set(result.state_dict) == set(before)
    assert not torch.equal(result.state_dict["0.weight"], before["0.weight"])
    meta = result.metadata
    assert meta["inner_val_loss_best"] < meta["inner_val_loss_start"]
    assert meta["epochs_run"] >= 1 and meta["inner_val_size"] > 0 and 0.05 <= meta["temperature"] <= 20
    assert messages[-1][0] == 1.0
    assert all(0.0 <= f <= 1.0 for f, _ in messages)
    assert result.state_arrays()["0.weight"].shape == (16, 8, 3, 3)


def test_fit_partial_lets_cancellation_through():
    from classifier.finetune import fit_partial

    acts, y = _separable_activations(n=40)
    seen = []

    def cancel_after_first(fraction, message):
        seen.append(message)
        if "epoch" in message:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        fit_partial(acts, y, _tiny_tail(), 16, epochs=3, on_progress=cancel_after_first)


def test_fit_full_reports_its_cpu_estimate_first_and_trains():
    torch = pytest.importorskip("torch")
    from classifier.finetune import fit_full

    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 24)
    images = rng.normal(0, 0.5, (48, 3, 16, 16)).astype(np.float32)
    images[y == 1, 0] += 1.0  # class 1 is redder, whatever the crop or flip
    messages = []
    result = fit_full(
        net, torch.from_numpy(images), y, 8, epochs=2, seed=0, on_progress=lambda f, m: messages.append(m)
    )
    assert messages[0].startswith("full fine-tuning on CPU: about ") and messages[0].endswith(" min")
    assert result.strategy == "full"
    assert set(result.state_dict) == set(net.state_dict())
    assert np.mean(result.head.predict(result.features) == np.array(["0", "1"])[y]) > 0.9


def test_fit_partial_progress_never_goes_backwards():
    from classifier import finetune

    acts, y = _separable_activations(n=64)
    fractions = []
    finetune.fit_partial(
        acts, y, _tiny_tail(), 16, epochs=2, batch_size=8, on_progress=lambda f, m: fractions.append(f)
    )
    assert len(fractions) > 10
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
