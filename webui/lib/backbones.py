"""Where this host keeps exported backbones (ONNX graphs of the pretrained networks)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def backbone_dir() -> Path:
    """PINHOLE_BACKBONE_DIR, else `onnx/` in the model cache.

    The web image has no torch, so it cannot export a backbone: its build exports the default one
    into /app/backbones and sets PINHOLE_BACKBONE_DIR there (docker/Dockerfile).
    """
    configured = settings.PINHOLE_BACKBONE_DIR
    return Path(configured) if configured else Path(settings.PINHOLE_MODEL_CACHE) / "onnx"
