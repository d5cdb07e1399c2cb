"""One image through `Predictor`: median latency on this host's engine (as the site runs it, every core)
and, in the same run, on the fp32 engine and on one thread. Target: the site's under 8 ms median.
.venv/bin/python -m bench.predict_latency
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, report, require_dataset


def main() -> dict:
    root = require_dataset()
    from classifier.predict import Predictor

    with tempfile.TemporaryDirectory(prefix="pinhole-bench-") as tmp:
        model = Path(tmp) / "model"
        subprocess.run(
            [sys.executable, "-m", "classifier", "train", str(root / "train"), "--out", str(model),
             "--strategy", "linear"],
            cwd=REPO, capture_output=True, check=True,
        )  # fmt: skip
        images = sorted(p for p in (root / "val").rglob("*") if p.is_file())[:60]
        data = [p.read_bytes() for p in images]
        runs = {
            "site": Predictor(model),  # what the web process loads: this host's engine, every core
            "site_fp32": Predictor(model, precision="fp32"),
            "one_thread": Predictor(model, threads=1),
            "one_thread_fp32": Predictor(model, threads=1, precision="fp32"),
        }
        times = {name: [] for name in runs}
        for predictor in runs.values():
            predictor.predict([data[0]])  # warm-up
        for blob in data:  # interleaved, so a slow moment of the shared host hits every engine alike
            for name, predictor in runs.items():
                started = time.perf_counter()
                predictor.predict([blob])
                times[name].append((time.perf_counter() - started) * 1000)
    result = {"engine": str(runs["site"].engine.precision), "n": len(data)}
    for name, values in times.items():
        result[f"{name}_median_ms"] = round(statistics.median(values), 2)
        result[f"{name}_p90_ms"] = round(sorted(values)[int(0.9 * len(values))], 2)
    return report("predict_latency", result)


if __name__ == "__main__":
    main()
