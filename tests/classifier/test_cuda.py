"""The CUDA helpers of fine-tuning: no-ops on a CPU, loss scaling that matches plain fp32 steps, and (with a
GPU) mixed precision that trains."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.cuda import LossScaler, Precision, precision_for

torch = pytest.importorskip("torch")


def test_on_a_cpu_every_helper_leaves_the_computation_alone():
    precision = precision_for("cpu")
    assert precision == Precision("cpu") and not precision.cuda
    batch = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    moved = precision.to_device(batch)
    assert moved.dtype == torch.float32 and moved.is_contiguous()
    with precision.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not precision.scaler().enabled


def _step(enabled: bool, scale: float = 2.0**10):
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    params = list(layer.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    scaler = LossScaler(enabled=enabled, scale=scale)
    loss = torch.nn.functional.cross_entropy(layer(torch.rand(5, 4)), torch.tensor([0, 1, 0, 1, 1]))
    took = scaler.backward_and_step(loss, opt, params)
    return took, [p.detach().clone() for p in params], scaler


def test_scaled_steps_equal_plain_ones():
    _, plain, _ = _step(enabled=False)
    took, scaled, scaler = _step(enabled=True)
    assert took and scaler.scale == 2.0**10
    for a, b in zip(plain, scaled, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_an_overflowing_step_is_skipped_and_the_scale_halved():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    before = [p.detach().clone() for p in layer.parameters()]
    scaler = LossScaler(enabled=True, scale=2.0**10)
    loss = layer(torch.rand(3, 4)).sum() * float("inf")
    assert not scaler.backward_and_step(
        loss, torch.optim.SGD(layer.parameters(), lr=0.1), list(layer.parameters())
    )
    assert scaler.scale == 2.0**9
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True))


@pytest.mark.gpu
def test_mixed_precision_trains_on_a_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    precision = precision_for("cuda")
    assert precision.dtype in (torch.bfloat16, torch.float16)
    net = precision.prepare(
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2)
        )
    )
    params = list(net.parameters())
    opt = torch.optim.SGD(params, lr=0.5)
    scaler = precision.scaler()
    x = precision.to_device(torch.rand(16, 3, 16, 16))
    y = torch.tensor([0, 1] * 8, device="cuda")
    x[y == 1] += 1.0
    losses = []
    for _ in range(30):
        opt.zero_grad()
        with precision.autocast():
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        scaler.backward_and_step(loss, opt, params)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
