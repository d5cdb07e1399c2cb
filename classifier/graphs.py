"""Exporting torch modules to self-contained ONNX files (needs torch; serving them does not)."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

OPSET = 17
INPUT_NAME = "images"


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    return Path(tmp)


def export_onnx(
    module: Any,
    path: str | os.PathLike,
    crop: int,
    *,
    input_name: str = INPUT_NAME,
    output_names: Sequence[str] = ("features",),
    opset: int = OPSET,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Exports a torch module taking [N, 3, crop, crop] images to one self-contained ONNX file.

    Uses the TorchScript exporter (`dynamo=False`): the dynamo exporter of this torch version needs
    onnxscript, which Pinhole does not depend on. The batch axis is dynamic; the spatial size is fixed.
    Written to a temporary name and renamed, so a reader never sees half a file.

    Args:
        module: a torch.nn.Module (put in eval mode here).
        path: destination file.
        crop: image side the model is traced with.
        input_name, output_names: graph names (one output name per tensor the module returns).
        opset: ONNX opset.
        metadata: strings stored in the model's metadata_props (readable from an ORT session
            without torch).
    Returns:
        The path written.
    """
    import torch

    path = Path(path)
    module = module.eval()
    dummy = torch.zeros((2, 3, crop, crop), dtype=torch.float32)
    dynamic_axes = {input_name: {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
    tmp = _atomic_target(path)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The legacy exporter warns about its own deprecation and about shapes read as Python ints
            # (SAME padding); both are expected: the crop size is fixed by design.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (dummy,),
                str(tmp),
                dynamo=False,
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                export_params=True,
            )
        if metadata:
            import onnx

            model = onnx.load(str(tmp))
            for key, value in metadata.items():
                model.metadata_props.add(key=key, value=value)
            onnx.save(model, str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
