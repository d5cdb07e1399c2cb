"""Training strategies: a head on cached features (linear), the last blocks too (partial), or everything (full).

`choose_strategy` picks one from the number of images per label and the device. All strategies end the
same way: a calibrated `LinearHead` on the (possibly adapted) features, so serving, export and analysis
see one kind of head. Partial and full adaptation start from a linear probe (LP-FT): the head is fitted
first and the network is then adapted under it, which distorts pretrained features less than training
from a random head, and early stopping compares against that starting point, so adapting can never
leave the model worse on the inner validation split than the linear probe was. Their head is the layer
trained with the network, calibrated on that inner split (the network has memorised the rest).

Early stopping always uses an inner split of the training data, never a validation set the caller holds.
torch is imported only inside the fine-tuning functions; importing this module does not import it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import TrainingError
from .evaluation import _as_indices, evaluate, holdout_split, kfold_evaluate
from .heads import LinearHead

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "TrainResult",
    "check_counts",
    "choose_strategy",
    "evaluate",
    "fit_full",
    "fit_linear",
    "fit_partial",
    "holdout_split",
    "kfold_evaluate",
]

ProgressFn = Callable[[float, str], None]

# Below this many images in the smallest label, adapting any convolution overfits; the head alone wins.
MIN_PER_LABEL_PARTIAL = 30
# On a CPU, adapting blocks costs minutes where the head costs a second, and on a few hundred images it
# gains about one test image in a hundred (hymenoptera: 96.1 % vs 95.4 %, 104 s vs 1 s); a CPU host
# adapts only once the data can repay that.
MIN_PER_LABEL_PARTIAL_CPU = 300
# Adapting blocks with fewer images than this in total is noise, however they are spread over labels.
MIN_TOTAL_PARTIAL = 100
# With this many images per label (and CUDA), updating every layer pays for its cost and risk.
MIN_PER_LABEL_FULL_GPU = 1000
MIN_PER_LABEL = 2
STRATEGIES = ("linear", "partial", "full")
# Progress callbacks write to a database row; more often than this is load without information.
_PROGRESS_INTERVAL_S = 0.5


def check_counts(counts_per_label: dict[str, int]) -> None:
    """Refuse label sets nothing can be trained on, with a message a person can act on.

    Args:
        counts_per_label: {label name: number of training images}.
    Raises:
        TrainingError: fewer than 2 labels, or a label with fewer than 2 images.
    """
    if len(counts_per_label) < 2:
        raise TrainingError(f"training needs at least 2 labels; this project has {len(counts_per_label)}")
    short = {name: n for name, n in counts_per_label.items() if n < MIN_PER_LABEL}
    if short:
        name, n = min(short.items(), key=lambda kv: (kv[1], kv[0]))
        raise TrainingError(f"each label needs at least {MIN_PER_LABEL} images; {name!r} has {n}")


def choose_strategy(counts_per_label: dict[str, int], device: str) -> tuple[str, str]:
    """Pick how much of the network to adapt, with the reason in one sentence.

    Args:
        counts_per_label: {label name: number of training images}.
        device: "cpu" or a torch device string such as "cuda" / "cuda:0".
    Returns:
        ("linear" | "partial" | "full", reason).
    Raises:
        TrainingError: when there is nothing to train (see check_counts).
    """
    check_counts(counts_per_label)
    smallest = min(counts_per_label.values())
    total = sum(counts_per_label.values())
    gpu = str(device).startswith("cuda")
    per = f"{smallest} images per label at least"
    if smallest < MIN_PER_LABEL_PARTIAL:
        return "linear", f"linear: {per}; too few to adapt the network without overfitting"
    if not gpu and smallest < MIN_PER_LABEL_PARTIAL_CPU:
        return "linear", (
            f"linear: {per} on a CPU; adapting the last blocks would take minutes for little gain "
            f"below {MIN_PER_LABEL_PARTIAL_CPU} per label (a GPU worker adapts from {MIN_PER_LABEL_PARTIAL})"
        )
    if total < MIN_TOTAL_PARTIAL:
        return "linear", f"linear: {total} images in all; too few to adapt the network without overfitting"
    if gpu and smallest >= MIN_PER_LABEL_FULL_GPU:
        return "full", f"full: {per} and a GPU; enough to fine-tune every layer"
    if not gpu and smallest >= MIN_PER_LABEL_FULL_GPU:
        return "partial", f"partial: {per}, but fine-tuning every layer on a CPU would take too long"
    return "partial", f"partial: {per}; enough to adapt the last blocks, too few to retrain the whole network"


@dataclass
class TrainResult:
    """What a training produced.

    Attributes:
        strategy: "linear", "partial" or "full".
        head: the fitted LinearHead; its classes_ are the label names, its columns in `labels` order.
        labels: class names in index order.
        metadata: JSON-friendly facts (C, cv_log_loss, cv_accuracy, temperature, fit_seconds, n_train, ...).
        state_dict: adapted backbone weights (tail for partial, whole net for full) as CPU tensors.
        features: the training features under the adapted weights [N, D] (None for linear: unchanged).
    """

    strategy: str
    head: LinearHead
    labels: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, Any] | None = None
    features: np.ndarray | None = None

    @property
    def C(self) -> float:
        return float(self.head.C_)

    @property
    def cv_score(self) -> float | None:
        return self.metadata.get("cv_log_loss")

    @property
    def fit_seconds(self) -> float:
        return float(self.metadata.get("fit_seconds", 0.0))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The adapted weights as numpy arrays for safetensors (empty for linear).

        Returns:
            {parameter or buffer name: array}.
        """
        if not self.state_dict:
            return {}
        return {k: v.detach().cpu().contiguous().numpy() for k, v in self.state_dict.items()}


class _Throttled:
    """Calls on_progress at most every _PROGRESS_INTERVAL_S unless forced; Cancelled passes through."""

    def __init__(self, on_progress: ProgressFn | None):
        self.fn = on_progress
        self.last = -math.inf

    def __call__(self, fraction: float, message: str, *, force: bool = False) -> None:
        if self.fn is None:
            return
        now = time.monotonic()
        if force or now - self.last >= _PROGRESS_INTERVAL_S:
            self.last = now
            self.fn(float(min(max(fraction, 0.0), 1.0)), message)


def _fit_head(
    X: np.ndarray, yi: np.ndarray, labels: list[str], seed: int, C: float | None, groups=None
) -> LinearHead:
    head = LinearHead(C=C, random_state=seed).fit(X, yi, groups=groups)
    # Trained on indices so the columns follow `labels` (not alphabetical order); names are for people.
    head.classes_ = np.asarray(labels)
    return head


def _head_metadata(head: LinearHead, n: int) -> dict[str, Any]:
    return {
        "C": float(head.C_),
        "temperature": float(head.temperature_),
        "cv_log_loss": head.cv_log_loss_,
        "cv_accuracy": head.cv_accuracy_,
        "cv_folds": int(head.n_folds_),
        "n_train": int(n),
        "head_fit_seconds": float(head.fit_seconds_),
    }


def _labels_and_indices(y, labels: Sequence[str] | None, groups=None) -> tuple[list[str], np.ndarray]:
    if labels is None:
        labels = [str(v) for v in np.unique(np.asarray(y))]
    labels = [str(v) for v in labels]
    yi = _as_indices(y, labels)
    # Augmented copies of one image are one image when counting what a label has.
    firsts = yi if groups is None else yi[np.unique(np.asarray(groups), return_index=True)[1]]
    counts = np.bincount(firsts, minlength=len(labels))
    check_counts({name: int(c) for name, c in zip(labels, counts, strict=True)})
    return labels, yi


def fit_linear(
    X,
    y,
    labels: Sequence[str] | None = None,
    *,
    seed: int = 0,
    C: float | None = None,
    groups=None,
    on_progress: ProgressFn | None = None,
) -> TrainResult:
    """Train the head alone on cached features.

    Args:
        X: features [N, D].
        y: labels [N], names from `labels` or indices into it.
        labels: class names in index order (default: sorted unique y).
        seed: CV fold seed.
        C: fixed regularisation; None searches it by cross-validation.
        groups: optional image id per row when X holds augmented copies (e.g. the features of each image
            and of its mirror image); copies of one image stay in one CV fold.
        on_progress: on_progress(fraction, message); may raise Cancelled.
    Returns:
        TrainResult with strategy "linear" and metadata C, cv_log_loss, cv_accuracy, temperature,
        fit_seconds, n_train.
    """
    started = time.perf_counter()
    labels, yi = _labels_and_indices(y, labels, groups)
    if on_progress is not None:
        on_progress(0.0, "training the classifier head")
    head = _fit_head(np.asarray(X), yi, labels, seed, C, groups)
    meta = _head_metadata(head, len(yi) if groups is None else len(np.unique(groups)))
    meta["fit_seconds"] = time.perf_counter() - started
    if on_progress is not None:
        on_progress(1.0, "classifier head trained")
    return TrainResult(strategy="linear", head=head, labels=labels, metadata=meta)


# -- adapting the network (torch inside functions only) ----------------------------------------------


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

    module.eval()
    out = []
    with torch.no_grad():
        for b, sl in enumerate(_batches(n, batch_size)):
            xb = _gather(inputs, np.arange(sl.start, sl.stop)).to(device, dtype=torch.float32)
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


class _AdamW:
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
    progress: _Throttled,
    frac0: float = 0.0,
) -> tuple[LinearHead, dict, np.ndarray, dict]:
    """Shared LP-FT loop for partial and full fine-tuning; returns (head, state, features, metadata)."""
    import torch

    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(yi)
    tr, va = holdout_split(yi, test_fraction=val_fraction, seed=seed)
    module.to(device)

    span = 1.0 - frac0
    # Phases of the progress bar: 10% probe, 80% epochs, 10% calibration and final features.
    t0, t1 = frac0 + 0.1 * span, frac0 + 0.9 * span

    def extract_progress(fraction: float, message: str) -> None:
        progress(frac0 + 0.1 * span * fraction, message)

    # Linear probe first: the starting head, and the model the adapted one has to beat.
    feats0 = _extract(module, inputs, n, batch_size, device, extract_progress, f"{what}: extracting features")
    probe = _fit_head(feats0[tr], yi[tr], labels, seed, None)
    clf = _Classifier(module, probe, device)

    counts = np.bincount(yi[tr], minlength=len(labels)).astype(np.float64)
    class_w = torch.as_tensor(len(tr) / (len(labels) * np.maximum(counts, 1.0)), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_w.to(device))
    params = [p for p in module.parameters() if p.requires_grad]
    steps_per_epoch = max(1, math.ceil(len(tr) / batch_size))
    opt = _AdamW(
        [(params, lr, True), (list(clf.linear.parameters()), head_lr or lr, False)],
        weight_decay=weight_decay,
        total_steps=epochs * steps_per_epoch,
    )
    y_t = torch.as_tensor(yi, dtype=torch.long)

    def val_loss() -> tuple[float, float]:
        module.eval()
        total, correct = 0.0, 0
        with torch.no_grad():
            for sl in _batches(len(va), batch_size):
                idx = va[sl]
                xb = _gather(inputs, idx).to(device, dtype=torch.float32)
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
            xb = _gather(inputs, idx).to(device, dtype=torch.float32)
            if augment is not None:
                xb = augment(xb)
            loss = loss_fn(clf(xb).float(), y_t[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
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
            force=True,
        )
        if v_loss < best_loss - 1e-4:
            best_loss, best_state, best_epoch, waited = v_loss, snapshot(), epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break

    module.load_state_dict(best_state[0])
    clf.linear.load_state_dict(best_state[1])
    progress(t1, f"{what}: calibrating on the inner validation split", force=True)
    feats = _extract(module, inputs, n, batch_size, device)
    # The head is the layer trained jointly with the network, calibrated on the inner validation images,
    # the only ones the adapted network has not fitted. A head refit by cross-validation on the adapted
    # training features would see them perfectly separated (the network memorised them) and choose the
    # weakest C and the sharpest temperature: on hymenoptera that gave validation log-loss 1.5 instead of 0.1.
    head = _head_from_layer(clf, probe, feats[va], yi[va], labels)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    meta = _head_metadata(head, n)
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
    progress(1.0, f"{what}: done", force=True)
    return head, state, feats, meta


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
    on_progress: ProgressFn | None = None,
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

    labels, yi = _labels_and_indices(y, labels)
    acts = torch.as_tensor(
        np.asarray(trunk_activations)
        if not isinstance(trunk_activations, torch.Tensor)
        else trunk_activations,
        dtype=torch.float32,
    )
    if len(acts) != len(yi):
        raise TrainingError(f"{len(acts)} activation rows but {len(yi)} labels")
    progress = _Throttled(on_progress)
    progress(0.0, "adapting the last blocks", force=True)
    head, state, feats, meta = _adapt(
        tail,
        acts,
        yi,
        labels,
        what="adapting the last blocks",
        epochs=epochs,
        lr=lr,
        head_lr=head_lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        patience=patience,
        val_fraction=val_fraction,
        seed=seed,
        device=device,
        progress=progress,
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
    on_progress: ProgressFn | None = None,
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

    labels, yi = _labels_and_indices(y, labels)
    if len(images) != len(yi):
        raise TrainingError(f"{len(images)} images but {len(yi)} labels")
    progress = _Throttled(on_progress)
    if not str(device).startswith("cuda"):
        seconds = estimate_full_seconds(net, images, batch_size, epochs, len(yi), device)
        progress(0.0, f"full fine-tuning on CPU: about {max(1, round(seconds / 60))} min", force=True)
    else:
        progress(0.0, "full fine-tuning", force=True)
    gen = torch.Generator().manual_seed(seed)
    aug = (lambda xb: random_flip_and_crop(xb, generator=gen)) if augment else None
    head, state, feats, meta = _adapt(
        net,
        images,
        yi,
        labels,
        what="full fine-tuning",
        epochs=epochs,
        lr=lr,
        head_lr=head_lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        patience=patience,
        val_fraction=val_fraction,
        seed=seed,
        device=device,
        augment=aug,
        progress=progress,
        frac0=0.01,
    )
    if feats.shape[1] != feature_dim:
        raise TrainingError(f"the network produced {feats.shape[1]} features, expected {feature_dim}")
    return TrainResult("full", head, labels, meta, state, feats)
