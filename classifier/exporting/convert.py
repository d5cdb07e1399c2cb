"""Writing a version's serving graph (model.onnx) in each export format.

Every format starts from the graph the site runs, so every export is the same network:

- **onnx**: that graph, without weights no node reads.
- **onnx-int8**: quantized statically by ONNX Runtime's quantizer (engines.quantized: per-channel
  weights, activations calibrated once on fixed natural photos); the head stays in fp32.
- **openvino**: OpenVINO's converter reads the ONNX file and writes its IR (model.xml + model.bin) in fp32.
- **tflite**, **coreml**: torch_graph.py reads the graph back into PyTorch; litert-torch and coremltools
  convert from there (neither reads ONNX).

Each converter writes into an empty directory and returns the files it wrote (relative names).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .formats import Format


def _onnx(source: Path, out: Path, fmt: Format, info: dict) -> list[str]:
    import onnx

    from ..graphs import drop_unused_initializers

    model = onnx.load(str(source))
    drop_unused_initializers(model)  # versions made before the export pruned them carry ImageNet's classifier
    onnx.save(model, str(out / fmt.model_file))
    return [fmt.model_file]


def _onnx_int8(source: Path, out: Path, fmt: Format, info: dict) -> list[str]:
    from ..engines import quantized

    prep = info["preprocessing"]
    work = out / ".int8"
    int8 = quantized(source, tuple(prep["mean"]), tuple(prep["std"]), work)
    shutil.move(str(int8), out / fmt.model_file)
    shutil.rmtree(work, ignore_errors=True)
    return [fmt.model_file]


def _openvino(source: Path, out: Path, fmt: Format, info: dict) -> list[str]:
    import openvino as ov

    model = ov.convert_model(str(source))
    # fp32 weights: fp16 compression would move answers by more than the exact tolerance.
    ov.save_model(model, str(out / fmt.model_file), compress_to_fp16=False)
    return [fmt.model_file, Path(fmt.model_file).with_suffix(".bin").name]


def _tflite(source: Path, out: Path, fmt: Format, info: dict) -> list[str]:
    from .torch_graph import to_tflite

    to_tflite(source, out / fmt.model_file, int(info["preprocessing"]["crop"]))
    return [fmt.model_file]


def _coreml(source: Path, out: Path, fmt: Format, info: dict) -> list[str]:
    from .torch_graph import to_coreml

    classes = info["labels"] if info.get("task_type", "single_label") == "single_label" else None
    to_coreml(source, out / fmt.model_file, int(info["preprocessing"]["crop"]), classes)
    return [fmt.model_file]


CONVERTERS: dict[str, Callable[[Path, Path, Format, dict], list[str]]] = {
    "onnx": _onnx,
    "onnx-int8": _onnx_int8,
    "openvino": _openvino,
    "tflite": _tflite,
    "coreml": _coreml,
}


def convert(fmt: Format, source: Path, out: Path, info: dict) -> list[str]:
    """Write `fmt`'s model files for one version.

    Args:
        fmt: the format.
        source: the version's model.onnx.
        out: an existing, empty directory.
        info: the export's description (pinhole.json: labels, task_type, preprocessing, ...).
    Returns:
        The files written, relative to `out` (a Core ML package is one directory).
    """
    return CONVERTERS[fmt.name](Path(source), Path(out), fmt, info)
