"""Extraction throughput of the fast path against the same network in eager PyTorch, in one run.

Both numbers come from the same process on the same images, so their ratio holds on a noisy,
shared machine even when the absolute figures move. Files that are not readable images are
skipped before anything is timed and listed in the result, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path


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
    """Measure the default fast path (ONNX Runtime on CPU) and eager PyTorch on the same images.

    Args:
        paths: image files; those that are not readable images are skipped (and reported).
        backbone: registry name.
        limit: at most this many readable images for the fast path (0: all).
        eager_limit: images for the eager run (it is about 7x slower).
    Returns:
        {backbone, n_fast, fast_images_per_s, n_eager, eager_images_per_s, ratio,
        model_only_images_per_s (the fast engine on decoded images: the ceiling), ...,
        n_skipped, skipped [{path, error}]}
    Raises:
        InvalidImage: none of the files is a readable image.
    """
    from .errors import InvalidImage
    from .features import Extractor, cpu_count

    fast = Extractor(backbone, device="cpu", engine="onnx")
    paths, arrays, skipped = _readable(fast, list(paths), limit)
    if not paths:
        raise InvalidImage(f"none of the files is a readable image ({len(skipped)} skipped); nothing to time")
    eager = Extractor(backbone, device="cpu", engine="torch")
    fast_rate, fast_s = _throughput(fast, paths)
    eager_paths = paths[:eager_limit] if eager_limit else paths
    eager_rate, eager_s = _throughput(eager, eager_paths)
    fast_same_rate, _ = _throughput(fast, eager_paths)
    model_only_rate = _model_only(fast, arrays)
    return {
        "backbone": backbone,
        "threads": cpu_count(),
        "n_fast": len(paths),
        "fast_images_per_s": round(fast_rate, 1),
        "fast_seconds": round(fast_s, 2),
        "n_eager": len(eager_paths),
        "eager_images_per_s": round(eager_rate, 1),
        "eager_seconds": round(eager_s, 2),
        "fast_images_per_s_same_images": round(fast_same_rate, 1),
        "ratio": round(fast_same_rate / eager_rate, 2),
        "model_only_images_per_s": round(model_only_rate, 1),
        "end_to_end_share_of_model_only": round(fast_rate / model_only_rate, 2),
        "n_skipped": len(skipped),
        "skipped": skipped,
    }
