"""The serving graph: backbone (adapted or not) + head + softmax as one ONNX model.

`model.onnx` takes a preprocessed image batch `images` [N, 3, H, W] float32 and gives `probabilities`
[N, K] (in the manifest's label order) and `features` [N, D] (the pooled backbone output, for the
unknown-input score). The site, the API and a downloaded artifact all run this one file, so their
answers agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .heads import LinearHead


def serving_module(net, head: LinearHead):
    """A torch module computing exactly head.predict_proba(net(x)), and the features.

    Args:
        net: a BackboneNet (its tail may be adapted by the partial / full strategies).
        head: a fitted LinearHead on that net's features.
    Returns:
        torch.nn.Module mapping image [N,3,H,W] -> (probabilities [N,K], features [N,D]).
    """
    import torch

    W, b = head.as_affine()

    class Serving(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(W, dtype=np.float32)))
            self.register_buffer("bias", torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)))
            self.l2 = bool(head.l2_normalize)

        def forward(self, image):
            features = self.net(image)
            u = features
            if self.l2:
                u = features / torch.clamp(torch.linalg.vector_norm(features, dim=1, keepdim=True), min=1e-12)
            probabilities = torch.softmax(u @ self.weight.T + self.bias, dim=1)
            return probabilities, features

    return Serving().eval()


def export_serving_onnx(net, head: LinearHead, path: Path, crop: int) -> Path:
    """Write the serving graph to `path` (dynamic batch size).

    Args:
        net: BackboneNet.
        head: fitted LinearHead.
        path: destination .onnx file.
        crop: input height and width.
    Returns:
        path.
    """
    from .features import export_onnx

    module = serving_module(net, head)
    export_onnx(module, Path(path), crop, output_names=["probabilities", "features"])
    return Path(path)


def append_head_onnx(backbone_onnx: Path, head: LinearHead, path: Path) -> Path:
    """Serving graph for the linear strategy without re-tracing the backbone: append the head's nodes.

    The extractor's cached backbone graph (outputs `features` and `logits`) already computed every
    training feature; adding the folded head to it takes milliseconds where a torch export takes
    seconds, and the served network is then exactly the one the head was trained on.

    Args:
        backbone_onnx: the extractor's exported backbone.
        head: fitted LinearHead on its features.
        path: destination .onnx file.
    Returns:
        path.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(backbone_onnx))
    graph = model.graph
    # The ImageNet classifier is not part of a Pinhole model.
    for node in [n for n in graph.node if "logits" in n.output]:
        graph.node.remove(node)
    for output in [o for o in graph.output if o.name != "features"]:
        graph.output.remove(output)
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
            helper.make_node("Softmax", ["pinhole_logits"], ["probabilities"], axis=1),
        ]
    )
    probabilities = helper.make_tensor_value_info(
        "probabilities", onnx.TensorProto.FLOAT, ["batch", W.shape[0]]
    )
    graph.output.insert(0, probabilities)
    onnx.checker.check_model(model)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path
