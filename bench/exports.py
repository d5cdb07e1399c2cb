"""Every export format on hymenoptera: parity with the site, file size, single-picture latency.

    .venv/bin/python -m bench.exports [--repeats 30]

Trains the default linear model on hymenoptera/train (as `python -m classifier train` does), exports it
to each format with hymenoptera/val as the check pictures, then times one picture at a time through
each export's own predict.py runtime (network only: the pictures are prepared once), one after the
other in the same run, so the ratios hold on a noisy host. Also measures how far the site's own engine
on this host (PINHOLE_ENGINE=auto: bf16 where the CPU has bf16 units) is from the fp32 reference.
The last line is one JSON object; "target_met" says whether every format with a Linux runtime passed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import report, require_dataset


def _size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    data = require_dataset()

    from classifier.__main__ import main as cli
    from classifier.exporting import FORMATS, export_version
    from classifier.exporting.build import check_batch
    from classifier.exporting.parity import reference
    from classifier.exporting.standalone import Model
    from classifier.predict import Predictor

    work = Path(tempfile.mkdtemp(prefix="pinhole-bench-exports-"))
    version = work / "version"
    cli(["train", str(data / "train"), "--out", str(version)])
    check = sorted(p for p in (data / "val").rglob("*") if p.is_file())
    formats = {}
    for name, fmt in FORMATS.items():
        start = time.perf_counter()
        result = export_version(version, name, work / name, check=check)
        row = {
            "export_s": round(time.perf_counter() - start, 1),
            "size_mb": round(_size(result.directory / fmt.model_file) / 1e6, 2),
            "parity": result.parity.to_dict(),
        }
        if name == "openvino":
            row["size_mb"] = round(
                (_size(result.directory / "model.xml") + _size(result.directory / "model.bin")) / 1e6, 2
            )
        if fmt.checked:
            model = Model(result.directory)
            one = check_batch(check[:1], result.info)
            model.probabilities(one)  # warm up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                model.probabilities(one)
                times.append((time.perf_counter() - t) * 1000)
            row["latency_ms_median"] = round(statistics.median(times), 2)
        formats[name] = row
    batch = check_batch(
        check, {"preprocessing": Predictor(version, precision="fp32").manifest["preprocessing"]}
    )
    expected = reference(version / "model.onnx", batch)
    site = Predictor(version)  # this host's own engine
    site_probabilities = np.concatenate(
        [
            site.session.run(["probabilities"], {"images": batch[i : i + 16]})[0]
            for i in range(0, len(batch), 16)
        ]
    )
    checked = [name for name, fmt in FORMATS.items() if fmt.checked]
    return report(
        "exports",
        {
            "pictures": len(check),
            "formats": formats,
            "site_engine": str(site.engine.precision),
            "site_engine_vs_fp32_max_difference": float(np.abs(site_probabilities - expected).max()),
            "target_met": all(formats[name]["parity"]["passed"] for name in checked),
        },
    )


if __name__ == "__main__":
    main()
