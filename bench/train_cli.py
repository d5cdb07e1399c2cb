"""`python -m classifier train` on hymenoptera/train with --val hymenoptera/val, cold start.

First run on a host: nothing cached, so the backbone is also exported to ONNX (once per host).
Cold: a new process with no cached features (the exported backbone is on disk).
Cold fp32: the same, with PINHOLE_ENGINE=fp32 (ONNX Runtime), in the same run.
Targets: total under 15 s, peak memory under 1.5 GB, validation accuracy at least 95 %; retraining the
head from cached features under 1 s; this host's engine extracts at least 2x as fast as fp32, with
validation accuracy at least 95.5 % and within 0.5 point of fp32's. Also: the partial strategy (last
blocks adapted) on the same data, which should finish in about a minute on this CPU.
    .venv/bin/python -m bench.train_cli
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, report, require_dataset


def _train(root: Path, work: Path, name: str, env: dict, *extra: str) -> tuple[dict, float, float]:
    """(metrics, wall seconds, peak resident MB of the command and its children)."""
    command = [
        sys.executable, "-m", "classifier", "train", str(root / "train"), "--val", str(root / "val"),
        "--out", str(work / name), "--cache", str(work / "features"), *extra,
    ]  # fmt: skip
    # GNU time starts the command from its own small process: a child forked from this (large)
    # Python process would report this process's resident memory as its own peak.
    started = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], cwd=REPO, env=env, capture_output=True, check=True
    )
    wall = time.perf_counter() - started
    stdout = out.stdout
    peak_mb = int(out.stderr.decode().strip().splitlines()[-1]) / 1024
    return json.loads(stdout.decode().strip().splitlines()[-1]), wall, peak_mb


def _head_refit_seconds(root: Path, work: Path) -> float:
    """Refit the head from cached features only, as a retrain with no new images does."""
    import numpy as np

    from classifier.cache import DirectoryCache
    from classifier.features import Extractor, sha256_of
    from classifier.fit import fit_linear

    paths = sorted(p for p in (root / "train").rglob("*") if p.is_file())
    keys = [sha256_of(p.read_bytes()) for p in paths]
    extractor = Extractor("efficientnet_lite0", device="cpu")  # its cache key (this host's engine)
    vectors = DirectoryCache(work / "features").get_many(extractor.cache_key, keys)
    X = np.stack([vectors[k][: extractor.backbone.feature_dim] for k in keys])  # the last layer's
    y = [p.parent.name for p in paths]
    started = time.perf_counter()
    fit_linear(X, y)
    return time.perf_counter() - started


def main() -> dict:
    root = require_dataset()
    with tempfile.TemporaryDirectory(prefix="pinhole-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, PINHOLE_MODEL_CACHE=str(work / "model-cache"))
        first, first_wall, first_peak_mb = _train(root, work, "first", env)  # exports the backbone too
        shutil.rmtree(work / "features")
        cold, cold_wall, peak_mb = _train(root, work, "cold", env)  # a new process, no cached features
        fp32_env = dict(env, PINHOLE_ENGINE="fp32")
        fp32, fp32_wall, _ = _train(root, work, "cold-fp32", fp32_env)  # its vectors are cached apart
        warm, warm_wall, _ = _train(root, work, "warm", env)
        refit_s = _head_refit_seconds(root, work)
        partial, partial_wall, _ = _train(root, work, "partial", env, "--strategy", "partial")
    return report(
        "train_cli",
        {
            "val_accuracy": round(cold["accuracy"], 4),
            "val_balanced_accuracy": round(cold["balanced_accuracy"], 4),
            "strategy": cold["strategy"],
            "framing": cold.get("framing"),
            "views": cold.get("views"),
            "representation": cold.get("representation"),
            "first_run_on_host_total_s": round(first_wall, 2),
            "first_run_on_host_peak_rss_mb": round(first_peak_mb),
            "cold_total_s": round(cold_wall, 2),
            "cold_timings": cold["timings"],
            "cold_peak_rss_mb": round(peak_mb),
            "engine": cold.get("engine"),
            "cold_fp32_total_s": round(fp32_wall, 2),
            "cold_fp32_timings": fp32["timings"],
            "fp32_val_accuracy": round(fp32["accuracy"], 4),
            "extraction_ratio_vs_fp32": round(
                cold["timings"]["images_per_s"] / fp32["timings"]["images_per_s"], 2
            ),
            "cached_features_total_s": round(warm_wall, 2),
            "head_refit_s": round(refit_s, 3),
            "partial_total_s": round(partial_wall, 1),
            "partial_val_accuracy": round(partial["accuracy"], 4),
        },
    )


if __name__ == "__main__":
    main()
