"""Stage 2: turn images into feature vectors, fast, once per (image content, backbone).

On a CPU the backbone is exported to ONNX once (cached on disk) and run by ONNX Runtime, which is
several times faster than eager PyTorch there; a thread pool decodes the next batch while the current
one runs. With CUDA, torch runs it in fp16 with channels_last. Vectors are cached by the sha256 of the
image bytes and the backbone's cache key, so a retrain never extracts an image twice.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier import device_decode
from classifier.backbones import DEFAULT_BACKBONE, Backbone, get_backbone
from classifier.cache import FeatureCache
from classifier.data import resolve
from classifier.device_decode import cpu_views
from classifier.engines import EngineChoice, Precision, choose, cpu_count, open_session
from classifier.errors import ImageError
from classifier.graphs import INPUT_NAME, backbone_onnx
from classifier.preprocessing import Source, load_rgb

ProgressCallback = Callable[[float, str], None]

# Cached vectors hold the pooled features, every tap's pooled output, then the layout taps' grid cells
# (Backbone.vector_dim wide); the suffix keeps them apart from vectors cached in an earlier layout.
DEPTHS_LAYOUT = "+depths2"


def is_current_cache_key(key: str) -> bool:
    """Args: key: a cached vectors' key (Extractor.cache_key). Returns: whether today's code reads such
    vectors; keys of an earlier layout are never read again and can be deleted."""
    return f"{DEPTHS_LAYOUT}+" in f"{key}+"


def sha256_of(data: bytes) -> str:
    """Args: data: file bytes. Returns: the lowercase hex sha256 (the key of every cached vector)."""
    return hashlib.sha256(data).hexdigest()


def default_model_cache() -> Path:
    """Returns: PINHOLE_MODEL_CACHE, or ~/.cache/pinhole."""
    env = os.environ.get("PINHOLE_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pinhole"


# --- extraction -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageHash:
    """A per-image hash computed from the decoded picture (the audit's perceptual hash).

    Attributes:
        key: what cached hashes are keyed by, instead of a backbone key (bump it when `compute` changes).
        compute: upright RGB PIL image -> 1-D array.
    """

    key: str
    compute: Callable[[Any], np.ndarray]


@dataclass
class ExtractionResult:
    """What `extract_items` did: vectors for every usable image, messages for the rest, and where the time
    went (`stage_seconds`: summed over the threads that did it, so per image it is CPU time)."""

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    n_extracted: int = 0
    n_cached: int = 0
    hashes: dict[str, np.ndarray] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    n_decoded: int = 0


class StageClock:
    """Seconds spent per stage (read and decode, hash, preprocess, inference), added up across threads."""

    STAGES = ("decode", "hash", "preprocess", "inference")

    def __init__(self):
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds


@dataclass
class _BatchResult:
    indices: list[int]
    results: list[np.ndarray]
    errors: list[tuple[int, Exception]]
    hashes: list[np.ndarray] = field(default_factory=list)


class _DecodeJob:
    """One batch read image by image on the pool (torch engine: the device runs on the caller).

    Args:
        read: (sources, start) -> (indices, items, errors, hashes), as Extractor._decode_many.
    """

    def __init__(self, pool: ThreadPoolExecutor, read: Callable, sources: Sequence[Source], start: int):
        self.futures = [pool.submit(read, [src], start + i) for i, src in enumerate(sources)]

    def cancel(self) -> None:
        for future in self.futures:
            future.cancel()

    def collect(self) -> tuple[list[int], list, list, list]:
        indices, arrays, errors, hashes = [], [], [], []
        for future in self.futures:
            i, a, e, h = future.result()
            indices += i
            arrays += a
            errors += e
            hashes += h
        return indices, arrays, errors, hashes


class Extractor:
    """Batched feature extraction with one backbone.

    Args:
        backbone: a registry name or Backbone.
        device: "auto" (CUDA when torch sees it, else CPU), "cpu" or "cuda[:i]".
        onnx_dir: where exported models are cached (default PINHOLE_MODEL_CACHE/onnx or ~/.cache/pinhole/onnx).
        threads: CPU threads for decoding and ONNX Runtime (default: all usable cores).
        pretrained: False uses random weights (tests); the ONNX file is then keyed by their hash.
        engine: "auto" (the ONNX graph on CPU, torch on CUDA), "onnx" or "torch" (eager, for comparison).
        precision: how the ONNX graph runs on this CPU: "auto", "fp32", "bf16" or "int8" (default:
            PINHOLE_ENGINE, else "auto"; see engines.choose). Vectors of each precision are cached apart.
        mirrored: extract features of the horizontally mirrored images (training augmentation),
            cached under their own key.
        framing: "crop" (the backbone's centre crop) or "full" (the whole frame); cached apart.
        decode: where JPEG pixels are decoded and preprocessed: "cpu" (Pillow, on the decoding threads),
            "device" (torchvision on the network's device: nvJPEG on CUDA; engine "torch" only) or
            "auto" (the device on CUDA, else the CPU).
    """

    def __init__(
        self,
        backbone: str | Backbone = DEFAULT_BACKBONE,
        *,
        device: str = "auto",
        onnx_dir: str | os.PathLike | None = None,
        threads: int | None = None,
        pretrained: bool = True,
        engine: str = "auto",
        mirrored: bool = False,
        framing: str = "crop",
        precision: str | None = None,
        decode: str = "auto",
    ):
        self.backbone = get_backbone(backbone)
        self.mirrored = mirrored
        self.preprocessing = self.backbone.preprocessing
        if framing != self.preprocessing.framing:
            self.preprocessing = dataclasses.replace(self.preprocessing, framing=framing)
        self.pretrained = pretrained
        self.threads = threads or cpu_count()
        self.onnx_dir = Path(onnx_dir) if onnx_dir else default_model_cache() / "onnx"
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        self.device = device
        if engine == "auto":
            engine = "torch" if device.startswith("cuda") else "onnx"
        if engine not in ("onnx", "torch"):
            raise ValueError(f"engine must be 'auto', 'onnx' or 'torch', not {engine!r}")
        if engine == "onnx" and device != "cpu":
            raise ValueError("the ONNX engine runs on the CPU; use engine='torch' for CUDA")
        self.engine = engine
        if decode == "auto":
            decode = "device" if device.startswith("cuda") else "cpu"
        if decode not in ("cpu", "device"):
            raise ValueError(f"decode must be 'auto', 'cpu' or 'device', not {decode!r}")
        if decode == "device" and engine != "torch":
            raise ValueError("decoding on the device needs engine='torch'")
        self.decode = decode
        self.choice: EngineChoice = (
            choose(precision)
            if engine == "onnx"
            else EngineChoice(Precision.FP32, "torch", f"eager PyTorch on {device}")
        )
        self.hash_fn: Callable[[Any], np.ndarray] | None = None
        # Extra (preprocessing, mirrored) views made from the same decoded image (extract_views).
        self._views: list[tuple[Any, bool]] | None = None
        self._clock: StageClock | None = None
        self._net = None
        self._session = None
        self._lock = threading.Lock()

    def variant(self, *, framing: str | None = None, mirrored: bool | None = None) -> Extractor:
        """The same loaded network and session with another framing or mirroring (cached apart).

        Args:
            framing: "crop" or "full" (None: unchanged).
            mirrored: mirror the images (None: unchanged).
        Returns:
            a shallow copy of this extractor.
        """
        self._ensure_ready()
        other = copy.copy(self)
        if framing is not None:
            other.preprocessing = dataclasses.replace(self.preprocessing, framing=framing)
        if mirrored is not None:
            other.mirrored = mirrored
        return other

    # -- model ------------------------------------------------------------------------------------

    @property
    def net(self):
        """The torch BackboneNet (built on first use)."""
        if self._net is None:
            self._net = self.backbone.build(pretrained=self.pretrained)
        return self._net

    def onnx_path(self) -> Path:
        """Returns: the cached ONNX file (features, ImageNet logits, taps), exporting it on first use."""
        return backbone_onnx(
            self.backbone, self.preprocessing.crop, self.onnx_dir,
            net=None if self.pretrained else self.net, build=lambda: self.net,
        )  # fmt: skip

    def export_here(self) -> Path:
        """Export in this process (what graphs.export_in_subprocess runs); returns the ONNX path."""
        return self.onnx_path()

    def load(self) -> Extractor:
        """Load the network now (exporting it to ONNX the first time on a host) rather than on first use:
        a worker does it as it starts. Returns: self."""
        self._ensure_ready()
        return self

    def _ensure_ready(self):
        with self._lock:
            if self.engine == "onnx" and self._session is None:
                # One intra-op thread per lane: lanes run whole batches side by side, which keeps every
                # core busy without ONNX Runtime's per-layer thread synchronisation (small depthwise
                # layers parallelise poorly) and lets decoding share the same cores.
                prep = self.preprocessing
                self._session = open_session(
                    self.onnx_path(), self.choice, self.threads, self._lanes(),
                    normalisation=(prep.mean, prep.std),
                )  # fmt: skip
            elif self.engine == "torch" and self._net is None:
                self._net = self.backbone.build(pretrained=self.pretrained)
            if self.engine == "torch":
                import torch

                self._net = self._net.to(self.device)
                if self.device.startswith("cuda"):
                    self._net = self._net.to(memory_format=torch.channels_last)

    def _lanes(self) -> int:
        return self.threads if self.engine == "onnx" else 1

    def _infer(self, batch: np.ndarray, outputs: Sequence[str] = ("features",)) -> list[np.ndarray]:
        started = time.perf_counter()
        try:
            return self._run(batch, outputs)
        finally:
            if self._clock is not None:
                self._clock.add("inference", time.perf_counter() - started)

    def _run(self, batch, outputs: Sequence[str]) -> list[np.ndarray]:
        """Args: batch: float32 [N, 3, H, W], a numpy array (or, engine "torch", a tensor on the device)."""
        if self.engine == "onnx":
            return self._session.run(list(outputs), {INPUT_NAME: batch})
        import torch

        net = self._net
        with torch.inference_mode():
            x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
            x = x.to(self.device, non_blocking=True)
            cuda = self.device.startswith("cuda")
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                features, taps = net.forward_with_taps(x, self.backbone.taps, self.backbone.layout_taps)
                logits = net.imagenet_logits(features) if "logits" in outputs else None
            result = {"features": features, "logits": logits, "taps": taps}
            return [result[name].float().cpu().numpy() for name in outputs]

    # -- pipeline ---------------------------------------------------------------------------------

    @property
    def cache_key(self) -> str:
        """What cached vectors are keyed by: the backbone, the vector's layout (the pooled features, the
        taps' pooled outputs, the layout taps' cells), the framing, whether the images were mirrored, and
        the precision that computed them (fp32 adds nothing)."""
        framing = "" if self.preprocessing.framing == "crop" else f"+{self.preprocessing.framing}"
        mirrored = "+mirrored" if self.mirrored else ""
        return self.backbone.cache_key + DEPTHS_LAYOUT + framing + mirrored + self.choice.cache_suffix

    def _decode(self, source: Source) -> np.ndarray:
        return self._decode_item(source)[0][0]

    def _view_list(self) -> list[tuple[Any, bool]]:
        return self._views or [(self.preprocessing, self.mirrored)]

    def _decode_item(self, source: Source) -> tuple[list[np.ndarray], np.ndarray | None]:
        """One image decoded once, as every view needs it (and its hash). Returns: (arrays, hash)."""
        clock, t0 = self._clock, time.perf_counter()
        # A callable source is read here, in the lane that decodes its batch: never all up front.
        image = load_rgb(resolve(source), target_size=max(p.resize for p, _ in self._view_list()))
        t1 = time.perf_counter()
        image_hash = self.hash_fn(image) if self.hash_fn is not None else None
        t2 = time.perf_counter()
        arrays = cpu_views(image, self._view_list())
        if clock is not None:
            clock.add("decode", t1 - t0)
            clock.add("hash", t2 - t1)
            clock.add("preprocess", time.perf_counter() - t2)
        return arrays, image_hash

    def _read_item(self, source: Source) -> tuple[list[device_decode.Item], np.ndarray | None]:
        """The CPU's part of one image decoded on the device. Returns: ([item], hash)."""
        started = time.perf_counter()
        item = device_decode.read_item(source, self._view_list(), self.hash_fn)
        if self._clock is not None:
            self._clock.add("decode", time.perf_counter() - started)
        return [item], item.hash

    def _decode_many(self, sources: Sequence[Source], start: int) -> tuple[list[int], list, list, list]:
        """Returns: (indices of the images read, their views' arrays (len(views) each, in order; on the
        device path one device_decode.Item per image instead), errors, hashes)."""
        indices, arrays, errors, hashes = [], [], [], []
        read = self._read_item if self.decode == "device" else self._decode_item
        for offset, source in enumerate(sources):
            try:
                views, image_hash = read(source)
            except (ImageError, OSError) as e:
                errors.append((start + offset, e))
                continue
            arrays += views
            indices.append(start + offset)
            if image_hash is not None:
                hashes.append(image_hash)
        return indices, arrays, errors, hashes

    def _lane_task(self, sources: Sequence[Source], start: int, outputs: Sequence[str]) -> _BatchResult:
        indices, arrays, errors, hashes = self._decode_many(sources, start)
        results = self._infer(np.stack(arrays), outputs) if arrays else []
        return _BatchResult(indices, results, errors, hashes)

    def _pipeline(
        self,
        sources: Sequence[Source],
        batch_size: int,
        outputs: Sequence[str],
        on_error: Callable[[int, Exception], None] | None,
    ) -> Iterable[tuple[list[int], list[np.ndarray], list[np.ndarray]]]:
        """Yields (indices, outputs, image hashes) per batch, in order, while later batches decode and run.

        ONNX: each of `threads` lanes decodes and infers a whole batch. Torch: a decoding pool
        prepares the next batch while the device runs the current one.
        """
        self._ensure_ready()
        n = len(sources)
        lanes = self._lanes()
        batch_size = max(
            1, batch_size // len(self._view_list())
        )  # images per batch: inference sees batch_size
        if lanes > 1 and n:
            batch_size = max(1, min(batch_size, -(-n // lanes)))  # small jobs still use every lane
        starts = list(range(0, n, batch_size))
        window = lanes + 1  # batches in flight: bounded memory, and a cancel waits for few
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="pinhole-extract") as pool:

            def submit(start: int) -> Future | _DecodeJob:
                chunk = sources[start : start + batch_size]
                if lanes > 1:
                    return pool.submit(self._lane_task, chunk, start, outputs)
                return _DecodeJob(pool, self._decode_many, chunk, start)

            pending: list[Future | _DecodeJob] = [submit(start) for start in starts[:window]]
            next_batch = len(pending)
            try:
                while pending:
                    job = pending.pop(0)
                    if next_batch < len(starts):
                        pending.append(submit(starts[next_batch]))
                        next_batch += 1
                    if isinstance(job, _DecodeJob):
                        batch = self._run_batch(*job.collect(), outputs)
                    else:
                        batch = job.result()
                    for index, error in batch.errors:
                        if on_error is None:
                            raise error
                        on_error(index, error)
                    yield batch.indices, batch.results, batch.hashes
            finally:
                for job in pending:
                    job.cancel()

    def _run_batch(self, indices, arrays, errors, hashes, outputs) -> _BatchResult:
        """Runs the network on a batch the pool read (torch engine); on the device path its pixels are
        decoded on the device first."""
        if self.decode == "device" and arrays:
            started = time.perf_counter()
            tensor, kept, failed = device_decode.decode_batch(arrays, self._view_list(), self.device)
            if self._clock is not None:
                self._clock.add("preprocess", time.perf_counter() - started)
            errors = sorted(errors + [(indices[k], e) for k, e in failed])
            keep = set(kept)
            hashes = [h for k, h in enumerate(hashes) if k in keep] if hashes else hashes
            indices = [indices[k] for k in kept]
            results = self._infer(tensor, outputs) if tensor is not None else []
            return _BatchResult(indices, results, errors, hashes)
        results = self._infer(np.stack(arrays), outputs) if arrays else []
        return _BatchResult(indices, results, errors, hashes)

    def extract(
        self,
        sources: Sequence[Source],
        *,
        batch_size: int = 32,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Extracts pooled features; the first unreadable image raises its error.

        Args:
            sources: bytes, paths or binary file objects.
            batch_size: images per inference call.
            on_progress: called after each batch with (fraction, "extracting i/n"); may raise Cancelled.
        Returns:
            float32 array [N, feature_dim].
        """
        sources = list(sources)
        out = np.zeros((len(sources), self.backbone.feature_dim), dtype=np.float32)
        done = 0
        for indices, (features,) in self._batches(sources, batch_size, ("features",), None):
            out[indices] = features
            done += len(indices)
            if on_progress is not None:
                on_progress(done / len(sources), f"extracting {done}/{len(sources)}")
        return out

    def _batches(self, sources, batch_size, outputs, on_error):
        for indices, results, _hashes in self._pipeline(sources, batch_size, outputs, on_error):
            if indices:
                yield indices, results

    def extract_items(
        self,
        items: Sequence[tuple[str, Source]],
        cache: FeatureCache | None = None,
        *,
        batch_size: int = 32,
        on_progress: ProgressCallback | None = None,
        image_hash: ImageHash | None = None,
    ) -> ExtractionResult:
        """Extracts only what the cache lacks; unreadable images are reported, not fatal.

        Args:
            items: (sha256, source) pairs; repeated shas are extracted once. A source may be a callable
                returning bytes, called only when its batch is decoded.
            cache: where vectors are looked up and new ones stored (after every batch, so a cancelled
                or killed run keeps its progress).
            batch_size: images per inference call.
            on_progress: (fraction, message) after each batch; raising Cancelled stops the run.
            image_hash: also compute this hash of every image (from the pixels decoded anyway), cached
                under its own key; images whose vectors were cached are decoded for it alone.
        Returns:
            ExtractionResult(vectors by sha (Backbone.vector_dim wide: the pooled features, then the taps),
            failed {sha: message}, n_extracted, n_cached, hashes, stage_seconds, n_decoded).
        """
        return self.extract_views(
            items, [self], cache, batch_size=batch_size, on_progress=on_progress, image_hash=image_hash
        )[0]

    def extract_views(
        self,
        items: Sequence[tuple[str, Source]],
        views: Sequence[Extractor],
        cache: FeatureCache | None = None,
        *,
        batch_size: int = 32,
        on_progress: ProgressCallback | None = None,
        image_hash: ImageHash | None = None,
    ) -> list[ExtractionResult]:
        """`extract_items` for several views at once (other framings, mirrored), each image decoded once.

        Decoding and resizing cost as much as the network on a fast engine; a training that needs an
        image cropped, whole and mirrored reads it one time instead of three.

        Args:
            items, cache, batch_size, on_progress, image_hash: as in extract_items (batch_size counts
                inputs to the network: views of images).
            views: extractors made by `variant` from this one (same network), one per view.
        Returns:
            One ExtractionResult per view, in order; the first also carries the hashes, where the time
            went (stage_seconds) and how many images were decoded.
        """
        unique: dict[str, Source] = {}
        for sha, source in items:
            unique.setdefault(sha, source)
        results = [ExtractionResult() for _ in views]
        first = results[0]
        if cache is not None and unique:
            for view, result in zip(views, results, strict=True):
                result.vectors.update(cache.get_many(view.cache_key, list(unique)))
                result.n_cached = len(result.vectors)
            if image_hash is not None:
                first.hashes.update(cache.get_many(image_hash.key, list(unique)))
        todo = [(sha, src) for sha, src in unique.items() if any(sha not in r.vectors for r in results)]
        total = len(todo)
        if not todo:
            if on_progress is not None:
                on_progress(1.0, f"all {len(unique)} feature vectors cached")
            self._hash_cached(unique, first, cache, image_hash)
            return results
        self._ensure_ready()  # the copy shares the loaded network or session
        worker = copy.copy(self)
        worker.hash_fn = image_hash.compute if image_hash is not None else None
        worker._views = [(view.preprocessing, view.mirrored) for view in views]
        worker._clock = clock = StageClock()
        shas = [sha for sha, _ in todo]
        sources = [src for _, src in todo]
        done = 0

        def on_error(index: int, error: Exception) -> None:
            nonlocal done
            message = str(error) if isinstance(error, ImageError) else f"cannot read: {error}"
            for result in results:
                result.failed[shas[index]] = message
            done += 1

        outputs = ("features", "taps")
        for indices, outputs_, hashes in worker._pipeline(sources, batch_size, outputs, on_error):
            if indices:
                # The cached layout: features, then taps and cells; rows go image by image, view by view.
                rows = np.concatenate(outputs_, axis=1).reshape(len(indices), len(views), -1)
                for v, (view, result) in enumerate(zip(views, results, strict=True)):
                    new = {
                        shas[i]: rows[n, v].copy()
                        for n, i in enumerate(indices)
                        if shas[i] not in result.vectors
                    }
                    result.vectors.update(new)
                    result.n_extracted += len(new)
                    if cache is not None and new:
                        cache.put_many(view.cache_key, new)
                done += len(indices)
                first.n_decoded += len(indices)
            if hashes:
                new_hashes = {shas[i]: h for i, h in zip(indices, hashes, strict=True)}
                first.hashes.update(new_hashes)
                if cache is not None:
                    cache.put_many(image_hash.key, new_hashes)
            if on_progress is not None:
                on_progress(done / total, f"extracting {done}/{total}")
        first.stage_seconds = {stage: round(seconds, 4) for stage, seconds in clock.seconds.items()}
        self._hash_cached(unique, first, cache, image_hash)
        return results

    def _hash_cached(self, unique: dict[str, Source], result: ExtractionResult, cache, image_hash) -> None:
        """Hashes for images whose vectors came from the cache (cached before hashes were kept)."""
        if image_hash is None:
            return
        missing = [sha for sha in unique if sha in result.vectors and sha not in result.hashes]
        if not missing:
            return

        def one(sha: str):
            try:
                return sha, image_hash.compute(
                    load_rgb(resolve(unique[sha]), target_size=self.preprocessing.resize)
                )
            except (ImageError, OSError):
                return sha, None  # readable once, not now: it simply has no hash

        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="pinhole-hash") as pool:
            found = {sha: h for sha, h in pool.map(one, missing) if h is not None}
        result.hashes.update(found)
        if cache is not None and found:
            cache.put_many(image_hash.key, found)

    def logits(self, sources: Sequence[Source]) -> np.ndarray:
        """Args: sources: images. Returns: the pretrained network's ImageNet logits [N, classes]."""
        sources = list(sources)
        out: np.ndarray | None = None
        for indices, (batch_logits,) in self._batches(sources, 32, ("logits",), None):
            if out is None:
                out = np.zeros((len(sources), batch_logits.shape[1]), dtype=np.float32)
            out[indices] = batch_logits
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def _cuda_available() -> bool:
    # Importing torch to ask costs seconds; a host without the NVIDIA driver has no CUDA device.
    if "torch" not in sys.modules and not os.path.exists("/proc/driver/nvidia/version"):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def eager_extract(
    sources: Sequence[Source], backbone: str | Backbone = DEFAULT_BACKBONE, **kwargs
) -> np.ndarray:
    """The same extraction in eager PyTorch on the CPU, for benchmarks. Returns: [N, feature_dim]."""
    pretrained = kwargs.pop("pretrained", True)
    return Extractor(backbone, device="cpu", engine="torch", pretrained=pretrained).extract(sources, **kwargs)
