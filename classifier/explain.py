"""Where in a picture an answer came from: class activation maps (Zhou et al., CVPR 2016), exact.

A Pinhole model is a network, then average pooling of one or more feature maps (the last layer and,
for some representations, earlier blocks), then a linear head. Pooling and the head are linear, so
each label's score splits exactly into one contribution per place in each feature map:

    z_c = sum_d sum_(x,y) W_c[d] . F_d(x, y) / (h_d * w_d * n) + b_c

where n is the feature vector's length when the head normalises it (one positive number per picture,
so it changes no place's share). That holds for every strategy: an adapted network still ends in
pooling and the same kind of head. Nothing is retrained or approximated; the model's own graph is
run once more with the feature maps as extra outputs.

The map shown is for the answer against the other labels: W_c minus the labels' mean weight, the
part of the score that softmax does not cancel out. Only the evidence for the answer is drawn.
Columns the head reads that are not a pooled map (a coarse layout grid) carry no place and are left
out of the picture; `Explanation.coverage` says how much of the answer's evidence the picture holds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import load_arrays
from .errors import ArtifactError
from .export import activation
from .heads import LinearHead
from .multilabel import SigmoidHead
from .preprocessing import Preprocessing, frame_box, preprocess

FEATURES = "features"
PROBABILITIES = "probabilities"
# How the evidence is drawn: the longest side of the picture shown, how dark a place with no evidence
# gets, how dark what the network never sees gets, and how warm the strongest evidence is tinted.
OVERLAY_SIDE = 480
DARKEST = 0.3
OUTSIDE_LIGHT = 0.15
TINT = 0.45
JPEG_QUALITY = 85
_PASS_THROUGH = {"Flatten", "Reshape", "Squeeze", "Identity"}


@dataclass(frozen=True)
class Segment:
    """One block of the head's input columns: a pooled feature map, or columns with no place."""

    tensor: str  # the graph tensor exposed as an extra output
    pooled: bool  # True: the columns are the spatial mean of this [N, C, h, w] map


@dataclass
class Explanation:
    label_index: int
    heat: np.ndarray  # [crop, crop] evidence for the label per input pixel (>= 0, hottest = 1)
    overlay_jpeg: bytes  # the photo, lit where the evidence is
    coverage: float  # share of the label's positive evidence that has a place in the picture
    logits: np.ndarray  # the scores the contributions add up to, for checking against the model


def _producers(graph) -> dict[str, object]:
    return {out: node for node in graph.node for out in node.output}


def _int_attr(node, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return list(attr.ints) if attr.ints else attr.i
    return default


def _segments(graph, tensor: str, producers: dict, constants: dict) -> list[Segment] | None:
    """The head-input columns of `tensor`, in order, traced back to the pooled maps they average."""
    node = producers.get(tensor)
    if node is None:
        return None
    if node.op_type in _PASS_THROUGH:
        inner = _segments(graph, node.input[0], producers, constants)
        return inner if inner is not None else [Segment(tensor, pooled=False)]
    if node.op_type == "GlobalAveragePool":
        return [Segment(node.input[0], pooled=True)]
    if node.op_type == "ReduceMean":
        axes = _int_attr(node, "axes")
        if axes is None and len(node.input) > 1:
            axes = constants.get(node.input[1])
        if axes is not None and sorted(int(a) for a in np.ravel(axes)) == [2, 3]:
            return [Segment(node.input[0], pooled=True)]
        return [Segment(tensor, pooled=False)]
    if node.op_type == "Concat" and _int_attr(node, "axis") == 1:
        parts = []
        for name in node.input:
            parts.extend(_segments(graph, name, producers, constants) or [Segment(name, pooled=False)])
        return parts
    if node.op_type == "Slice":
        # The head reads a prefix of a wider concatenation (Pinhole cuts the layout cells off this way);
        # `explain` stops at the head's width, so the prefix needs no bookkeeping here.
        return _segments(graph, node.input[0], producers, constants)
    return [Segment(tensor, pooled=False)]


def explaining_graph(onnx_path: Path) -> tuple[bytes, list[Segment]]:
    """The model's graph with every map its head reads exposed as an output, and those maps in order.

    Raises:
        ArtifactError: the graph has no `features` output to trace back from.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    if FEATURES not in {o.name for o in graph.output}:
        raise ArtifactError("the model's graph has no features output, so it cannot be explained")
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    segments = _segments(graph, FEATURES, _producers(graph), constants) or [Segment(FEATURES, False)]
    existing = {o.name for o in graph.output}
    for segment in segments:
        if segment.tensor not in existing:
            graph.output.append(onnx.helper.make_empty_tensor_value_info(segment.tensor))
            existing.add(segment.tensor)
    return model.SerializeToString(), segments


class Explainer:
    """Explains one version's answers (fp32 ONNX Runtime, whatever engine serves its predictions).

    Args:
        path: the verified artifact directory.
        preprocessing: its preprocessing.
        threads: inference threads.
    """

    def __init__(self, path: Path, preprocessing: Preprocessing, threads: int = 1):
        import onnxruntime as ort

        graph, self.segments = explaining_graph(Path(path) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])
        arrays = load_arrays(Path(path), verify=False)
        # A multi-label version's labels are each their own sigmoid (classifier.multilabel.SigmoidHead).
        self.head = (
            SigmoidHead.from_arrays(arrays) if "sigmoid_weight" in arrays else LinearHead.from_arrays(arrays)
        )
        self.preprocessing = preprocessing

    def explain(self, photo, label_index: int | None = None) -> Explanation:
        """Args: photo: an upright RGB PIL image (from preprocessing.load_rgb); label_index: the label
        to explain (default: the answer). Returns: its Explanation."""
        tensor = preprocess(photo, self.preprocessing)[None]
        names = [PROBABILITIES, FEATURES] + [s.tensor for s in self.segments]
        values = self.session.run(names, {self.session.get_inputs()[0].name: tensor})
        outputs = dict(zip(names, values, strict=True))
        probabilities, features = outputs[PROBABILITIES][0], outputs[FEATURES][0]
        W, b = self.head.as_affine()
        width = W.shape[1]
        norm = float(np.linalg.norm(features[:width])) if self.head.l2_normalize else 1.0
        norm = max(norm, 1e-12)
        c = int(np.argmax(probabilities)) if label_index is None else int(label_index)
        # Softmax ignores what every label shares; a label's own sigmoid does not.
        contrast = W[c] if activation(self.head) == "sigmoid" else W[c] - W.mean(axis=0)
        crop = self.preprocessing.crop
        heat = np.zeros((crop, crop), dtype=np.float64)
        logits = b.astype(np.float64).copy()
        placed = unplaced = 0.0
        offset = 0
        for segment in self.segments:
            if offset >= width:
                break
            value = outputs[segment.tensor][0]
            channels = value.shape[0] if value.ndim > 1 else value.size
            take = min(channels, width - offset)
            weights, all_weights = contrast[offset : offset + take], W[:, offset : offset + take]
            if segment.pooled:
                maps = value[:take].astype(np.float64)  # [C, h, w]
                h, w = maps.shape[1:]
                per_place = np.tensordot(weights, maps, axes=1) / (h * w * norm)  # [h, w]
                logits += np.tensordot(all_weights, maps.mean(axis=(1, 2)), axes=1) / norm
                placed += float(np.clip(per_place, 0, None).sum())
                heat += _spread(per_place, crop)
            else:
                columns = np.ravel(value)[:take]
                logits += all_weights @ columns.astype(np.float64) / norm
                unplaced += max(float(weights @ columns) / norm, 0.0)
            offset += take
        heat = np.clip(heat, 0, None)
        top = float(heat.max())
        heat = heat / top if top > 0 else heat
        coverage = placed / (placed + unplaced) if placed + unplaced > 0 else 0.0
        overlay = _overlay(photo, heat, frame_box(*photo.size, self.preprocessing))
        return Explanation(c, heat.astype(np.float32), overlay, coverage, logits)


def _overlay(photo, heat: np.ndarray, box: tuple[float, float, float, float]) -> bytes:
    """The photo (at most OVERLAY_SIDE pixels a side) lit where the evidence is, warm where it is
    strongest, and greyed where the network does not look (outside its frame)."""
    from PIL import Image

    scale = min(1.0, OVERLAY_SIDE / max(photo.size))
    size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
    rgb = np.asarray(photo.convert("RGB").resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
    left, top, right, bottom = (round(v * scale) for v in box)
    canvas = np.full(size[::-1], np.nan, dtype=np.float32)  # nan: outside what the network sees
    framed = (max(1, right - left), max(1, bottom - top))
    resized = Image.fromarray(heat.astype(np.float32), mode="F").resize(framed, Image.Resampling.BILINEAR)
    region = np.asarray(resized, np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(bottom, size[1]), min(right, size[0])
    canvas[y0:y1, x0:x1] = region[y0 - top : y1 - top, x0 - left : x1 - left]
    outside = np.isnan(canvas)
    level = np.nan_to_num(canvas, nan=0.0)[..., None]
    # Light follows the evidence (sqrt: a place with a quarter of the top evidence is half lit).
    light = np.where(outside[..., None], OUTSIDE_LIGHT, DARKEST + (1 - DARKEST) * np.sqrt(level))
    warm = np.concatenate([np.ones_like(level), 1.0 - 0.8 * level, np.zeros_like(level)], axis=-1)
    tint = TINT * level
    blended = ((1 - tint) * rgb + tint * warm) * light
    buffer = io.BytesIO()
    Image.fromarray((np.clip(blended, 0, 1) * 255).round().astype(np.uint8)).save(
        buffer, format="JPEG", quality=JPEG_QUALITY
    )
    return buffer.getvalue()


def _spread(per_place: np.ndarray, crop: int) -> np.ndarray:
    """A map's contributions as evidence per input pixel, smoothly resampled to the crop."""
    from PIL import Image

    h, w = per_place.shape
    density = (per_place / ((crop / h) * (crop / w))).astype(np.float32)
    resized = Image.fromarray(density, mode="F").resize((crop, crop), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float64)
