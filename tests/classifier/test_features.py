"""Feature extraction: ONNX agrees with torch, the cache prevents re-extraction, failures and cancels."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from classifier.cache import DirectoryCache, MemoryCache
from classifier.engines import make_session
from classifier.errors import Cancelled, InvalidImage
from classifier.features import (
    ExtractionResult,
    Extractor,
    sha256_of,
)
from classifier.graphs import export_onnx
from classifier.preprocessing import load_batch
from classifier.recognition import recognize

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    """EfficientNet-Lite0 with random weights, exported once for the module, run in fp32 (compared with
    torch below; the faster engines are held to their bounds in test_engines)."""
    torch.manual_seed(0)
    return Extractor(
        "efficientnet_lite0", pretrained=False, onnx_dir=tmp_path_factory.mktemp("onnx"), threads=2,
        precision="fp32",
    )  # fmt: skip


def items_of(images):
    return [(sha256_of(data), data) for data in images]


def test_it_hashes_bytes_with_sha256():
    assert sha256_of(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_it_runs_onnx_in_agreement_with_torch(extractor, sample_images):
    features = extractor.extract(sample_images, batch_size=3)
    with torch.no_grad():
        expected = extractor.net(torch.from_numpy(load_batch(sample_images, extractor.preprocessing))).numpy()
    assert features.shape == (len(sample_images), 1280) and features.dtype == np.float32
    assert extractor.engine == "onnx"
    scale = float(np.abs(expected).max())  # random weights: features far below 1
    assert scale > 0 and np.abs(features - expected).max() <= 1e-4 * scale


def test_it_exports_any_module_with_a_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    path = export_onnx(module, tmp_path / "m.onnx", 32, output_names=("out",))
    assert path.is_file() and not list(tmp_path.glob(".tmp-*"))
    session = make_session(path, threads=1)
    for n in (1, 5):
        x = torch.randn(n, 3, 32, 32)
        (got,) = session.run(["out"], {"images": x.numpy()})
        with torch.no_grad():
            assert np.abs(got - module(x).numpy()).max() <= 1e-4


def test_it_reuses_the_exported_file(extractor):
    path = extractor.onnx_path()
    mtime = path.stat().st_mtime_ns
    assert extractor.backbone.cache_key in path.name
    assert extractor.onnx_path() == path and path.stat().st_mtime_ns == mtime


def test_it_extracts_each_image_once_with_a_cache(extractor, sample_images, tmp_path):
    for cache in (MemoryCache(), DirectoryCache(tmp_path / "features")):
        first = extractor.extract_items(items_of(sample_images), cache)
        second = extractor.extract_items(items_of(sample_images), cache)
        assert (first.n_extracted, first.n_cached) == (len(sample_images), 0)
        assert (second.n_extracted, second.n_cached) == (0, len(sample_images))
        assert not first.failed and not second.failed
        for sha, vec in first.vectors.items():
            # The pooled features (1280), the pooled outputs of six earlier blocks (768), then the
            # 3x3 cells of three middle ones (9 x 384).
            assert vec.shape == (5504,) and np.allclose(second.vectors[sha], vec)


def test_it_caches_the_features_then_what_earlier_blocks_see(extractor, sample_images):
    result = extractor.extract_items(items_of(sample_images))
    plain = extractor.extract(sample_images)
    cached = np.stack([result.vectors[sha] for sha, _ in items_of(sample_images)])
    np.testing.assert_allclose(cached[:, :1280], plain, rtol=1e-5, atol=1e-5)
    assert extractor.backbone.depth_dim == 1280 + sum(extractor.backbone.tap_dims)
    assert (
        cached.shape[1]
        == extractor.backbone.vector_dim
        == extractor.backbone.depth_dim + 9 * (80 + 112 + 192)
    )


def test_the_cached_cells_are_torchs_adaptive_pooling_of_the_middle_blocks(extractor, sample_images):
    import torch

    from classifier.finetune import images_tensor

    spec = extractor.backbone
    cached = extractor.extract_items(items_of(sample_images)).vectors
    x = extractor.net.stem(images_tensor(sample_images, spec.preprocessing))
    expected = []
    with torch.inference_mode():
        for index, block in enumerate(extractor.net.blocks):
            x = block(x)
            if index in spec.layout_taps:
                expected.append(torch.nn.functional.adaptive_avg_pool2d(x, 3).flatten(1))
    expected = torch.cat(expected, dim=1).numpy()
    got = np.stack([cached[sha] for sha, _ in items_of(sample_images)])[:, spec.depth_dim :]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_it_caches_each_framing_apart(extractor, sample_images):
    cache = MemoryCache()
    full = extractor.variant(framing="full")
    assert full.cache_key != extractor.cache_key and full.preprocessing.framing == "full"
    assert extractor.preprocessing.framing == "crop"  # the variant leaves the original alone
    cropped = extractor.extract_items(items_of(sample_images), cache)
    whole = full.extract_items(items_of(sample_images), cache)
    assert whole.n_extracted == len(sample_images)  # nothing taken from the cropped vectors
    assert not all(np.allclose(whole.vectors[k], cropped.vectors[k]) for k in whole.vectors)


def test_it_decodes_each_image_once_for_every_view(extractor, sample_images):
    reads = []

    def reader(data):
        def read():
            reads.append(data)
            return data

        return read

    views = [
        extractor.variant(framing=framing, mirrored=mirrored)
        for mirrored in (False, True)
        for framing in ("crop", "full")
    ]
    cache = MemoryCache()
    results = extractor.extract_views([(sha256_of(d), reader(d)) for d in sample_images], views, cache)
    assert len(reads) == len(sample_images)
    assert results[0].n_decoded == len(sample_images)
    assert set(results[0].stage_seconds) == {"decode", "hash", "preprocess", "inference"}
    for view, result in zip(views, results, strict=True):
        alone = view.extract_items(items_of(sample_images))  # decoded again, for this view only
        assert result.n_extracted == len(sample_images)
        for sha, vector in alone.vectors.items():
            np.testing.assert_allclose(
                result.vectors[sha], vector, rtol=1e-5, atol=1e-6 * np.abs(vector).max()
            )
        assert cache.get_many(view.cache_key, list(alone.vectors)).keys() == alone.vectors.keys()
    # Mirroring changes the vectors, framing changes them: four different views.
    first = sha256_of(sample_images[0])
    assert len({results[i].vectors[first].tobytes() for i in range(4)}) == 4
    # Everything cached: nothing read again.
    reads.clear()
    again = extractor.extract_views([(sha256_of(d), reader(d)) for d in sample_images], views, cache)
    assert not reads and all(r.n_cached == len(sample_images) and r.n_extracted == 0 for r in again)


def test_it_extracts_repeated_content_once(extractor, sample_images):
    items = items_of(sample_images[:2]) * 3
    result = extractor.extract_items(items, MemoryCache())
    assert result.n_extracted == 2 and len(result.vectors) == 2


def test_it_reports_unreadable_images_without_failing_the_rest(extractor, sample_images, imgs):
    truncated = imgs.encode(imgs.gradient((200, 150)), "JPEG")[:500]
    bad = {
        "a" * 64: b"garbage bytes",
        "b" * 64: truncated,
        "c" * 64: imgs.encode(imgs.gradient((8, 8)), "TIFF"),
    }
    items = items_of(sample_images[:3]) + list(bad.items())
    result = extractor.extract_items(items, None, batch_size=2)
    assert isinstance(result, ExtractionResult)
    assert set(result.failed) == set(bad)
    assert "not an image" in result.failed["a" * 64]
    assert "incomplete" in result.failed["b" * 64]
    assert "TIFF" in result.failed["c" * 64]
    assert result.n_extracted == 3 and len(result.vectors) == 3


def test_it_raises_for_an_unreadable_image_in_plain_extract(extractor, sample_images):
    with pytest.raises(InvalidImage):
        extractor.extract([sample_images[0], b"nope"])


def test_it_reports_progress_per_batch(extractor, sample_images):
    calls = []
    extractor.extract_items(
        items_of(sample_images), MemoryCache(), batch_size=3, on_progress=lambda f, m: calls.append((f, m))
    )
    n = len(sample_images)
    assert [m for _, m in calls] == [f"extracting {k}/{n}" for k in (3, 6, 7)]
    assert [f for f, _ in calls] == sorted(f for f, _ in calls) and calls[-1][0] == 1.0

    calls.clear()
    extractor.extract(sample_images, batch_size=4, on_progress=lambda f, m: calls.append((f, m)))
    assert calls[-1] == (1.0, f"extracting {n}/{n}")


def test_it_stops_when_progress_raises_cancelled_keeping_finished_batches(extractor, sample_images):
    cache = MemoryCache()

    def cancel(fraction, message):
        raise Cancelled("stopped by the user")

    with pytest.raises(Cancelled):
        extractor.extract_items(items_of(sample_images), cache, batch_size=2, on_progress=cancel)
    assert len(cache) == 2  # the batch before the cancel was stored


def test_it_accepts_bytes_paths_and_file_objects(extractor, sample_images, tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(sample_images[0])
    features = extractor.extract([sample_images[0], path, io.BytesIO(sample_images[0])])
    assert np.allclose(features[0], features[1]) and np.allclose(features[0], features[2])
    assert extractor.extract([]).shape == (0, 1280)


def test_it_compares_with_eager_torch_on_the_same_weights(extractor, sample_images):
    eager = Extractor(extractor.backbone, device="cpu", engine="torch", pretrained=False)
    eager._net = extractor.net
    assert np.abs(eager.extract(sample_images) - extractor.extract(sample_images)).max() < 1e-3


def test_it_keeps_directory_cache_files_inside_its_root(tmp_path):
    cache = DirectoryCache(tmp_path)
    with pytest.raises(ValueError):
        cache.put_many("../escape", {"a" * 64: np.zeros(3)})
    with pytest.raises(ValueError):
        cache.get_many("key", ["../../etc/passwd"])
    cache.put_many("key", {"ab" * 32: np.arange(3)})
    (path,) = tmp_path.rglob("*.npy")
    path.write_bytes(b"corrupt")
    assert cache.get_many("key", ["ab" * 32]) == {}  # unreadable counts as missing: extracted again


@pytest.mark.slow
def test_it_recognises_ants_and_bees_through_onnx(hymenoptera, tmp_path, monkeypatch):
    monkeypatch.setenv("PINHOLE_MODEL_CACHE", str(tmp_path))
    files = (
        sorted((hymenoptera / "val" / "ants").glob("*"))[:5]
        + sorted((hymenoptera / "val" / "bees").glob("*"))[:5]
    )
    results = recognize(files, top_k=5)
    assert len(results) == 10 and all(len(r) == 5 for r in results)
    assert all(0 <= p <= 1 for r in results for _, p in r)
    hits = sum(any(name in ("ant", "bee") for name, _ in r) for r in results)
    assert hits >= 8, results

    # Once exported, answering needs neither torch nor torchvision (the web process never loads them).
    code = (
        "import sys; from classifier.recognition import recognize\n"
        f"top = recognize([{str(files[0])!r}], top_k=3)[0]\n"
        "assert len(top) == 3, top\n"
        "bad = [m for m in ('torch', 'torchvision', 'django') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PINHOLE_MODEL_CACHE": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_two_exports_of_one_backbone_at_once_trace_it_once(tmp_path):
    """A worker warming up and a web process answering "Try it" on a fresh host: one export, one waits."""
    import threading

    from classifier.backbones import get_backbone
    from classifier.graphs import backbone_onnx

    spec = get_backbone("efficientnet_lite0")
    built, paths = [], []

    def build():
        built.append(threading.get_ident())
        return spec.build(pretrained=False)

    def export():
        paths.append(backbone_onnx(spec, spec.preprocessing.crop, tmp_path, build=build))

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert paths[0] == paths[1] and paths[0].is_file()
