"""What the pretrained backbone itself sees in a picture: its ImageNet top-k classes."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from classifier.backbones import DEFAULT_BACKBONE, get_backbone, imagenet_categories
from classifier.features import Extractor
from classifier.graphs import graph_metadata
from classifier.preprocessing import Source


def category_names(extractor: Extractor) -> list[str]:
    """The ImageNet class names, from the exported graph where it carries them (no torchvision needed)."""
    if extractor.engine == "onnx":
        stored = graph_metadata(str(extractor.load().onnx_path())).get("imagenet_categories")
        if stored:
            return json.loads(stored)
    return imagenet_categories()


def imagenet_top_k(
    extractor: Extractor, sources: Sequence[Source], top_k: int = 5
) -> list[list[tuple[str, float]]]:
    """Args: sources: images; top_k: classes per image. Returns: [(ImageNet class, probability)] per image."""
    names = category_names(extractor)
    logits = extractor.logits(sources)
    if not len(logits):
        return []
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    return [[(names[j], float(p[j])) for j in row] for p, row in zip(probs, top, strict=True)]


@lru_cache(maxsize=4)
def _recognizer(name: str, onnx_dir: str | None) -> Extractor:
    # CPU and ONNX: the web process answers without importing torch once the model is exported.
    return Extractor(name, device="cpu", onnx_dir=onnx_dir)


def recognize(
    sources: Sequence[Source],
    *,
    backbone: str = DEFAULT_BACKBONE,
    top_k: int = 5,
    onnx_dir: str | os.PathLike | None = None,
) -> list[list[tuple[str, float]]]:
    """What the pretrained backbone itself sees: its ImageNet top-k classes.

    Args:
        sources: bytes, paths or binary file objects.
        backbone: registry name.
        top_k: classes per image.
        onnx_dir: where the exported model is cached (default as in Extractor).
    Returns:
        Per image, a list of (ImageNet class name, probability), most likely first.
    """
    name = get_backbone(backbone).name
    extractor = _recognizer(name, str(onnx_dir) if onnx_dir else None)
    return imagenet_top_k(extractor, sources, top_k)
