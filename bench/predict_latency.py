"""One image through `Predictor` on one thread: median latency (target under 25 ms).
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
        predictor = Predictor(model, threads=1)
        images = sorted(p for p in (root / "val").rglob("*") if p.is_file())[:60]
        data = [p.read_bytes() for p in images]
        predictor.predict([data[0]])  # warm-up
        times = []
        for blob in data:
            started = time.perf_counter()
            predictor.predict([blob])
            times.append((time.perf_counter() - started) * 1000)
    return report(
        "predict_latency",
        {
            "threads": 1,
            "n": len(times),
            "median_ms": round(statistics.median(times), 2),
            "p90_ms": round(sorted(times)[int(0.9 * len(times))], 2),
        },
    )


if __name__ == "__main__":
    main()
