"""The hand-written AdamW takes torch.optim.AdamW's steps (it exists to skip torch.optim's slow import)."""

import math

import pytest

torch = pytest.importorskip("torch")

from classifier.optim import AdamW  # noqa: E402


def test_it_steps_like_torchs_adamw_at_a_constant_rate():
    torch.manual_seed(0)
    mine, theirs = torch.randn(4, 3, requires_grad=True), None
    theirs = mine.detach().clone().requires_grad_(True)
    target = torch.randn(4, 3)
    # A schedule this long keeps the cosine decay at 1 for the few steps taken.
    ours = AdamW([([mine], 0.05, False)], weight_decay=0.1, total_steps=10**9)
    reference = torch.optim.AdamW([theirs], lr=0.05, weight_decay=0.1)
    for _ in range(5):
        for p, opt in ((mine, ours), (theirs, reference)):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_anchored_weights_decay_towards_where_they_started_not_towards_zero():
    start = torch.full((2, 2), 3.0)
    weight = start.clone().requires_grad_(True)
    opt = AdamW([([weight], 0.1, True)], weight_decay=0.5, total_steps=10)
    with torch.no_grad():
        weight += 1.0  # moved away from the pretrained value after the anchor was taken
    for _ in range(3):
        opt.zero_grad()
        (weight * 0).sum().backward()  # no pull from the loss: only the decay acts
        opt.step()
    assert torch.all((weight > 3.0) & (weight < 4.0))  # pulled back towards 3, where zero would pull below
    # Each step takes lr x decay of the distance, the rate following a cosine over total_steps.
    left = 1.0
    for t in range(3):
        left *= 1.0 - 0.1 * 0.5 * (1.0 + math.cos(math.pi * t / 10)) * 0.5
    torch.testing.assert_close(weight.detach(), torch.full((2, 2), 3.0 + left), rtol=1e-5, atol=1e-6)
