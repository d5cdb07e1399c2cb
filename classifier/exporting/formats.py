"""The formats a model version can be exported to: names, files, what converts them, what runs them.

One row per format; the CLI, the API, the site and the bundle's README all read this table.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

# An export is offered only when its answers on the check pictures agree with the version's own:
# the same top label on at least this share of them ...
MIN_TOP_AGREEMENT = 0.99
# ... and no probability further than this from the version's.
MAX_PROBABILITY_DIFFERENCE = 0.01
# The ONNX fp32 export is the version's own graph: it must agree to rounding.
EXACT_DIFFERENCE = 1e-4
# int8 cannot meet 0.01 on our networks: measured on hymenoptera/val with EfficientNet-Lite0, rounding
# only the weights to int8 (per channel) already moved a probability by 0.155, and the full static int8
# graph by 0.157 to 0.20 (calibrated on the project's photos or on fixed ones), while the top label
# stayed the same on 99.4 to 100 % of the pictures. The int8 export is held to the top-label rule and to
# this looser bound, and its page and README say how far its probabilities moved.
INT8_DIFFERENCE = 0.25


@dataclass(frozen=True)
class Format:
    """One export format.

    Attributes:
        name: what the CLI, the API and the site call it.
        title: how a page names it.
        model_file: the model's file name inside the export.
        converter: Python modules the conversion needs (installed with the `export` extra where they
            are not Pinhole's own dependencies).
        runtime: Python modules that run it on Linux, for the parity check and the bundled predict.py;
            empty where no runtime runs on Linux.
        tolerance: the largest probability difference allowed from the version's own answers.
        note: one sentence for people deciding which to download.
        no_linux_runtime: why the parity check cannot run (only where `runtime` is empty).
    """

    name: str
    title: str
    model_file: str
    converter: tuple[str, ...]
    runtime: tuple[str, ...]
    tolerance: float
    note: str
    no_linux_runtime: str = ""

    def missing(self) -> list[str]:
        """Returns: the converter and runtime modules this host lacks (empty: it can export here)."""
        return [m for m in (*self.converter, *self.runtime) if importlib.util.find_spec(m) is None]

    @property
    def checked(self) -> bool:
        """Whether its answers are checked against the version's before it is offered."""
        return bool(self.runtime)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "onnx",
            "ONNX (fp32)",
            "model.onnx",
            converter=("onnx",),
            runtime=("onnxruntime",),
            tolerance=EXACT_DIFFERENCE,
            note="The network the site runs, exactly; ONNX Runtime runs it on servers, phones and browsers.",
        ),
        Format(
            "onnx-int8",
            "ONNX (int8)",
            "model.onnx",
            converter=("onnx", "onnxruntime"),
            runtime=("onnxruntime",),
            tolerance=INT8_DIFFERENCE,
            note=(
                "A quarter of the size and about twice as fast on CPUs; the same top label as the site's on "
                "at least 99 % of pictures, but probabilities can move by up to 0.2."
            ),
        ),
        Format(
            "openvino",
            "OpenVINO IR",
            "model.xml",
            converter=("openvino",),
            runtime=("openvino",),
            tolerance=EXACT_DIFFERENCE,
            note="For Intel CPUs, GPUs and NPUs (OpenVINO Runtime); model.xml with its weights in model.bin.",
        ),
        Format(
            "tflite",
            "TensorFlow Lite (LiteRT)",
            "model.tflite",
            converter=("onnx2torch", "litert_torch"),
            runtime=("ai_edge_litert",),
            tolerance=MAX_PROBABILITY_DIFFERENCE,
            note="For Android, iOS and microcontroller apps (LiteRT, formerly TensorFlow Lite).",
        ),
        Format(
            "coreml",
            "Core ML",
            "model.mlpackage",
            converter=("onnx2torch", "coremltools"),
            runtime=(),
            tolerance=MAX_PROBABILITY_DIFFERENCE,
            note="For iPhone, iPad and Mac apps (Core ML); a classifier model with the labels inside.",
            no_linux_runtime=(
                "Core ML runs only on Apple's systems: coremltools converts on Linux but cannot predict "
                "there, so this export is checked by its specification (inputs, outputs, labels), not its answers"
            ),
        ),
    )
}

# TF.js: the newest tensorflowjs (4.22, 2024) pulls TensorFlow 2.19 with NumPy 2.1 and protobuf 5 (checked
# with pip on 2026-12-03), below Pinhole's NumPy 2.4 and protobuf 7, and converts only TensorFlow models,
# which would need a second converter (ONNX -> TensorFlow) on top. Browsers are served by the ONNX export
# with onnxruntime-web instead (the share page's "run on this device").
UNAVAILABLE = {
    "tfjs": (
        "TF.js is not offered: the TF.js converter on PyPI needs older NumPy and protobuf than Pinhole's; "
        "run the ONNX export in the browser with onnxruntime-web instead"
    ),
}


def get(name: str) -> Format:
    """Args: name: a format's name. Returns: its Format. Raises: ValueError naming the choices."""
    try:
        return FORMATS[name]
    except KeyError:
        if name in UNAVAILABLE:
            raise ValueError(UNAVAILABLE[name]) from None
        raise ValueError(f"unknown export format {name!r}; use one of {', '.join(FORMATS)}") from None
