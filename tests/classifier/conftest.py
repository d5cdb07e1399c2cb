"""Generated images and the optional real data set for the ML-core tests (no Django, no database)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
HYMENOPTERA = DATASETS / "hymenoptera"


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    """The bytes of `image` saved in `fmt`."""
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def gradient(size=(64, 48), mode="RGB") -> Image.Image:
    """A deterministic colourful image (so crops and rotations are visible in the pixels)."""
    w, h = size
    image = Image.new("RGB", size)
    image.putdata(
        [((x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), 128) for y in range(h) for x in range(w)]
    )
    return image if mode == "RGB" else image.convert(mode)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims width x height (a decompression bomb header, ~60 bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


@pytest.fixture
def jpeg_bytes() -> bytes:
    return encode(gradient((96, 64)), "JPEG", quality=90)


@pytest.fixture
def png_bytes() -> bytes:
    return encode(gradient((96, 64)), "PNG")


@pytest.fixture(scope="session")
def sample_images() -> list[bytes]:
    """Seven small images of varied size, format and mode."""
    images = [
        encode(gradient((80, 60)), "JPEG", quality=90),
        encode(gradient((60, 90)), "PNG"),
        encode(gradient((128, 128)).rotate(90), "WEBP"),
        encode(gradient((50, 70), "L"), "PNG"),
        encode(gradient((70, 50)).convert("P"), "GIF"),
        encode(gradient((300, 200)), "BMP"),
        encode(Image.new("RGB", (40, 40), (200, 30, 30)), "JPEG"),
    ]
    return images


@pytest.fixture(scope="session")
def hymenoptera() -> Path:
    """The real ants/bees photos; the test skips where ../shared/datasets is absent (a user's clone)."""
    if not (HYMENOPTERA / "train" / "ants").is_dir():
        pytest.skip(f"real images not available: {HYMENOPTERA} is absent")
    return HYMENOPTERA


@pytest.fixture(scope="session")
def imgs():
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""

    return SimpleNamespace(
        encode=encode, gradient=gradient, png_header_only=png_header_only, png_chunk=png_chunk
    )


# --- a small labelled data set and a model trained on it (pipeline, predictor and CLI tests) ---------


def toy_image(colour: str, seed: int) -> bytes:
    """A noisy photo-like image dominated by red or blue shapes; the two classes are easy to tell apart."""
    import random

    from PIL import ImageDraw

    rng = random.Random(seed)
    base = (200, 40, 40) if colour == "red" else (40, 60, 200)
    image = Image.new("RGB", (120, 96), tuple(min(255, c + rng.randint(-30, 30)) for c in base))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randint(0, 100), rng.randint(0, 80)
        shade = tuple(min(255, max(0, c + rng.randint(-60, 60))) for c in base)
        if colour == "red":  # round red blobs
            draw.ellipse([x, y, x + rng.randint(10, 30), y + rng.randint(10, 30)], fill=shade)
        else:  # straight blue stripes
            draw.rectangle([0, y, 120, y + rng.randint(3, 8)], fill=shade)
    return encode(image, "JPEG", quality=90)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One exported-backbone cache for the whole session (exporting takes seconds)."""
    import os

    path = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get("PINHOLE_MODEL_CACHE")
    os.environ["PINHOLE_MODEL_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("PINHOLE_MODEL_CACHE", None)
    else:
        os.environ["PINHOLE_MODEL_CACHE"] = previous


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    """DATA_DIR/red and DATA_DIR/blue with 8 images each."""
    root = tmp_path_factory.mktemp("toy")
    for colour in ("red", "blue"):
        (root / colour).mkdir()
        for i in range(8):
            (root / colour / f"{colour}{i}.jpg").write_bytes(toy_image(colour, seed=i))
    return root


def toy_samples(root: Path):
    from classifier.data import Sample
    from classifier.features import sha256_of

    return [
        Sample(key=sha256_of(p.read_bytes()), source=p, label=p.parent.name)
        for p in sorted(root.glob("*/*.jpg"))
    ]


@pytest.fixture(scope="session")
def trained(toy_data, model_cache, tmp_path_factory):
    """A linear model version trained on toy_data with the real default backbone."""
    from classifier.cache import MemoryCache
    from classifier.pipeline import train_model

    cache = MemoryCache()
    out = tmp_path_factory.mktemp("trained") / "v1"
    outcome = train_model(toy_samples(toy_data), out, strategy="linear", cache=cache)
    outcome.cache = cache
    return outcome


@pytest.fixture(scope="session")
def make_toy_image():
    return toy_image


@pytest.fixture(scope="session")
def samples_of():
    """samples_of(DATA_DIR) -> pipeline Samples of DATA_DIR/<label>/*.jpg."""
    return toy_samples


@pytest.fixture
def hub_dir(monkeypatch, tmp_path):
    """An empty torch hub directory; downloads are off, so nothing can reach the network."""
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("PINHOLE_ALLOW_DOWNLOADS", raising=False)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    yield tmp_path / "torch" / "hub"
    torch.hub.set_dir(previous)
