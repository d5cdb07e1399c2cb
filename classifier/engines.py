"""Which engine runs a network on this host's CPU, and why: fp32, bf16 or int8.

The rule, from measurements of the same EfficientNet-Lite0 graph on the same photos (bench/README.md):

- **bf16** (OpenVINO) where the CPU has bf16 matrix units (AMX-BF16 or AVX-512 BF16): 2.0-2.7x the
  fp32 network rate; features within cosine 0.988 of fp32 on every set we measured (0.997 on average),
  the same hymenoptera accuracy. `auto` takes it.
- **int8**, only when asked for: the network quantized statically (weights per channel, activations
  calibrated once on fixed natural photos, so every host makes the same file) and run by OpenVINO;
  2.7-4.8x, but features only within cosine 0.86 on solar-cell scans and 0.66 points of hymenoptera
  accuracy lost, so it does not pay by default.
- **fp32** (ONNX Runtime) everywhere else.

A setting (`PINHOLE_ENGINE=auto|fp32|bf16|int8`) forces a path; a forced path this host cannot run
falls back to fp32 and says so. The downloadable model stays the portable fp32 ONNX file: only the
way this host runs it changes. Features from different precisions are cached under different keys
(`cache_suffix`), so a head is always trained on vectors from the engine that serves it.

This module must not import torch: the web process serves predictions without it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import numpy as np

ENGINE_ENV = "PINHOLE_ENGINE"
CPUINFO = Path("/proc/cpuinfo")


class Precision(StrEnum):
    """How a network's arithmetic runs: the reference fp32, or a faster one."""

    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


SETTINGS = ("auto", *Precision)

# CPU flags (as /proc/cpuinfo spells them) that make a precision pay.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
INT8_FLAGS = frozenset({"amx_int8", "avx512_vnni", "avx_vnni"})

# The measured worst cosine between a faster path's pooled features and fp32's on real photos
# (hymenoptera: bf16 0.995, int8 0.986; bench/README.md), rounded down with a margin. Tests hold each path to its bound; the exported
# model's check holds the site's features to it.
FEATURE_COSINE = {Precision.FP32: 0.9999, Precision.BF16: 0.99, Precision.INT8: 0.95}

# int8 calibration: crops of scikit-learn's two sample photos, the same on every host.
_CALIBRATION_IMAGES = 64
_QUANTIZER_VERSION = 1
# Operators left in fp32 by the quantizer: a head appended to the network (and ImageNet's) stays exact.
_HEAD_OPS = frozenset({"Gemm", "MatMul", "Softmax", "LpNormalization", "Div"})


@dataclass(frozen=True)
class EngineChoice:
    """What runs, and why (what `python -m classifier engines` prints).

    Attributes:
        precision: the precision that runs.
        runtime: "onnxruntime" or "openvino".
        reason: one sentence a person can check against their CPU.
    """

    precision: Precision
    runtime: str
    reason: str

    @property
    def cache_suffix(self) -> str:
        """What cached feature vectors of this precision add to their key ("" for fp32)."""
        return "" if self.precision is Precision.FP32 else f"+{self.precision}"


def _cpuinfo_field(names: tuple[str, ...], text: str | None) -> str | None:
    """The first processor's value of the first of `names` in /proc/cpuinfo (or `text`); None if absent."""
    if text is None:
        try:
            text = CPUINFO.read_text()
        except OSError:
            return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in names:
            return value.strip()
    return None


def cpu_flags(text: str | None = None) -> frozenset[str]:
    """Args: text: /proc/cpuinfo's contents (default: read it; empty where there is none).
    Returns: the first processor's flags."""
    return frozenset((_cpuinfo_field(("flags", "Features"), text) or "").split())


def cpu_name(text: str | None = None) -> str | None:
    """Args: text: /proc/cpuinfo's contents (default: read it). Returns: the CPU's model name, if it says."""
    return _cpuinfo_field(("model name",), text) or None


def openvino_installed() -> bool:
    """Returns: whether the openvino package can be imported here."""
    return importlib.util.find_spec("openvino") is not None


def choose(
    setting: str | None = None, flags: frozenset[str] | None = None, *, openvino: bool | None = None
) -> EngineChoice:
    """Decides the engine for this host.

    Args:
        setting: "auto", "fp32", "bf16" or "int8" (default: PINHOLE_ENGINE, else "auto").
        flags: CPU flags (default: this host's).
        openvino: whether OpenVINO is installed (default: look).
    Returns:
        EngineChoice.
    Raises:
        ValueError: an unknown setting.
    """
    setting = (setting or os.environ.get(ENGINE_ENV) or "auto").strip().lower()
    if setting not in SETTINGS:
        raise ValueError(f"{ENGINE_ENV} must be one of {', '.join(SETTINGS)}, not {setting!r}")
    flags = cpu_flags() if flags is None else flags
    openvino = openvino_installed() if openvino is None else openvino
    bf16 = sorted(flags & BF16_FLAGS)
    int8 = sorted(flags & INT8_FLAGS)
    if setting == Precision.FP32:
        return EngineChoice(Precision.FP32, "onnxruntime", f"{ENGINE_ENV}=fp32 asks for it")
    if not openvino:
        return EngineChoice(Precision.FP32, "onnxruntime", "OpenVINO is not installed: fp32 on ONNX Runtime")
    if setting == Precision.BF16 or (setting == "auto" and bf16):
        if bf16:
            return EngineChoice(Precision.BF16, "openvino", f"the CPU has bf16 units ({', '.join(bf16)})")
        return EngineChoice(
            Precision.FP32, "onnxruntime", "bf16 was asked for, but the CPU has no bf16 units"
        )
    if setting == Precision.INT8:
        if int8:
            return EngineChoice(
                Precision.INT8, "openvino", f"{ENGINE_ENV}=int8 asks for it ({', '.join(int8)})"
            )
        return EngineChoice(
            Precision.FP32, "onnxruntime", "int8 was asked for, but the CPU has no int8 units"
        )
    if int8:
        return EngineChoice(
            Precision.FP32, "onnxruntime",
            f"the CPU has no bf16 units; {ENGINE_ENV}=int8 would use its int8 units ({', '.join(int8)}), "
            "faster but less faithful",
        )  # fmt: skip
    return EngineChoice(Precision.FP32, "onnxruntime", "the CPU has no bf16 or int8 matrix units")


# --- sessions ---------------------------------------------------------------------------------------


def cpu_count() -> int:
    """Returns: the CPU cores this process may use (cgroup/affinity aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def make_session(path: str | os.PathLike, threads: int | None = None):
    """Opens an ONNX Runtime CPU session tuned for batch inference.

    Args:
        path: an .onnx file.
        threads: intra-op threads (default: every core this process may use).
    Returns:
        An onnxruntime.InferenceSession.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or cpu_count()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle ORT threads spin by default, stealing the cores the decoding threads need between batches.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class OpenVinoSession:
    """An OpenVINO compiled model behind ONNX Runtime's `run(outputs, feed)` call.

    Each calling thread gets its own infer request, so extraction lanes run side by side (one stream
    each); OpenVINO releases the GIL while it computes.

    Args:
        path: an .onnx file (int8: already quantized).
        precision: BF16 runs the graph's float arithmetic in bf16; FP32 and INT8 keep it in fp32.
        threads: inference threads in all.
        streams: how many requests may run at once (the caller's lanes).
    """

    def __init__(self, path: str | os.PathLike, precision: Precision, threads: int, streams: int = 1):

        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision is Precision.BF16 else "f32",
            "INFERENCE_NUM_THREADS": max(1, threads),
            "NUM_STREAMS": max(1, streams),
        }
        self.compiled = _core().compile_model(str(path), "CPU", config)
        self.precision = precision
        self._local = threading.local()

    def run(self, outputs: Sequence[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Args: outputs: output names; feed: {input name: array}. Returns: the outputs, in order."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer(feed)
        return [np.array(request.get_tensor(name).data, dtype=np.float32) for name in outputs]


@lru_cache(maxsize=1)
def _core():
    import openvino as ov

    return ov.Core()


def open_session(
    path: str | os.PathLike,
    choice: EngineChoice,
    threads: int,
    streams: int = 1,
    *,
    normalisation: tuple[Sequence[float], Sequence[float]] = ((0.5,) * 3, (0.5,) * 3),
    quantized_dir: str | os.PathLike | None = None,
):
    """Opens a graph on the chosen engine.

    Args:
        path: the fp32 .onnx file.
        choice: from `choose`.
        threads: inference threads in all.
        streams: requests that may run at once.
        normalisation: the graph's input (mean, std) on a 0..1 scale, for int8 calibration.
        quantized_dir: where int8 copies are kept (default: beside `path`).
    Returns:
        An object with `run(outputs, feed)`, as onnxruntime.InferenceSession has.
    """
    if choice.precision is Precision.FP32:
        return make_session(path, max(1, threads // max(1, streams)))
    if choice.precision is Precision.INT8:
        path = quantized(path, *normalisation, quantized_dir)
    return OpenVinoSession(path, choice.precision, threads, streams)


# --- int8 -------------------------------------------------------------------------------------------


def calibration_batch(crop: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Fixed calibration images: crops, flips and brightness changes of scikit-learn's two sample photos.

    Args:
        crop: the network's input side.
        mean, std: its normalisation (0..1 scale).
    Returns:
        float32 [64, 3, crop, crop], the same on every host.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(0)
    batch = np.empty((_CALIBRATION_IMAGES, 3, crop, crop), dtype=np.float32)
    mean_, std_ = np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]
    for i in range(_CALIBRATION_IMAGES):
        photo = photos[i % len(photos)]
        w, h = photo.size
        side = int(min(w, h) * rng.uniform(0.3, 1.0))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        image = photo.resize((crop, crop), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        pixels = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0 * rng.uniform(0.7, 1.3)
        if rng.random() < 0.5:
            pixels = pixels[:, :, ::-1]
        batch[i] = (np.clip(pixels, 0, 1) - mean_) / std_
    return batch


def quantized(
    path: str | os.PathLike,
    mean: Sequence[float],
    std: Sequence[float],
    directory: str | os.PathLike | None = None,
) -> Path:
    """The int8 copy of an fp32 graph, made once (atomically) and kept.

    Static quantization with ONNX Runtime's quantizer: every operator of the network (quantizing only
    its convolutions measured worse: cosine 0.63 against 0.986 with fp32) except a head's, weights per
    channel, activation ranges from `calibration_batch` (calibrating on the project's own photos
    measured no better on hymenoptera: 0.9863 against 0.9862).

    Args:
        path: the fp32 .onnx file.
        mean, std: the graph's input normalisation on a 0..1 scale.
        directory: where the copy is kept (default: beside `path`; never inside a model version).
    Returns:
        The int8 .onnx file (QDQ format, which OpenVINO runs in int8).
    """
    path = Path(path)
    directory = Path(directory) if directory else path.parent
    h = hashlib.sha256(path.read_bytes())
    h.update(repr((tuple(mean), tuple(std))).encode())
    digest = h.hexdigest()[:16]
    target = directory / f"{path.stem}-int8v{_QUANTIZER_VERSION}-{digest}.onnx"
    if target.is_file():
        return target
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(path), load_external_data=False)
    [input_] = graph.graph.input
    crop = input_.type.tensor_type.shape.dim[2].dim_value
    operators = sorted({node.op_type for node in graph.graph.node} - _HEAD_OPS)
    images = calibration_batch(crop, mean, std)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_.name: images[i : i + 8]} for i in range(0, len(images), 8)])

        def get_next(self):
            return next(self.batches, None)

    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        quantize_static(
            str(path), tmp, Reader(),
            quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=operators,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
