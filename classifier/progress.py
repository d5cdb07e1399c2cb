"""One structured progress report for every step of a training.

A training runs named steps (choose, extract, mirror, fit, evaluate, refit, analyse, export, write). Each step
gets a plain `step(fraction, message)` callable for its own 0..1 progress; `Progress` maps that onto the
step's slice of the whole bar, never lets the bar move backwards, throttles what reaches the consumer,
and hands the consumer a `ProgressReport(stage, fraction, message)`, so nobody has to read the stage
out of the message text. A consumer may raise (Cancelled) from its callback; that propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

StepFn = Callable[[float, str], None]

# Relative cost of each step on a CPU worker, for the share of the bar it gets. Only the steps a
# training plans are counted, and the shares are renormalised over those.
STAGE_WEIGHTS = {
    "choose": 25.0,
    "extract": 40.0,
    "mirror": 25.0,
    "fit": 10.0,
    "evaluate": 1.0,
    "refit": 10.0,
    "analyse": 3.0,
    "export": 8.0,
    "write": 2.0,
}
# Adapting the network dominates everything else when it runs.
ADAPT_WEIGHT = 120.0
# Consumers write reports to a database row; more often than this is load without information.
MIN_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ProgressReport:
    """Where a training stands.

    Attributes:
        stage: the step running now (a key of STAGE_WEIGHTS).
        fraction: the whole training's progress, 0..1, never decreasing.
        message: what a person reads ("extracting 10/245").
    """

    stage: str
    fraction: float
    message: str


ReportFn = Callable[[ProgressReport], None]


class Progress:
    """The bar of one training, divided among its planned steps.

    Args:
        on_report: the consumer, or None (then reporting costs nothing).
        stages: the steps this training will run, in order.
        weights: relative cost per step (default STAGE_WEIGHTS).
        min_interval: least seconds between two reports of the same step (the first report of each
            step, and its end, always go through).
    """

    def __init__(
        self,
        on_report: ReportFn | None,
        stages: Sequence[str],
        *,
        weights: dict[str, float] | None = None,
        min_interval: float = MIN_INTERVAL_S,
    ):
        self.on_report = on_report
        weights = {**STAGE_WEIGHTS, **(weights or {})}
        total = sum(weights[s] for s in stages) or 1.0
        self.spans: dict[str, tuple[float, float]] = {}
        start = 0.0
        for stage in stages:
            end = start + weights[stage] / total
            self.spans[stage] = (start, end)
            start = end
        self.min_interval = min_interval
        self.fraction = 0.0
        self._stage: str | None = None
        self._last_time = -float("inf")

    def step(self, stage: str) -> StepFn:
        """Args: stage: a planned step. Returns: that step's `(fraction, message)` callable."""
        if stage not in self.spans:
            raise ValueError(f"step {stage!r} was not planned; planned: {', '.join(self.spans)}")
        lo, hi = self.spans[stage]

        def report(fraction: float, message: str) -> None:
            self.emit(
                stage, lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0), message, done=fraction >= 1
            )

        return report

    def emit(self, stage: str, fraction: float, message: str, *, done: bool = False) -> None:
        """Report `fraction` of the whole bar (clamped to never go back), throttled per stage."""
        if self.on_report is None:
            return
        self.fraction = max(self.fraction, min(fraction, 1.0))
        now = time.monotonic()
        if stage == self._stage and not done and now - self._last_time < self.min_interval:
            return
        self._stage, self._last_time = stage, now
        self.on_report(ProgressReport(stage, self.fraction, message))

    def finish(self, message: str = "done") -> None:
        """The last report: the whole bar, in the last planned step."""
        last = next(reversed(self.spans)) if self.spans else "write"
        self.emit(last, 1.0, message, done=True)
