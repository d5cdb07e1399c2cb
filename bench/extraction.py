"""Feature extraction end to end (decode included): this host's engine vs the fp32 ONNX Runtime pipeline
and eager PyTorch, same photos, same run.

Targets: at least 2x the fp32 pipeline and at least 10x eager PyTorch on hymenoptera/train.
Also 12-megapixel phone photos (32 hymenoptera photos enlarged to 4032x3024, JPEG quality 92, made once
under bench/out/): the rate, where each millisecond goes, and what reduce-on-decode saves.
    .venv/bin/python -m bench.extraction
"""

import time
from pathlib import Path

from bench.common import REPO, report, require_dataset
from classifier.backbones import DEFAULT_BACKBONE
from classifier.benchmark import extraction_benchmark

PHONE_SIZE = (4032, 3024)


def phone_photos(root: Path, n: int = 32) -> list[Path]:
    """n photos enlarged to a 12-megapixel phone's frame, written once under bench/out/phone/."""
    from PIL import Image

    out = REPO / "bench" / "out" / "phone"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sorted((root / "train").rglob("*.jpg"))[:n]:
        target = out / source.name
        if not target.is_file():
            Image.open(source).convert("RGB").resize(PHONE_SIZE, Image.Resampling.BICUBIC).save(
                target, quality=92
            )
        paths.append(target)
    return paths


def phone_benchmark(paths: list[Path]) -> dict:
    """Extraction of 12-megapixel photos on this host's engine, with where the time goes, and the decode
    alone with and without reduce-on-decode (JPEG DCT scaling to the size the network needs)."""
    from classifier.cache import MemoryCache
    from classifier.features import Extractor, sha256_of
    from classifier.preprocessing import load_rgb

    extractor = Extractor(DEFAULT_BACKBONE, device="cpu")
    items = [(sha256_of(p.read_bytes()), p) for p in paths]
    extractor.extract_items(items[:4], MemoryCache())  # warm-up
    started = time.perf_counter()
    result = extractor.extract_items(items, MemoryCache())
    seconds = time.perf_counter() - started
    timed = {}
    for name, size in (("reduced", extractor.preprocessing.resize), ("full", None)):
        started = time.perf_counter()
        for path in paths[:8]:
            load_rgb(path, target_size=size)
        timed[name] = (time.perf_counter() - started) / 8 * 1000
    return {
        "n": len(paths),
        "megapixels": round(PHONE_SIZE[0] * PHONE_SIZE[1] / 1e6, 1),
        "mean_file_mb": round(sum(p.stat().st_size for p in paths) / len(paths) / 1e6, 2),
        "images_per_s": round(len(paths) / seconds, 1),
        "cpu_ms_per_image": {k: round(1000 * v / len(paths), 2) for k, v in result.stage_seconds.items()},
        "decode_ms_reduced": round(timed["reduced"], 1),
        "decode_ms_full": round(timed["full"], 1),
    }


def main() -> dict:
    root = require_dataset()
    paths = sorted(p for p in (root / "train").rglob("*") if p.is_file())
    result = extraction_benchmark(paths, backbone=DEFAULT_BACKBONE, eager_limit=64)
    result["phone_photos"] = phone_benchmark(phone_photos(root))
    return report("extraction", result)


if __name__ == "__main__":
    main()
