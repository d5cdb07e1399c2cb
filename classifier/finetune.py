"""Adapting the network itself: the partial strategy (its last blocks) and the full one (every layer).

Both start from a linear probe (LP-FT): the head is fitted first and the network is then adapted under
it, which distorts pretrained features less than training from a random head, and early stopping
compares against that starting point, so adapting can never leave the model worse on the inner
validation split than the linear probe was. Their head is the layer trained with the network,
calibrated on that inner split (the network has memorised the rest). Early stopping always uses an inner
split of the training data, never a validation set the caller holds.

`adapt_network` feeds images to `fit_partial` / `fit_full` (which work on tensors) and gives back the
adapted network with a way to compute features under it. torch is imported only inside functions;
importing this module does not import it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .cuda import precision_for
from .data import resolve
from .errors import TrainingError
from .evaluation import holdout_split
from .fit import TrainResult, fit_head, head_metadata, labels_and_indices
from .heads import LinearHead
from .optim import AdamW
from .preprocessing import load_rgb, preprocess

if TYPE_CHECKING:  # pragma: no cover
    import torch

StepFn = Callable[[float, str], None]
# Blocks of the backbone the partial strategy adapts (the rest is frozen and run once).
PARTIAL_BLOCKS = 2
_BATCH = 32


def _silent(fraction: float, message: str) -> None:
    pass


def _freeze_batchnorm(module: torch.nn.Module) -> None:
    """Keep BatchNorm running statistics fixed while training.

    Batches of a few dozen images from a handful of classes give noisy statistics that would replace the
    ImageNet ones the following layers were trained against; the affine parameters still learn.
    """
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _gather(inputs, idx: np.ndarray):
    """A batch from a tensor (fancy indexing) or from any indexable of [C, H, W] tensors (a Dataset)."""
    import torch

    if isinstance(inputs, torch.Tensor):
        return inputs[torch.as_tensor(idx, dtype=torch.long)]
    return torch.stack([torch.as_tensor(inputs[int(i)]) for i in idx])


def _extract(module, inputs, n: int, batch_size: int, device: str, progress=None, label: str = ""):
    import torch

    precision = precision_for(device)
    module.eval()
    out = []
    with torch.no_grad(), precision.autocast():
        for b, sl in enumerate(_batches(n, batch_size)):
            xb = precision.to_device(_gather(inputs, np.arange(sl.start, sl.stop)))
            out.append(module(xb).float().cpu())
            if progress is not None:
                progress(b * batch_size / n, label)
    return torch.cat(out).numpy().astype(np.float64)


class _Classifier:
    """module -> (optional row L2-normalisation) -> linear layer initialised from a fitted LinearHead."""

    def __init__(self, module, head: LinearHead, device: str):
        import torch

        self.module = module
        self.l2 = bool(head.l2_normalize)
        w, b = head.as_affine()
        self.linear = torch.nn.Linear(w.shape[1], w.shape[0]).to(device)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            self.linear.bias.copy_(torch.as_tensor(b, dtype=torch.float32))

    def __call__(self, xb):
        import torch.nn.functional as F

        f = self.module(xb)
        if self.l2:
            f = F.normalize(f, dim=1)
        return self.linear(f)


def _head_from_layer(clf: _Classifier, probe: LinearHead, val_feats, val_y, labels) -> LinearHead:
    """A LinearHead equal to the trained torch layer, with a temperature fitted on held-out features."""
    from .heads import _fit_temperature

    started = time.perf_counter()
    w = clf.linear.weight.detach().cpu().double().numpy()
    b = clf.linear.bias.detach().cpu().double().numpy()
    dim = w.shape[1]
    head = LinearHead(C=probe.C_, l2_normalize=probe.l2_normalize)
    head.coef_, head.intercept_ = w, b - b.mean()
    head.mean_, head.scale_ = np.zeros(dim), np.ones(dim)
    head.temperature_ = 1.0
    head.classes_ = np.asarray(labels)
    head.n_features_in_ = dim
    head.C_ = float(probe.C_)
    logits = head.decision_function(val_feats)
    head.temperature_ = _fit_temperature(logits, val_y) if len(val_y) else 1.0
    scaled = logits / head.temperature_
    top = scaled.max(axis=1, keepdims=True)
    log_p = scaled - top - np.log(np.exp(scaled - top).sum(axis=1, keepdims=True))
    head.cv_log_loss_ = float(-np.mean(log_p[np.arange(len(val_y)), val_y])) if len(val_y) else None
    head.cv_accuracy_ = float(np.mean(logits.argmax(axis=1) == val_y)) if len(val_y) else None
    head.n_folds_ = 0
    head.fit_seconds_ = time.perf_counter() - started
    return head


def _adapt(
    module,
    inputs,
    yi: np.ndarray,
    labels: list[str],
    *,
    what: str,
    epochs: int,
    lr: float,
    head_lr: float | None,
    weight_decay: float,
    batch_size: int,
    patience: int,
    val_fraction: float,
    seed: int,
    device: str,
    augment=None,
    progress: StepFn,
    frac0: float = 0.0,
) -> tuple[LinearHead, dict, np.ndarray, dict]:
    """Shared LP-FT loop for partial and full fine-tuning; returns (head, state, features, metadata)."""
    import torch

    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(yi)
    tr, va = holdout_split(yi, test_fraction=val_fraction, seed=seed)
    precision = precision_for(device)  # on CUDA: autocast, channels_last, pinned transfers
    module = precision.prepare(module)

    span = 1.0 - frac0
    # Phases of the progress bar: 10% probe, 80% epochs, 10% calibration and final features.
    t0, t1 = frac0 + 0.1 * span, frac0 + 0.9 * span

    def extract_progress(fraction: float, message: str) -> None:
        progress(frac0 + 0.1 * span * fraction, message)

    # Linear probe first: the starting head, and the model the adapted one has to beat.
    feats0 = _extract(module, inputs, n, batch_size, device, extract_progress, f"{what}: extracting features")
    probe = fit_head(feats0[tr], yi[tr], labels, seed, None)
    clf = _Classifier(module, probe, device)

    # Every image weighs the same, as in the linear head (heads.LinearHead's class_weight).
    loss_fn = torch.nn.CrossEntropyLoss()
    params = [p for p in module.parameters() if p.requires_grad]
    steps_per_epoch = max(1, math.ceil(len(tr) / batch_size))
    opt = AdamW(
        [(params, lr, True), (list(clf.linear.parameters()), head_lr or lr, False)],
        weight_decay=weight_decay,
        total_steps=epochs * steps_per_epoch,
    )
    y_t = torch.as_tensor(yi, dtype=torch.long)
    scaler = precision.scaler()  # fp16 only; a pass-through otherwise

    def val_loss() -> tuple[float, float]:
        module.eval()
        total, correct = 0.0, 0
        with torch.no_grad(), precision.autocast():
            for sl in _batches(len(va), batch_size):
                idx = va[sl]
                xb = precision.to_device(_gather(inputs, idx))
                logits = clf(xb).float()
                yb = y_t[idx].to(device)
                total += float(loss_fn(logits, yb)) * len(idx)
                correct += int((logits.argmax(1) == yb).sum())
        return total / max(len(va), 1), correct / max(len(va), 1)

    def snapshot():
        return copy.deepcopy(module.state_dict()), copy.deepcopy(clf.linear.state_dict())

    best_loss, best_acc = val_loss()
    history = [{"epoch": 0, "val_loss": best_loss, "val_accuracy": best_acc}]
    best_state, best_epoch, waited = snapshot(), 0, 0
    for epoch in range(1, epochs + 1):
        module.train()
        _freeze_batchnorm(module)
        order = rng.permutation(tr)
        train_loss = 0.0
        for b, sl in enumerate(_batches(len(order), batch_size)):
            idx = order[sl]
            xb = precision.to_device(_gather(inputs, idx))
            if augment is not None:
                xb = augment(xb)
            with precision.autocast():
                loss = loss_fn(clf(xb).float(), y_t[idx].to(device))
            opt.zero_grad()
            scaler.backward_and_step(loss, opt, [*params, *clf.linear.parameters()])
            train_loss += loss.item() * len(idx)
            done = (epoch - 1 + (b + 1) / steps_per_epoch) / epochs
            progress(t0 + (t1 - t0) * done, f"{what}: epoch {epoch} of {epochs}")
        v_loss, v_acc = val_loss()
        history.append(
            {"epoch": epoch, "train_loss": train_loss / len(tr), "val_loss": v_loss, "val_accuracy": v_acc}
        )
        progress(
            t0 + (t1 - t0) * epoch / epochs,
            f"{what}: epoch {epoch} of {epochs}, validation loss {v_loss:.3f} (best {min(best_loss, v_loss):.3f})",
        )
        if v_loss < best_loss - 1e-4:
            best_loss, best_state, best_epoch, waited = v_loss, snapshot(), epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break

    module.load_state_dict(best_state[0])
    clf.linear.load_state_dict(best_state[1])
    progress(t1, f"{what}: calibrating on the inner validation split")
    feats = _extract(module, inputs, n, batch_size, device)
    # The head is the layer trained jointly with the network, calibrated on the inner validation images,
    # the only ones the adapted network has not fitted. A head refit by cross-validation on the adapted
    # training features would see them perfectly separated (the network memorised them) and choose the
    # weakest C and the sharpest temperature: on hymenoptera that gave validation log-loss 1.5 instead of 0.1.
    head = _head_from_layer(clf, probe, feats[va], yi[va], labels)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    meta = head_metadata(head, n)
    meta.update(
        {
            "epochs_run": len(history) - 1,
            "best_epoch": best_epoch,
            "inner_val_size": int(len(va)),
            "inner_val_loss_start": history[0]["val_loss"],
            "inner_val_loss_best": best_loss,
            "calibrated_on": "inner validation split",
            "history": history,
            "fit_seconds": time.perf_counter() - started,
            "device": str(device),
        }
    )
    progress(1.0, f"{what}: done")
    return head, state, feats, meta


def _schedule(epochs, lr, head_lr, weight_decay, batch_size, patience, val_fraction, seed, device) -> dict:
    """The optimisation settings fit_partial and fit_full both hand to _adapt, by name."""
    return {
        "epochs": epochs,
        "lr": lr,
        "head_lr": head_lr,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "patience": patience,
        "val_fraction": val_fraction,
        "seed": seed,
        "device": device,
    }


def fit_partial(
    trunk_activations,
    y,
    tail: torch.nn.Module,
    feature_dim: int,
    *,
    labels: Sequence[str] | None = None,
    epochs: int = 8,
    lr: float = 3e-4,
    head_lr: float | None = None,
    weight_decay: float = 1e-2,
    batch_size: int = 32,
    patience: int = 2,
    val_fraction: float = 0.15,
    seed: int = 0,
    on_progress: StepFn | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Adapt the last blocks of a backbone (its tail) with a linear layer on top, from cached trunk output.

    Only the tail runs per epoch: the frozen trunk's activations are computed once by the caller.

    Args:
        trunk_activations: trunk output for every training image [N, C, H, W] (numpy or tensor).
        y: labels [N], names from `labels` or indices.
        tail: module mapping trunk activations to pooled features [N, feature_dim]; trained in place.
        feature_dim: width of the tail's output.
        labels: class names in index order (default: sorted unique y).
        epochs: maximum epochs; early stopping on an inner split of these training data may stop sooner.
        lr: AdamW learning rate of the tail (the linear layer uses head_lr, default the same).
        weight_decay: AdamW decoupled weight decay.
        batch_size: images per step.
        patience: epochs without inner-validation improvement before stopping.
        val_fraction: share of each label held out of training for early stopping.
        seed: seed of the split, the shuffling and torch.
        on_progress: on_progress(fraction, message); may raise Cancelled, which propagates.
        device: torch device string.
    Returns:
        TrainResult with strategy "partial", state_dict = adapted tail weights (best epoch), the linear
        layer trained with them as a LinearHead (temperature fitted on the inner validation split), and
        the adapted features of all training images.
    """
    import torch

    labels, yi = labels_and_indices(y, labels)
    acts = torch.as_tensor(
        np.asarray(trunk_activations)
        if not isinstance(trunk_activations, torch.Tensor)
        else trunk_activations,
        dtype=torch.float32,
    )
    if len(acts) != len(yi):
        raise TrainingError(f"{len(acts)} activation rows but {len(yi)} labels")
    progress = on_progress or _silent
    progress(0.0, "adapting the last blocks")
    schedule = _schedule(epochs, lr, head_lr, weight_decay, batch_size, patience, val_fraction, seed, device)
    head, state, feats, meta = _adapt(
        tail, acts, yi, labels, what="adapting the last blocks", progress=progress, **schedule
    )
    if feats.shape[1] != feature_dim:
        raise TrainingError(f"the tail produced {feats.shape[1]} features, expected {feature_dim}")
    return TrainResult("partial", head, labels, meta, state, feats)


def random_flip_and_crop(xb: torch.Tensor, *, min_scale: float = 0.6, generator=None) -> torch.Tensor:
    """Augment a batch of normalised images: random horizontal flip and random resized crop.

    Args:
        xb: images [N, C, H, W].
        min_scale: smallest crop side as a fraction of the image side.
        generator: optional torch.Generator for reproducibility.
    Returns:
        augmented batch of the same shape.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = xb.shape
    out = torch.empty_like(xb)
    u = torch.rand(n, 4, generator=generator)
    for i in range(n):
        s = min_scale + (1.0 - min_scale) * float(u[i, 0])
        ch, cw = max(1, round(h * s)), max(1, round(w * s))
        top = int(float(u[i, 1]) * (h - ch + 1))
        left = int(float(u[i, 2]) * (w - cw + 1))
        crop = xb[i : i + 1, :, top : top + ch, left : left + cw]
        crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
        out[i] = crop[0].flip(-1) if float(u[i, 3]) < 0.5 else crop[0]
    return out


def estimate_full_seconds(net, images, batch_size: int, epochs: int, n: int, device: str) -> float:
    """Time one training step and one inference batch and extrapolate to a full fine-tuning.

    Args:
        net: the network (images -> features); its weights are not changed.
        images: indexable image tensors.
        batch_size: images per step.
        epochs: planned epochs.
        n: number of training images.
        device: torch device string.
    Returns:
        estimated seconds (three feature passes plus `epochs` training passes).
    """
    import torch

    idx = np.arange(min(batch_size, n))
    xb = _gather(images, idx).to(device, dtype=torch.float32)
    net.to(device)
    saved = copy.deepcopy(net.state_dict())
    net.train()
    _freeze_batchnorm(net)
    t0 = time.perf_counter()
    net(xb).float().sum().backward()
    t_train = (time.perf_counter() - t0) / len(idx)
    net.zero_grad(set_to_none=True)
    net.load_state_dict(saved)
    net.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        net(xb)
    t_eval = (time.perf_counter() - t0) / len(idx)
    # An optimiser step and augmentation add roughly a third to forward + backward.
    return n * (1.35 * t_train * epochs + 3 * t_eval)


def fit_full(
    net: torch.nn.Module,
    images,
    y,
    feature_dim: int,
    *,
    labels: Sequence[str] | None = None,
    epochs: int = 6,
    lr: float = 1e-4,
    head_lr: float | None = 1e-3,
    weight_decay: float = 0.05,
    batch_size: int = 32,
    patience: int = 2,
    val_fraction: float = 0.15,
    seed: int = 0,
    augment: bool = True,
    on_progress: StepFn | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Fine-tune the whole network from its pretrained weights, with augmentation, under a linear probe.

    On CPU the duration is estimated first and reported through on_progress ("full fine-tuning on CPU:
    about N min") before any training starts, so the caller can cancel.

    Args:
        net: module mapping preprocessed images [N, 3, H, W] to pooled features [N, feature_dim].
        images: preprocessed images, a tensor [N, 3, H, W] or any indexable of [3, H, W] tensors.
        y: labels [N], names from `labels` or indices.
        feature_dim: width of the net's output.
        labels: class names in index order (default: sorted unique y).
        epochs, lr, head_lr, weight_decay, batch_size, patience, val_fraction, seed: as in fit_partial
            (a lower backbone lr than head lr keeps the early layers close to ImageNet).
        augment: random horizontal flip and resized crop of training batches.
        on_progress: on_progress(fraction, message); may raise Cancelled, which propagates.
        device: torch device string.
    Returns:
        TrainResult with strategy "full", state_dict = the whole net's adapted weights, the head trained
        with them (calibrated on the inner validation split) and the adapted training features.
    """
    import torch

    labels, yi = labels_and_indices(y, labels)
    if len(images) != len(yi):
        raise TrainingError(f"{len(images)} images but {len(yi)} labels")
    progress = on_progress or _silent
    if not str(device).startswith("cuda"):
        seconds = estimate_full_seconds(net, images, batch_size, epochs, len(yi), device)
        progress(0.0, f"full fine-tuning on CPU: about {max(1, round(seconds / 60))} min")
    else:
        progress(0.0, "full fine-tuning")
    gen = torch.Generator().manual_seed(seed)
    aug = (lambda xb: random_flip_and_crop(xb, generator=gen)) if augment else None
    schedule = _schedule(epochs, lr, head_lr, weight_decay, batch_size, patience, val_fraction, seed, device)
    head, state, feats, meta = _adapt(
        net,
        images,
        yi,
        labels,
        what="full fine-tuning",
        augment=aug,
        progress=progress,
        frac0=0.01,
        **schedule,
    )
    if feats.shape[1] != feature_dim:
        raise TrainingError(f"the network produced {feats.shape[1]} features, expected {feature_dim}")
    return TrainResult("full", head, labels, meta, state, feats)


# -- from images --------------------------------------------------------------------------------


def _torch_device(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def images_tensor(sources: Sequence, prep, on_progress: StepFn | None = None, what: str = "decoding"):
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
    on_progress: StepFn | None = None,
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

    torch.manual_seed(seed)
    net = spec.build(pretrained=pretrained)
    prep = spec.preprocessing
    torch_device = _torch_device(device)
    sources = [resolve(s.source) for s in samples]

    def stage(lo: float, hi: float) -> StepFn | None:
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
