"""The CUDA paths on one GPU host, in under 5 minutes: one JSON line.

- extraction end to end from JPEG bytes (decode included) on the GPU, images/s (target on one H200:
  at least 3,000 for EfficientNet-Lite0), over hymenoptera repeated to about 4,000 images, with the
  JPEGs decoded on the GPU (nvJPEG through TorchCodec or torchvision) and again on the CPU's threads;
- parity: the GPU's pooled features (fp16 autocast, channels_last) against the CPU's fp32 ONNX Runtime
  ones on the same 64 photos (worst cosine);
- `train --strategy full` on hymenoptera/train with --val: validation accuracy, fine-tuning images/s,
  the whole command's seconds; the same for `partial`.

Without a CUDA device it prints {"gpu": null, ...} and exits 0, so it can stay in the tool belt.
    .venv/bin/python -m bench.gpu_check
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, report, require_dataset

REPEAT_TO = 4000  # images in the extraction timing


def _gpu() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _extraction(paths: list[Path]) -> dict:
    """Images/s from JPEG bytes in memory to pooled features, decoding on the GPU (nvJPEG, the default on
    CUDA) and, for comparison, on the CPU's threads (Pillow)."""
    import torch

    from classifier.device_decode import jpeg_decoders
    from classifier.features import Extractor

    data = [p.read_bytes() for p in paths]
    data = (data * (REPEAT_TO // len(data) + 1))[:REPEAT_TO]
    out = {"n": len(data), "batch_size": 256, "decoder": next(iter(jpeg_decoders()))}
    for decode in ("device", "cpu"):
        extractor = Extractor("efficientnet_lite0", device="cuda", decode=decode)
        extractor.extract(data[:512], batch_size=256)  # warm-up: cuDNN picks its kernels per shape
        torch.cuda.synchronize()
        started = time.perf_counter()
        extractor.extract(data, batch_size=256)
        torch.cuda.synchronize()
        rate = round(len(data) / (time.perf_counter() - started), 1)
        out["images_per_s" if decode == "device" else "images_per_s_cpu_decode"] = rate
    out["cpu_threads"] = Extractor("efficientnet_lite0", device="cuda").threads
    return out


def _parity(paths: list[Path]) -> dict:
    import numpy as np

    from classifier.features import Extractor

    photos = paths[:64]
    gpu = Extractor("efficientnet_lite0", device="cuda").extract(photos)
    cpu = Extractor("efficientnet_lite0", device="cpu", precision="fp32").extract(photos)
    cosine = np.sum(gpu * cpu, axis=1) / (np.linalg.norm(gpu, axis=1) * np.linalg.norm(cpu, axis=1))
    return {
        "n": len(photos),
        "min_cosine": round(float(cosine.min()), 5),
        "mean_cosine": round(float(cosine.mean()), 5),
    }


def _train(root: Path, work: Path, strategy: str) -> dict:
    command = [
        sys.executable, "-m", "classifier", "train", str(root / "train"), "--val", str(root / "val"),
        "--out", str(work / strategy), "--strategy", strategy, "--device", "cuda",
    ]  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=dict(os.environ))
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    model = json.loads((work / strategy / "manifest.json").read_text())["metrics"]
    training = model.get("training") or {}
    fitted = training.get("n_train") or metrics.get("n_train") or 0
    epochs = training.get("epochs_run") or 0  # history[0] is the state before the first epoch
    fit_seconds = training.get("fit_seconds")
    return {
        "val_accuracy": round(metrics["accuracy"], 4),
        "total_s": round(seconds, 1),
        # Training images x epochs over the fit's seconds (its feature passes included): a floor.
        "fine_tune_images_per_s": round(fitted * epochs / fit_seconds, 1) if fit_seconds and epochs else None,
        "epochs": epochs,
    }


def main() -> dict:
    root = require_dataset()
    try:
        gpu = _gpu()
    except ImportError:
        gpu = None
    if gpu is None:
        return report("gpu_check", {"gpu": None, "skipped": "no CUDA device on this host"})
    paths = sorted(p for p in (root / "train").rglob("*.jpg")) + sorted(
        p for p in (root / "val").rglob("*.jpg")
    )
    result = {"gpu": gpu, "extraction": _extraction(paths), "parity": _parity(paths)}
    with tempfile.TemporaryDirectory(prefix="pinhole-gpu-") as tmp:
        result["full"] = _train(root, Path(tmp), "full")
        result["partial"] = _train(root, Path(tmp), "partial")
    return report("gpu_check", result)


if __name__ == "__main__":
    main()
