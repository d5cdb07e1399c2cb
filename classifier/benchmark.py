"""Extraction throughput of the fast path against the same network in eager PyTorch, in one run.

Both numbers come from the same process on the same images, so their ratio holds on a noisy,
shared machine even when the absolute figures move. Files that are not readable images are
skipped before anything is timed and listed in the result, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

ROUNDS = 3  # interleaved timing rounds per engine; the best of each is reported


def _throughput(extractor, paths: Sequence[Path], batch_size: int = 32) -> tuple[float, float]:
    """(images per second, seconds) end to end: reading, decoding, preprocessing and inference."""
    # Warm-up, not timed, with the batch shapes of the timed run: ONNX Runtime plans its memory for
    # each new input shape on first sight, which a long-running worker pays once.
    extractor.extract(list(paths[: 2 * batch_size]), batch_size=batch_size)
    started = time.perf_counter()
    extractor.extract(list(paths), batch_size=batch_size)
    seconds = time.perf_counter() - started
    return len(paths) / seconds, seconds


def _readable(extractor, paths: Sequence[Path], limit: int) -> tuple[list[Path], list, list[dict]]:
    """Decodes files until `limit` images are readable (0: all).

    Returns:
        (readable paths, their preprocessed arrays, skipped [{path, error}]).
    """
    from .errors import ImageError

    kept, arrays, skipped = [], [], []
    for path in paths:
        if limit and len(kept) >= limit:
            break
        try:
            arrays.append(extractor._decode(path))
        except ImageError as exc:
            skipped.append({"path": str(path), "error": str(exc)})
            continue
        except OSError as exc:
            skipped.append({"path": str(path), "error": f"cannot read: {exc}"})
            continue
        kept.append(path)
    return kept, arrays, skipped


def _model_only(extractor, arrays: Sequence, batch_size: int = 32) -> float:
    """Images per second through the network alone (decoded beforehand), lanes as in `extract`.

    The ceiling for end-to-end extraction on this machine: what is left when decoding is free.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    arrays = np.stack(arrays)
    lanes = extractor._lanes()
    size = max(1, min(batch_size, -(-len(arrays) // lanes)))
    batches = [arrays[i : i + size] for i in range(0, len(arrays), size)]
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(extractor._infer, batches[:lanes]))  # warm-up
        started = time.perf_counter()
        list(pool.map(extractor._infer, batches))
        seconds = time.perf_counter() - started
    return len(arrays) / seconds


def extraction_benchmark(
    paths: Sequence[Path], *, backbone: str, limit: int = 0, eager_limit: int = 64
) -> dict:
    """Measure this host's engine (engines.choose), the fp32 ONNX Runtime pipeline and eager PyTorch on
    the same images, in one run (ROUNDS interleaved rounds, the best of each).

    Args:
        paths: image files; those that are not readable images are skipped (and reported).
        backbone: registry name.
        limit: at most this many readable images for the fast path (0: all).
        eager_limit: images for the eager run (it is about 7x slower).
    Returns:
        {backbone, engine {precision, runtime, reason}, n_fast, fast_images_per_s,
        fp32_images_per_s (the same photos through the fp32 pipeline), ratio_vs_fp32, n_eager,
        eager_images_per_s, ratio (fast / eager on the eager run's photos), model_only_images_per_s
        and fp32_model_only_images_per_s (the engines on decoded images: the ceilings), ...,
        n_skipped, skipped [{path, error}]}
    Raises:
        InvalidImage: none of the files is a readable image.
    """
    from .engines import cpu_count
    from .errors import InvalidImage
    from .features import Extractor

    fast = Extractor(backbone, device="cpu", engine="onnx")
    fp32 = Extractor(backbone, device="cpu", engine="onnx", precision="fp32")
    paths, arrays, skipped = _readable(fast, list(paths), limit)
    if not paths:
        raise InvalidImage(f"none of the files is a readable image ({len(skipped)} skipped); nothing to time")
    eager = Extractor(backbone, device="cpu", engine="torch")
    eager_paths = paths[:eager_limit] if eager_limit else paths
    # Interleaved rounds, best of each: a shared host's slow moments then hit every engine alike.
    rounds = [
        (
            _throughput(fast, paths), _throughput(fp32, paths), _throughput(eager, eager_paths),
            _throughput(fast, eager_paths)[0], _model_only(fast, arrays), _model_only(fp32, arrays),
        )
        for _ in range(ROUNDS)
    ]  # fmt: skip
    fast_rate, fast_s = max(r[0] for r in rounds)
    fp32_rate = max(r[1][0] for r in rounds)
    eager_rate, eager_s = max(r[2] for r in rounds)
    fast_same_rate = max(r[3] for r in rounds)
    model_only_rate = max(r[4] for r in rounds)
    fp32_model_only_rate = max(r[5] for r in rounds)
    return {
        "backbone": backbone,
        "engine": {
            "precision": str(fast.choice.precision),
            "runtime": fast.choice.runtime,
            "reason": fast.choice.reason,
        },
        "threads": cpu_count(),
        "n_fast": len(paths),
        "fast_images_per_s": round(fast_rate, 1),
        "fast_seconds": round(fast_s, 2),
        "fp32_images_per_s": round(fp32_rate, 1),
        "ratio_vs_fp32": round(fast_rate / fp32_rate, 2),
        "n_eager": len(eager_paths),
        "eager_images_per_s": round(eager_rate, 1),
        "eager_seconds": round(eager_s, 2),
        "fast_images_per_s_same_images": round(fast_same_rate, 1),
        "ratio": round(fast_same_rate / eager_rate, 2),
        "model_only_images_per_s": round(model_only_rate, 1),
        "fp32_model_only_images_per_s": round(fp32_model_only_rate, 1),
        "end_to_end_share_of_model_only": round(fast_rate / model_only_rate, 2),
        "n_skipped": len(skipped),
        "skipped": skipped,
    }


def engine_report(backbone: str, *, measure: bool = False, images: int = 64) -> dict:
    """What `python -m classifier engines` prints: the CPU's units, the engine chosen and why, and with
    `measure` each engine's rate and feature agreement on fixed natural photos (engines.calibration_batch).

    Args:
        backbone: registry name (the network measured).
        measure: time every engine this host can run (seconds; exports the backbone on first use).
        images: photos per timing.
    Returns:
        {cpu, flags, openvino, setting, chosen {precision, runtime, reason}, measured [{precision,
        model_only_images_per_s, ratio_vs_fp32, min_cosine_vs_fp32}]}
    """
    import os
    import platform

    import numpy as np

    from . import engines
    from .features import Extractor

    flags = engines.cpu_flags()
    chosen = engines.choose()
    report = {
        "cpu": engines.cpu_name() or platform.processor() or platform.machine(),
        "flags": sorted(flags & (engines.BF16_FLAGS | engines.INT8_FLAGS | {"amx_tile", "avx512f", "avx2"})),
        "openvino": _version("openvino"),
        "setting": os.environ.get(engines.ENGINE_ENV) or "auto",
        "chosen": {"precision": str(chosen.precision), "runtime": chosen.runtime, "reason": chosen.reason},
    }
    if not measure:
        return report
    runnable = [engines.Precision.FP32]
    if report["openvino"]:
        runnable += [
            p for p in (engines.Precision.BF16, engines.Precision.INT8) if engines.choose(p).precision is p
        ]
    rows, reference, fp32_rate = [], None, None
    for precision in runnable:
        extractor = Extractor(backbone, device="cpu", engine="onnx", precision=str(precision))
        prep = extractor.preprocessing
        batch = engines.calibration_batch(prep.crop, prep.mean, prep.std)
        batch = np.concatenate([batch] * max(1, -(-images // len(batch))))[:images]
        extractor._ensure_ready()
        rate = _model_only(extractor, list(batch))
        features = np.concatenate([extractor._infer(batch[i : i + 32])[0] for i in range(0, len(batch), 32)])
        if reference is None:
            reference, fp32_rate = features, rate
        cosine = np.sum(features * reference, axis=1) / (
            np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12
        )
        rows.append(
            {
                "precision": str(precision),
                "model_only_images_per_s": round(rate, 1),
                "ratio_vs_fp32": round(rate / fp32_rate, 2),
                "min_cosine_vs_fp32": round(float(cosine.min()), 4),
            }
        )
    report["measured"] = rows
    return report


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
