"""How much of the network a training adapts: the one list of strategies, their thresholds, the choice.

The CLI, the site, the API and the data-health page import these names and numbers from here, so a
threshold changes in one place and every page that explains it follows.

- linear: a calibrated head on cached features (seconds, any device);
- partial: the last blocks of the backbone too (minutes on a CPU);
- full: every layer, from the pretrained weights (a GPU job).

On a CPU, `auto` always trains the linear head: adapting blocks there costs minutes (8 on 2,000 solar-cell
images) for a point or two, where a head on features from several depths of the network gets most of it
in seconds. Partial and full run on GPU workers, or when a person asks for them.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import TrainingError


class Strategy(StrEnum):
    AUTO = "auto"
    LINEAR = "linear"
    PARTIAL = "partial"
    FULL = "full"


# Every strategy a person can ask for ("auto" included), and the ones a training actually runs.
STRATEGY_CHOICES = tuple(s.value for s in Strategy)
TRAINED_STRATEGIES = (Strategy.LINEAR.value, Strategy.PARTIAL.value, Strategy.FULL.value)

# Training refuses a label with fewer images than this.
MIN_PER_LABEL = 2
# From this many images per label a model is useful; below it, it trains but guesses a lot.
USEFUL_PER_LABEL = 10
# Below this many images in the smallest label, adapting any convolution overfits; the head alone wins.
MIN_PER_LABEL_PARTIAL = 30
# Adapting blocks with fewer images than this in total is noise, however they are spread over labels.
MIN_TOTAL_PARTIAL = 100
# With this many images per label (and CUDA), updating every layer pays for its cost and risk.
MIN_PER_LABEL_FULL_GPU = 1000
# Labels are unbalanced when the biggest has more than this many times the images of the smallest.
IMBALANCE_RATIO = 3.0


def imbalance(counts_per_label: dict[str, int]) -> float | None:
    """How many times the biggest label outnumbers the smallest, when that exceeds IMBALANCE_RATIO.

    Args:
        counts_per_label: {label name: number of images}; empty labels are left out.
    Returns:
        the ratio, or None when the labels are balanced enough (or fewer than 2 have images).
    """
    populated = [n for n in counts_per_label.values() if n > 0]
    if len(populated) < 2:
        return None
    ratio = max(populated) / min(populated)
    return ratio if ratio > IMBALANCE_RATIO else None


def can_adapt(counts_per_label: dict[str, int]) -> bool:
    """Whether there are enough images for a GPU worker to adapt the network (else the head alone)."""
    populated = [n for n in counts_per_label.values() if n > 0]
    return (
        len(populated) >= 2
        and min(populated) >= MIN_PER_LABEL_PARTIAL
        and sum(populated) >= MIN_TOTAL_PARTIAL
    )


def parse_strategy(value: str) -> Strategy:
    """Args: value: a strategy name. Returns: the Strategy. Raises: TrainingError naming the choices."""
    try:
        return Strategy(value)
    except ValueError:
        raise TrainingError(f"unknown strategy {value!r}; use {', '.join(STRATEGY_CHOICES)}") from None


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
    if total < MIN_TOTAL_PARTIAL:
        return "linear", f"linear: {total} images in all; too few to adapt the network without overfitting"
    if not gpu:
        return "linear", (
            f"linear: {per} on a CPU, where adapting the network takes minutes for little gain "
            f"(a GPU worker adapts it from {MIN_PER_LABEL_PARTIAL} per label)"
        )
    if smallest >= MIN_PER_LABEL_FULL_GPU:
        return "full", f"full: {per} and a GPU; enough to fine-tune every layer"
    return "partial", f"partial: {per}; enough to adapt the last blocks, too few to retrain the whole network"
