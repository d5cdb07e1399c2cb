"""Is an export's answer the version's answer? Checked on real pictures before an export is offered.

The reference is the version's own graph (model.onnx) run in fp32 by ONNX Runtime: what the site
answers with PINHOLE_ENGINE=fp32 (a host whose engine is bf16 answers within about 0.016 of it; see
engines.py). The export runs through the predict.py it ships (standalone.Model), on the same prepared
pictures. A format with no runtime on Linux (Core ML) is checked by what can be checked here: the
PyTorch program it was converted from answers like the version, and its specification has the
version's input, outputs and labels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .formats import MIN_TOP_AGREEMENT, Format


@dataclass(frozen=True)
class Parity:
    """How an export's answers compare with the version's.

    Attributes:
        pictures: how many pictures were compared.
        top_agreement: the share of them with the same top label.
        max_difference: the largest difference in any probability.
        tolerance: the largest the format is allowed.
        method: "answers" (the export itself ran) or "converted program and specification" (Core ML).
        passed: whether it may be offered.
    """

    pictures: int
    top_agreement: float
    max_difference: float
    tolerance: float
    method: str
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One sentence for a page or an error message."""
        return (
            f"same top label on {self.top_agreement:.1%} of {self.pictures} pictures, probabilities within "
            f"{self.max_difference:.2g} (allowed: {MIN_TOP_AGREEMENT:.0%} and {self.tolerance:g})"
        )


def reference(source: Path, batch: np.ndarray) -> np.ndarray:
    """The version's own probabilities [N, K] for prepared pictures, fp32 ONNX Runtime."""
    from .standalone import _onnxruntime

    return _in_chunks(_onnxruntime(Path(source)), batch)


def _in_chunks(run, batch: np.ndarray, size: int = 16) -> np.ndarray:
    return np.concatenate([run(batch[i : i + size]) for i in range(0, len(batch), size)])


def _compare(expected: np.ndarray, got: np.ndarray, fmt: Format, method: str) -> Parity:
    agreement = float(np.mean(expected.argmax(1) == got.argmax(1))) if len(expected) else 0.0
    worst = float(np.abs(expected - got).max()) if len(expected) else float("inf")
    return Parity(
        pictures=len(expected),
        top_agreement=round(agreement, 4),
        max_difference=worst,
        tolerance=fmt.tolerance,
        method=method,
        passed=bool(len(expected)) and agreement >= MIN_TOP_AGREEMENT and worst <= fmt.tolerance,
    )


def check(
    fmt: Format,
    directory: Path,
    source: Path,
    batch: np.ndarray,
    expected: np.ndarray,
    labels: list[str] | None,
) -> Parity:
    """Compare a written export with the version.

    Args:
        fmt: its format.
        directory: the export (model files and pinhole.json).
        source: the version's model.onnx.
        batch: prepared pictures [N, 3, crop, crop].
        expected: reference(source, batch).
        labels: the labels a Core ML classifier must carry (None: multi-label, no class labels).
    Returns:
        The comparison (`passed` says whether it may be offered).
    """
    if fmt.checked:
        from .standalone import Model

        model = Model(directory)
        return _compare(expected, _in_chunks(model.probabilities, batch), fmt, "answers")
    import torch

    from .torch_graph import torch_module

    with torch.inference_mode():
        got = torch_module(source)(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
    parity = _compare(expected, got, fmt, "converted program and specification")
    problem = coreml_spec_problem(directory / fmt.model_file, batch.shape[-1], labels)
    if problem:
        raise ValueError(f"the Core ML model is not what was converted: {problem}")
    return parity


def coreml_spec_problem(path: Path, crop: int, labels: list[str] | None) -> str:
    """What is wrong with a Core ML package's specification ("" when nothing): its input must be
    `images` [1, 3, crop, crop], and a classifier must carry every label."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    inputs = {i.name: list(i.type.multiArrayType.shape) for i in spec.description.input}
    if inputs != {"images": [1, 3, crop, crop]}:
        return f"its input is {inputs}, not images [1, 3, {crop}, {crop}]"
    if not spec.description.output:
        return "it has no output"
    if labels:
        if not spec.description.predictedFeatureName:
            return "it is not a classifier"
        # A classifier's labels are string constants of its program.
        program = str(spec.mlProgram)
        missing = [name for name in labels if f"values: {json.dumps(name)}" not in program]
        if missing:
            return f"it lacks the labels {', '.join(missing[:5])}"
    return ""
