"""The version's ONNX graph read back into PyTorch, and the converters that start from PyTorch.

litert-torch (LiteRT / TFLite) and coremltools (Core ML) convert PyTorch programs, not ONNX files.
Rebuilding the network from its weights would need the backbone's pretrained weights on the exporting
host and would be a second description of a graph that already exists; instead onnx2torch reads the
served graph itself, so the converted network is the one the site runs, whatever the backbone,
strategy or head. Three things in our graphs need help first:

- Constant nodes become initializers, so a Slice's bounds are known when the module is built;
- Slice with constant bounds becomes plain indexing (onnx2torch's own Slice reads its bounds while
  the program runs, which torch.export cannot trace);
- LpNormalization (the head's unit-length step; onnx2torch has no converter for it) becomes ReduceL2 + Div;
- every node gets a unique name (the head's appended nodes have none).

Only the `probabilities` output is kept: apps that use these formats want the answer.
Needs the `export` extra (onnx2torch, litert-torch, coremltools).
"""

from __future__ import annotations

from pathlib import Path

OUTPUT = "probabilities"


def prepared_graph(source: Path):
    """The serving graph, rewritten as the module docstring says. Returns: an onnx.ModelProto."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    for output in [o for o in graph.output if o.name != OUTPUT]:
        graph.output.remove(output)
    for node in [n for n in graph.node if n.op_type == "Constant"]:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if value is not None:
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(value.t), node.output[0]))
            graph.node.remove(node)
    for node in list(graph.node):
        if node.op_type != "LpNormalization":
            continue
        norm = f"{node.output[0]}_l2"
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, helper.make_node("Div", [node.input[0], norm], list(node.output)))
        graph.node.insert(
            position, helper.make_node("ReduceL2", [node.input[0]], [norm], axes=[1], keepdims=1)
        )
    # onnx2torch names unnamed nodes "<op>_<n>", which can collide with a traced node's own name.
    for index, node in enumerate(graph.node):
        node.name = f"n{index}_{node.op_type}"
    return model


def _constant_slice_converter():
    """An onnx2torch converter for Slice whose bounds are initializers: plain indexing."""
    import torch
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    class ConstantSlice(torch.nn.Module):
        def __init__(self, index: tuple):
            super().__init__()
            self.index = index

        def forward(self, x):
            return x[self.index]

    def convert(node, graph):
        names = list(node.input_values[1:]) + [None] * (4 - len(node.input_values[1:]))
        if any(name is not None and name not in graph.initializers for name in names):
            raise NotImplementedError("a Slice whose bounds are computed while the network runs")
        starts, ends, axes, steps = (
            graph.initializers[name].to_torch().tolist() if name else None for name in names
        )
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        if min(axes) < 0:
            raise NotImplementedError("a Slice on a negative axis")
        index = [slice(None)] * (max(axes) + 1)
        for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
            index[axis] = slice(start, end, step)
        return OperationConverterResult(
            torch_module=ConstantSlice(tuple(index)),
            onnx_mapping=OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values),
        )

    return convert


def torch_module(source: Path):
    """The serving graph as a PyTorch module: images [N, 3, crop, crop] -> probabilities [N, K]."""
    from onnx2torch import convert
    from onnx2torch.node_converters import registry

    # onnx2torch has no public way to replace a converter; its registry is a dict keyed by operation.
    for description in [d for d in registry._CONVERTER_REGISTRY if d.operation_type == "Slice"]:
        registry._CONVERTER_REGISTRY[description] = _constant_slice_converter()
    return convert(prepared_graph(source)).eval()


def _example(crop: int):
    import torch

    return (torch.zeros((1, 3, crop, crop), dtype=torch.float32),)


def to_tflite(source: Path, target: Path, crop: int) -> None:
    """Write a LiteRT (.tflite) model taking one NCHW image, giving its probabilities."""
    import litert_torch

    litert_torch.convert(torch_module(source), _example(crop)).export(str(target))


def to_coreml(source: Path, target: Path, crop: int, classes: list[str] | None) -> None:
    """Write a Core ML program (.mlpackage) in fp32.

    Args:
        classes: the labels, for a single-label model (Core ML then answers with a label and a
            dictionary of probabilities); None for a multi-label one (an array of probabilities).
    """
    import coremltools as ct
    import torch

    traced = torch.jit.trace(torch_module(source), _example(crop))
    options = {"classifier_config": ct.ClassifierConfig(list(classes))} if classes else {}
    model = ct.convert(
        traced,
        inputs=[ct.TensorType(name="images", shape=(1, 3, crop, crop))],
        outputs=None if classes else [ct.TensorType(name=OUTPUT)],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT32,
        minimum_deployment_target=ct.target.iOS15,
        **options,
    )
    model.save(str(target))
