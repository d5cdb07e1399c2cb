"""Exporting torch modules to self-contained ONNX files (needs torch; serving them does not), the
backbones' cached exports among them, and reading what an exported graph carries."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import BackboneUnavailable

OPSET = 17
INPUT_NAME = "images"
# Bump when the exported graph changes for the same weights (wrapper outputs, opset, padding code),
# so stale cached ONNX files are not reused.
_EXPORT_VERSION = 4


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
        import onnx

        model = onnx.load(str(tmp))
        pruned = drop_unused_initializers(model)
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=key, value=value)
        if pruned or metadata:
            onnx.save(model, str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def drop_unused_initializers(model) -> int:
    """Removes the weights no node reads (an ImageNet classifier a head replaced, parameters a traced
    module never used), in place: they only add megabytes and a runtime warning per load.

    Args:
        model: an onnx.ModelProto.
    Returns:
        How many initializers were removed.
    """
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    used.update(o.name for o in graph.output)
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    names = {init.name for init in unused}
    for value in [v for v in graph.input if v.name in names]:
        graph.input.remove(value)
    return len(unused)


def backbone_onnx(
    backbone, crop: int, onnx_dir: Path, *, net=None, build: Callable[[], Any] | None = None
) -> Path:
    """A backbone's cached ONNX file (outputs features, ImageNet logits and taps), exported on first use.

    Args:
        backbone: a backbones.Backbone.
        crop: the input side.
        onnx_dir: where exports are kept.
        net: a network with random weights (tests): the file is then keyed by their hash.
        build: returns the torch network to export (pretrained: built only when the file is missing).
    Returns:
        The .onnx path. A process without torch exports in a child process (export_in_subprocess).
    """
    from .backbones import imagenet_categories

    if net is None:
        identity = f"{backbone.weights_id}|{crop}|{OPSET}|{_EXPORT_VERSION}"
    else:
        identity = f"random:{_state_digest(net)}|{crop}|{OPSET}|{_EXPORT_VERSION}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = Path(onnx_dir) / f"{backbone.cache_key}-{digest}.onnx"
    if path.is_file():
        return path
    # One export per host at a time: a worker warming up and a web process answering "Try it" would
    # otherwise both trace the network on the same cores, each taking twice as long.
    with _export_lock(path):
        if not path.is_file() and net is None and "torch" not in sys.modules:
            export_in_subprocess(backbone.name, Path(onnx_dir))
        if not path.is_file():
            network = net if net is not None else build()
            export_onnx(
                _features_logits_taps(network, backbone.taps, backbone.layout_taps),
                path,
                crop,
                output_names=("features", "logits", "taps"),
                metadata={
                    "pinhole_backbone": backbone.name,
                    "pinhole_weights_id": backbone.weights_id,
                    # The class names travel with the graph so `recognize` needs no torchvision.
                    "imagenet_categories": json.dumps(imagenet_categories()),
                },
            )
    return path


_LOCK_HELD_ENV = "PINHOLE_EXPORT_LOCK_HELD"  # set for the child that exports on its parent's behalf


@contextmanager
def _export_lock(path: Path):
    """An exclusive lock on `path`'s export across the processes of this host (POSIX flock); the child
    that export_in_subprocess starts runs under its parent's lock."""
    if os.environ.get(_LOCK_HELD_ENV) == str(path.parent):
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, at worst two exports of the same file
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _features_logits_taps(net, taps: tuple[int, ...], layout_taps: tuple[int, ...]):
    import torch

    class FeaturesLogitsTaps(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            features, pooled = self.net.forward_with_taps(x, taps, layout_taps)
            return features, self.net.imagenet_logits(features), pooled

    return FeaturesLogitsTaps(net).eval()


def _state_digest(net) -> str:
    h = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@lru_cache(maxsize=8)
def graph_metadata(path: str) -> dict[str, str]:
    """The metadata stored in an exported graph (read without running it, whatever the engine)."""
    import onnx

    return {prop.key: prop.value for prop in onnx.load(path, load_external_data=False).metadata_props}


def export_in_subprocess(backbone: str, onnx_dir: Path) -> None:
    """Export the pretrained backbone in a child process.

    Tracing needs torch (about 0.7 GB resident, 0.9 GB at its peak); a process that only runs ONNX
    Runtime afterwards, such as a CPU worker training linear heads, then never carries it.
    """
    import subprocess

    command = [sys.executable, "-m", "classifier", "export-backbone", backbone, "--onnx-dir", str(onnx_dir)]
    # Called under _export_lock: the child exports on this process's behalf, without waiting for it.
    env = {**os.environ, _LOCK_HELD_ENV: str(Path(onnx_dir))}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        message = (out.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("error: ")
        raise BackboneUnavailable(f"exporting {backbone} to ONNX failed: {message}")
