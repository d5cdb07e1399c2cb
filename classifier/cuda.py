"""What a CUDA device adds to adapting a network: mixed precision, channels_last, pinned transfers.

On a CPU every helper is a no-op, so the same training loop runs (and is tested) on both. On CUDA the
forward and backward passes run under autocast, in bf16 where the GPU has it (Ampere and later: no loss
scaling needed) and in fp16 with a gradient scaler elsewhere; images travel from pinned memory without
blocking and in channels_last, the layout tensor cores read.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    """How a training loop computes on its device.

    Attributes:
        device: "cpu" or "cuda[:i]".
        dtype: the autocast dtype (None: fp32 throughout, as on a CPU).
    """

    device: str
    dtype: object | None = None

    @property
    def cuda(self) -> bool:
        return str(self.device).startswith("cuda")

    def autocast(self):
        """A context in which forward passes run at this precision (a no-op in fp32)."""
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.dtype)

    def scaler(self) -> LossScaler:
        """A loss scaler: dynamic for fp16 (bf16 keeps fp32's exponent range), a pass-through otherwise."""
        import torch

        return LossScaler(enabled=self.dtype is torch.float16)

    def to_device(self, batch):
        """Args: batch: a float tensor [N, C, H, W] on the CPU. Returns: it on the device, ready to use."""
        import torch

        if not self.cuda:
            return batch.to(dtype=torch.float32)
        batch = batch.to(dtype=torch.float32).pin_memory()
        return batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    def prepare(self, module):
        """Args: module: a torch module. Returns: it on the device (channels_last on CUDA)."""
        import torch

        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.cuda else module


class LossScaler:
    """Dynamic loss scaling for fp16, for any optimiser with step() (ours is not a torch.optim one).

    The loss is multiplied before backward so small gradients survive fp16; the gradients are divided
    back before the step; a step whose gradients overflowed is skipped and the scale halved, and the
    scale doubles again after GROWTH_INTERVAL good steps (torch.amp.GradScaler's policy).
    """

    GROWTH_INTERVAL = 2000

    def __init__(self, *, enabled: bool, scale: float = 2.0**16):
        self.enabled = enabled
        self.scale = scale
        self._good = 0

    def backward_and_step(self, loss, optimizer, params) -> bool:
        """Args: loss: a scalar tensor; optimizer: has step(); params: what it updates.
        Returns: whether the step was taken."""
        import torch

        if not self.enabled:
            loss.backward()
            optimizer.step()
            return True
        (loss * self.scale).backward()
        grads = [p.grad for p in params if p.grad is not None]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            self.scale /= 2.0
            self._good = 0
            return False
        for g in grads:
            g.div_(self.scale)
        optimizer.step()
        self._good += 1
        if self._good % self.GROWTH_INTERVAL == 0:
            self.scale *= 2.0
        return True


def precision_for(device: str) -> Precision:
    """Args: device: "cpu" or "cuda[:i]". Returns: bf16 autocast on GPUs that have it, fp16 on older
    ones, fp32 on a CPU."""
    if not str(device).startswith("cuda"):
        return Precision(str(device))
    import torch

    return Precision(str(device), torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
