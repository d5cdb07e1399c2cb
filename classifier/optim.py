"""The optimiser the partial and full strategies adapt a network with."""

from __future__ import annotations

import math


class AdamW:
    """AdamW with a cosine learning-rate decay, in a few lines of tensor code.

    torch.optim's first optimiser construction imports torch._dynamo (10 s measured on 2 cores), paid
    again by every worker child since workers run one task per child; this is the same update rule.
    Weight decay pulls pretrained weights back towards their starting values rather than towards zero
    (L2-SP): with few images, "stay close to ImageNet" is the prior we want, and zero is not a sensible
    value for a pretrained filter. Biases and normalisation parameters (1-d) are not decayed.

    Args:
        groups: (parameters, learning rate, anchor) triples; anchor=True decays towards starting values.
    """

    def __init__(self, groups, *, weight_decay: float, total_steps: int, betas=(0.9, 0.999), eps=1e-8):
        import torch

        self.groups = [(list(params), lr, anchor) for params, lr, anchor in groups]
        self.wd, self.total, self.betas, self.eps = weight_decay, max(1, total_steps), betas, eps
        self.t = 0
        self.state = {}
        for params, _, anchor in self.groups:
            for p in params:
                start = p.detach().clone() if anchor and p.ndim > 1 else None
                self.state[id(p)] = (torch.zeros_like(p), torch.zeros_like(p), start)

    def zero_grad(self) -> None:
        for params, _, _ in self.groups:
            for p in params:
                p.grad = None

    def step(self) -> None:
        import torch

        self.t += 1
        b1, b2 = self.betas
        decay = 0.5 * (1.0 + math.cos(math.pi * min(self.t - 1, self.total) / self.total))
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        with torch.no_grad():
            for params, base_lr, _ in self.groups:
                lr = base_lr * decay
                for p in params:
                    if p.grad is None:
                        continue
                    m, v, start = self.state[id(p)]
                    if start is not None:
                        p.sub_(p - start, alpha=lr * self.wd)
                    elif p.ndim > 1:
                        p.mul_(1.0 - lr * self.wd)
                    m.mul_(b1).add_(p.grad, alpha=1.0 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
                    denom = (v / c2).sqrt_().add_(self.eps)
                    p.addcdiv_(m, denom, value=-lr / c1)
