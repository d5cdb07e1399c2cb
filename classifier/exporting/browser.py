"""The graph a share page runs on the visitor's device: the version's own, plus "none of these".

The site's Predictor scores how unusual a picture is (unknown.UnknownDetector) in NumPy, outside the
graph. A browser has only the graph, so the detector is appended to it as ONNX operators:

    standardise the last layer's features on the training images (mean, scale), unit length,
    cosine to each reference picture (MatMul), k-th largest (TopK), unknown_score = 1 - that

and `unknown` = 1.0 where the score is above the detector's threshold (the server's rule, with the
threshold inside the graph, so the page needs no number of its own). Outputs: `probabilities` [N, K]
and, where the version has a detector, `unknown_score` and `unknown` [N, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..artifacts import ONNX_FILE, UNKNOWN_PREFIX, load_arrays, read_manifest, split_prefixed, verify_artifact
from ..unknown import UnknownDetector

UNKNOWN_OUTPUT = "unknown_score"
UNKNOWN_FLAG = "unknown"
_VERSION = 2  # bump when the appended nodes change, so cached graphs are rebuilt


def detector_of(model_dir: Path) -> UnknownDetector | None:
    """The version's fitted detector, or None for a version made without one."""
    arrays = split_prefixed(load_arrays(Path(model_dir), verify=False), UNKNOWN_PREFIX)
    return UnknownDetector.from_arrays(arrays) if arrays else None


def append_unknown_score(model, detector: UnknownDetector) -> None:
    """Add the detector's score and verdict to a serving graph (onnx.ModelProto, in place)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    width = int(detector.mean_.shape[0])
    constants = {
        "pinhole_u_mean": detector.mean_.astype(np.float32)[None, :],
        "pinhole_u_scale": detector.scale_.astype(np.float32)[None, :],
        "pinhole_u_reference": np.ascontiguousarray(detector.reference_.T, dtype=np.float32),
        "pinhole_u_starts": np.array([0], np.int64),
        "pinhole_u_ends": np.array([width], np.int64),
        "pinhole_u_axis": np.array([1], np.int64),
        "pinhole_u_k": np.array([detector.k_], np.int64),
        "pinhole_u_kth_from": np.array([detector.k_ - 1], np.int64),
        "pinhole_u_kth_to": np.array([detector.k_], np.int64),
        "pinhole_u_eps": np.array(1e-12, np.float32),
        "pinhole_u_one": np.array(1.0, np.float32),
        "pinhole_u_threshold": np.array(detector.threshold_, np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    node = helper.make_node
    graph.node.extend(
        [
            node(
                "Slice",
                ["features", "pinhole_u_starts", "pinhole_u_ends", "pinhole_u_axis"],
                ["pinhole_u_last"],
            ),
            node("Sub", ["pinhole_u_last", "pinhole_u_mean"], ["pinhole_u_centred"]),
            node("Div", ["pinhole_u_centred", "pinhole_u_scale"], ["pinhole_u_z"]),
            node("ReduceL2", ["pinhole_u_z"], ["pinhole_u_norm"], axes=[1], keepdims=1),
            node("Max", ["pinhole_u_norm", "pinhole_u_eps"], ["pinhole_u_safe_norm"]),
            node("Div", ["pinhole_u_z", "pinhole_u_safe_norm"], ["pinhole_u_unit"]),
            node("MatMul", ["pinhole_u_unit", "pinhole_u_reference"], ["pinhole_u_similarity"]),
            node(
                "TopK",
                ["pinhole_u_similarity", "pinhole_u_k"],
                ["pinhole_u_top", "pinhole_u_top_index"],
                axis=1,
            ),
            node(
                "Slice",
                ["pinhole_u_top", "pinhole_u_kth_from", "pinhole_u_kth_to", "pinhole_u_axis"],
                ["pinhole_u_kth"],
            ),
            node("Sub", ["pinhole_u_one", "pinhole_u_kth"], [UNKNOWN_OUTPUT]),
            node("Greater", [UNKNOWN_OUTPUT, "pinhole_u_threshold"], ["pinhole_u_above"]),
            node("Cast", ["pinhole_u_above"], [UNKNOWN_FLAG], to=TensorProto.FLOAT),
        ]
    )
    graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1])
        for name in (UNKNOWN_OUTPUT, UNKNOWN_FLAG)
    )


def browser_graph(model_dir: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """The version's graph for a browser, written once per version under `cache_dir`.

    Args:
        model_dir: the version's directory (verified).
        cache_dir: where built graphs are kept (never inside the immutable version).
    Returns:
        The .onnx file: outputs `probabilities` and, with a detector, `unknown_score` and `unknown`.
    """
    import onnx

    model_dir = Path(model_dir)
    # Every visitor's download asks for it: a built graph is found from the manifest alone; the whole
    # version is hashed only the once it is built.
    target = Path(cache_dir) / f"{read_manifest(model_dir)['manifest_sha256'][:24]}-v{_VERSION}.onnx"
    if target.is_file():
        return target
    verify_artifact(model_dir)
    model = onnx.load(str(model_dir / ONNX_FILE))
    detector = detector_of(model_dir)
    if detector is not None:
        append_unknown_score(model, detector)
    # The page needs the answer and the score; the features stay inside the graph.
    for output in [
        o for o in model.graph.output if o.name not in ("probabilities", UNKNOWN_OUTPUT, UNKNOWN_FLAG)
    ]:
        model.graph.output.remove(output)
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(target)
    return target
