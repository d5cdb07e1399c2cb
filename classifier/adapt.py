"""Running the partial and full strategies on images: decode, cache the trunk once, adapt, re-extract.

training.py holds the optimisation (fit_partial / fit_full on tensors); this module feeds it images and
gives back the adapted network with a way to compute features under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .preprocessing import load_rgb, preprocess
from .training import TrainResult, fit_full, fit_partial

ProgressFn = Callable[[float, str], None]
# Blocks of the backbone the partial strategy adapts (the rest is frozen and run once).
PARTIAL_BLOCKS = 2
_BATCH = 32


def _torch_device(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def images_tensor(sources: Sequence, prep, on_progress: ProgressFn | None = None, what: str = "decoding"):
    """Preprocessed images as one float32 tensor [N, 3, crop, crop]."""
    import torch

    out = np.empty((len(sources), 3, prep.crop, prep.crop), dtype=np.float32)
    for i, source in enumerate(sources):
        out[i] = preprocess(load_rgb(source, target_size=prep.resize), prep)
        if on_progress is not None and (i + 1) % _BATCH == 0:
            on_progress((i + 1) / len(sources), f"{what} {i + 1}/{len(sources)}")
    return torch.from_numpy(out)


class AdaptedFeatures:
    """Features of any image under the adapted network (for evaluation, analysis and the export check)."""

    def __init__(self, net, prep, device: str):
        self.net, self.prep, self.device = net, prep, _torch_device(device)

    def features(self, sources: Sequence) -> np.ndarray:
        import torch

        self.net.eval().to(self.device)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(sources), _BATCH):
                batch = images_tensor(sources[start : start + _BATCH], self.prep).to(self.device)
                chunks.append(self.net(batch).float().cpu().numpy())
        self.net.cpu()
        return np.concatenate(chunks) if chunks else np.zeros((0, self.net.feature_dim), np.float32)


def adapt_network(
    spec,
    strategy: str,
    samples: Sequence,
    y: np.ndarray,
    labels: Sequence[str],
    *,
    device: str = "cpu",
    seed: int = 0,
    pretrained: bool = True,
    on_progress: ProgressFn | None = None,
) -> tuple[object, TrainResult, AdaptedFeatures]:
    """Adapt the last blocks ("partial") or the whole network ("full") to the labelled images.

    Args:
        spec: the Backbone.
        strategy: "partial" or "full".
        samples: pipeline Samples of the training images.
        y: label indices [N].
        labels: label names in index order.
        device: "cpu" or "cuda".
        seed: seed of the inner split, shuffling and torch.
        pretrained: False uses random weights (tests only).
        on_progress: on_progress(fraction, message); may raise Cancelled.
    Returns:
        (the adapted BackboneNet in eval mode on CPU, the TrainResult, an AdaptedFeatures for it)
    """
    import torch

    from .pipeline import resolve

    torch.manual_seed(seed)
    net = spec.build(pretrained=pretrained)
    prep = spec.preprocessing
    torch_device = _torch_device(device)
    sources = [resolve(s.source) for s in samples]

    def stage(lo: float, hi: float) -> ProgressFn | None:
        if on_progress is None:
            return None
        return lambda f, m: on_progress(lo + (hi - lo) * f, m)

    if strategy == "partial":
        trunk, tail = net.split(min(PARTIAL_BLOCKS, net.n_blocks))
        trunk.eval().to(torch_device)
        # The frozen trunk runs once per image; only the tail runs in each epoch.
        acts = []
        with torch.inference_mode():
            for start in range(0, len(sources), _BATCH):
                batch = images_tensor(sources[start : start + _BATCH], prep).to(torch_device)
                acts.append(trunk(batch).float().cpu())
                if on_progress is not None:
                    done = min(start + _BATCH, len(sources))
                    on_progress(0.4 * done / len(sources), f"computing activations {done}/{len(sources)}")
        trunk.cpu()
        result = fit_partial(
            torch.cat(acts), y, tail, spec.feature_dim, labels=labels, seed=seed,
            on_progress=stage(0.4, 1.0), device=torch_device,
        )  # fmt: skip
        tail.load_state_dict(result.state_dict)
    elif strategy == "full":
        images = images_tensor(sources, prep, stage(0.0, 0.2), "decoding")
        result = fit_full(
            net, images, y, spec.feature_dim, labels=labels, seed=seed,
            on_progress=stage(0.2, 1.0), device=torch_device,
        )  # fmt: skip
        net.load_state_dict(result.state_dict)
    else:
        raise ValueError(f"adapt_network handles partial and full, not {strategy!r}")
    net = net.cpu().eval()
    return net, result, AdaptedFeatures(net, prep, device)
