"""The serving graph: backbone (adapted or not) + head + softmax as one ONNX model.

`model.onnx` takes a preprocessed image batch `images` [N, 3, H, W] float32 and gives `probabilities`
[N, K] (in the manifest's label order; a multi-label head's `activation` is "sigmoid", and each column
is then that label's own probability) and `features` [N, D] (the pooled backbone output, for the
unknown-input score). The site, the API and a downloaded artifact all run this one file, so their
answers agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TrainingError
from .heads import LinearHead

# Largest difference in any probability allowed between the exported graph and the trained model.
EXPORT_TOLERANCE = 1e-4
# Cached features may come from a GPU worker in half precision: the served network's must point the same
# way, loosely.
MIN_FEATURE_COSINE = 0.99


def activation(head) -> str:
    """ "softmax" (one answer among the labels) or "sigmoid" (each label on its own: multi-label)."""
    return getattr(head, "activation", "softmax")


def serving_module(net, head: LinearHead, taps: tuple[int, ...] = (), layout_taps: tuple[int, ...] = ()):
    """A torch module computing exactly head.predict_proba(features), and the features.

    Args:
        net: a BackboneNet (its tail may be adapted by the partial / full strategies).
        head: a fitted LinearHead on that net's features.
        taps: blocks whose pooled outputs the head also reads (after the features), or () for none.
        layout_taps: blocks whose grid cells it reads after those (Backbone.layout_taps), or ().
    Returns:
        torch.nn.Module mapping image [N,3,H,W] -> (probabilities [N,K], features [N,D]), the features
        being what the head reads.
    """
    import torch

    W, b = head.as_affine()
    sigmoid = activation(head) == "sigmoid"

    class Serving(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(W, dtype=np.float32)))
            self.register_buffer("bias", torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)))
            self.l2 = bool(head.l2_normalize)

        def forward(self, image):
            if taps:
                last, pooled = self.net.forward_with_taps(image, taps, layout_taps)
                features = torch.cat([last, pooled], dim=1)
            else:
                features = self.net(image)
            u = features
            if self.l2:
                u = features / torch.clamp(torch.linalg.vector_norm(features, dim=1, keepdim=True), min=1e-12)
            logits = u @ self.weight.T + self.bias
            if sigmoid:
                return torch.sigmoid(logits), features
            return torch.softmax(logits, dim=1), features

    return Serving().eval()


def export_serving_onnx(
    net,
    head: LinearHead,
    path: Path,
    crop: int,
    *,
    taps: tuple[int, ...] = (),
    layout_taps: tuple[int, ...] = (),
) -> Path:
    """Write the serving graph to `path` (dynamic batch size).

    Args:
        net: BackboneNet.
        head: fitted LinearHead.
        path: destination .onnx file.
        crop: input height and width.
        taps, layout_taps: as in serving_module.
    Returns:
        path.
    """
    from .graphs import export_onnx

    module = serving_module(net, head, taps, layout_taps)
    export_onnx(module, Path(path), crop, output_names=["probabilities", "features"])
    return Path(path)


def append_head_onnx(backbone_onnx: Path, head: LinearHead, path: Path, *, with_taps: bool = False) -> Path:
    """Serving graph for the linear strategy without re-tracing the backbone: append the head's nodes.

    The extractor's cached backbone graph (outputs `features` and `logits`) already computed every
    training feature; adding the folded head to it takes milliseconds where a torch export takes
    seconds, and the served network is then exactly the one the head was trained on.

    Args:
        backbone_onnx: the extractor's exported backbone (outputs features, logits and taps).
        head: fitted LinearHead on its features.
        path: destination .onnx file.
        with_taps: the head reads the features and then the taps (and the layout cells after them, when
            it is that wide); the graph's `features` output is then the leading columns of that
            concatenation the head reads, so a Predictor's unknown score sees what the head saw.
    Returns:
        path.
    """
    import onnx
    from onnx import helper, numpy_helper

    from .graphs import drop_unused_initializers

    model = onnx.load(str(backbone_onnx))
    graph = model.graph
    # The ImageNet classifier is not part of a Pinhole model.
    for node in [n for n in graph.node if "logits" in n.output]:
        graph.node.remove(node)
    for output in [o for o in graph.output if o.name != "features"]:
        graph.output.remove(output)
    if with_taps:
        # The pooled last layer becomes an inner tensor; `features` is now it followed by the taps.
        for node in graph.node:
            node.output[:] = ["pinhole_last" if name == "features" else name for name in node.output]
            node.input[:] = ["pinhole_last" if name == "features" else name for name in node.input]
        graph.node.append(helper.make_node("Concat", ["pinhole_last", "taps"], ["pinhole_depths"], axis=1))
        # A head on the multi-depth vector alone stops before the layout cells.
        graph.initializer.extend(
            numpy_helper.from_array(np.array([v], dtype=np.int64), name)
            for name, v in (("pinhole_from", 0), ("pinhole_to", head.coef_.shape[1]), ("pinhole_axis", 1))
        )
        graph.node.append(
            helper.make_node(
                "Slice", ["pinhole_depths", "pinhole_from", "pinhole_to", "pinhole_axis"], ["features"]
            )
        )
        graph.output[0].type.tensor_type.shape.dim[1].dim_value = head.coef_.shape[1]
    W, b = head.as_affine()
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.ascontiguousarray(W, dtype=np.float32), "pinhole_head_weight"),
            numpy_helper.from_array(np.ascontiguousarray(b, dtype=np.float32), "pinhole_head_bias"),
        ]
    )
    head_input = "features"
    if head.l2_normalize:
        graph.node.append(helper.make_node("LpNormalization", ["features"], ["pinhole_unit"], axis=1, p=2))
        head_input = "pinhole_unit"
    graph.node.extend(
        [
            helper.make_node(
                "Gemm", [head_input, "pinhole_head_weight", "pinhole_head_bias"], ["pinhole_logits"], transB=1
            ),
            helper.make_node("Sigmoid", ["pinhole_logits"], ["probabilities"])
            if activation(head) == "sigmoid"
            else helper.make_node("Softmax", ["pinhole_logits"], ["probabilities"], axis=1),
        ]
    )
    probabilities = helper.make_tensor_value_info(
        "probabilities", onnx.TensorProto.FLOAT, ["batch", W.shape[0]]
    )
    graph.output.insert(0, probabilities)
    drop_unused_initializers(model)
    onnx.checker.check_model(model)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


def check_serving_export(
    onnx_path: Path,
    net,
    head: LinearHead,
    sources: list,
    prep,
    *,
    taps: tuple[int, ...] = (),
    layout_taps: tuple[int, ...] = (),
) -> None:
    """The exported graph must give the torch model's answers on real inputs before anything ships it.

    Args:
        onnx_path: the exported serving graph.
        net: the network it was exported from.
        head: the head it carries.
        sources: a few training images.
        prep: the backbone's preprocessing.
        taps, layout_taps: as in serving_module.
    Raises:
        TrainingError: a probability differs by more than EXPORT_TOLERANCE.
    """
    if not sources:
        return
    import torch

    from .engines import make_session
    from .finetune import images_tensor
    from .graphs import INPUT_NAME

    batch = images_tensor(sources, prep)
    with torch.inference_mode():
        expected = serving_module(net, head, taps, layout_taps)(batch)[0].numpy()
    got = make_session(onnx_path).run(["probabilities"], {INPUT_NAME: batch.numpy()})[0]
    worst = float(np.abs(expected - got).max())
    if worst > EXPORT_TOLERANCE:
        raise TrainingError(f"the exported model disagrees with the trained one (max difference {worst:.2g})")


def check_appended_head(
    onnx_path: Path, head: LinearHead, sources: list, cached: list, prep, *, precision: str = "fp32"
) -> None:
    """The appended head must reproduce the trained head, on features that match the cached ones.

    The graph runs in fp32 here (the file people download); the cached vectors may come from a faster
    engine, and are then held to that engine's measured bound (engines.FEATURE_COSINE).

    Args:
        onnx_path: the serving graph from append_head_onnx.
        head: the head it carries.
        sources: a few training images.
        cached: their cached feature vectors (what the head was trained on).
        prep: the backbone's preprocessing.
        precision: the engines.Precision that computed `cached`.
    Raises:
        TrainingError: a probability differs by more than EXPORT_TOLERANCE, or the graph's features
            point elsewhere than the cached ones (the cache holds another network's vectors).
    """
    if not sources:
        return
    from .engines import FEATURE_COSINE, Precision, make_session
    from .graphs import INPUT_NAME
    from .predict import preprocess_batch

    probabilities, features = make_session(onnx_path).run(
        ["probabilities", "features"], {INPUT_NAME: preprocess_batch(sources, prep)}
    )
    worst = float(np.abs(head.predict_proba(features) - probabilities).max())
    if worst > EXPORT_TOLERANCE:
        raise TrainingError(f"the exported head disagrees with the trained one (max difference {worst:.2g})")
    reference = np.stack(cached)
    cosine = np.sum(features * reference, axis=1) / (
        np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12
    )
    if float(cosine.min()) < min(MIN_FEATURE_COSINE, FEATURE_COSINE[Precision(precision)]):
        raise TrainingError(
            "the exported network's features differ from the cached ones "
            f"(cosine {float(cosine.min()):.3f}); the feature cache may hold another network's vectors"
        )
