"""Builders of the evaluation sets that `bench.quality` runs the engine on.

Every set is written as DATA_DIR/<label>/<file>, the layout the CLI reads, under a folder the caller
gives (bench/out/..., git-ignored). Everything is deterministic for a seed: the same run twice builds
the same files, so figures from two runs compare.

- hymenoptera audit copy: train/ with labels flipped and edited copies planted, and the truth about both;
- digits: scikit-learn's 1797 8x8 digits as 32x32 PNGs (tiny, grayscale, far from ImageNet photos);
- ELPV: 2,624 electroluminescence images of solar cells, functional vs defective (pip elpv-dataset);
- textures: scikit-image's bundled brick, grass and gravel cut into 32x32 patches (when it installs);
- out-of-distribution: generated flat colours, gradients, noise, drawings, "scans", checkerboards.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

SEED = 0
TEST_FRACTION = 0.25  # the ELPV paper's 75/25 split; the same for every far set
N_FLIPPED = 12
N_COPIES_PER_EDIT = 5  # 5 resized + recompressed, 5 border crops, 5 brightness changes
OOD_KINDS = ("flat", "gradient", "uniform_noise", "gaussian_noise", "drawing", "scan", "checkerboard")


@dataclass
class SplitSet:
    """A labelled set written as all/, train/ and test/ (DATA_DIR layouts), with raw arrays for baselines.

    Attributes:
        root: the folder holding all/, train/ and test/.
        X_train, X_test: raw pixels, one row per image (for the classical baselines, same split).
        y_train, y_test: label names.
    """

    root: Path
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def all(self) -> Path:
        return self.root / "all"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def test(self) -> Path:
        return self.root / "test"


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _link(src: Path, dst: Path) -> None:
    """A hard link where the file system allows it (no second copy of the bytes), a copy otherwise."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_split(root: Path, names: list[str], labels: np.ndarray, test_mask: np.ndarray) -> None:
    """train/ and test/ as links to all/<label>/<name>: the audit reads all/, training reads the halves."""
    for name, label, is_test in zip(names, labels, test_mask, strict=True):
        src = root / "all" / label / name
        _link(src, root / ("test" if is_test else "train") / label / name)


def _stratified_test_mask(strata: np.ndarray, seed: int) -> np.ndarray:
    """True for the TEST_FRACTION of rows held out, stratified."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(strata))
    _, test = train_test_split(index, test_size=TEST_FRACTION, stratify=strata, random_state=seed)
    return np.isin(index, test)


def _stratified_subset(strata: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified subset of n rows (all rows when n >= len)."""
    if n >= len(strata):
        return np.arange(len(strata))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(strata)), train_size=n, stratify=strata, random_state=seed)
    return np.sort(keep)


# --- hymenoptera with planted faults ------------------------------------------------------------------


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def _edit(image: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, int, str]:
    """One edited copy: (image, JPEG quality, description). The edits people make before re-uploading."""
    w, h = image.size
    if kind == "resized":
        # Downscaled and recompressed, as a messaging app or a web export does.
        return (
            image.resize((round(w * 0.9), round(h * 0.9)), Image.Resampling.BICUBIC),
            80,
            "90% size, JPEG 80",
        )
    if kind == "cropped":
        f = float(rng.uniform(0.05, 0.08))  # of the width and height, off each side
        box = (round(w * f), round(h * f), w - round(w * f), h - round(h * f))
        return image.crop(box), 95, f"border crop {f:.1%} per side"
    factor = 0.85 if rng.random() < 0.5 else 1.15
    return ImageEnhance.Brightness(image).enhance(factor), 95, f"brightness x{factor}"


def hymenoptera_audit_set(source: Path, dest: Path, seed: int = SEED) -> dict:
    """A copy of hymenoptera/train with N_FLIPPED labels flipped and 15 edited copies added.

    Flipped photos move to the other label's folder under their own name; copies are saved next to
    their original, same label, under a new name. The photos flipped and copied are distinct.

    Args:
        source: hymenoptera/train (ants/, bees/).
        dest: the folder to create (replaced if present).
        seed: seed of every choice.
    Returns:
        the truth: {"data_dir", "n_images", "flipped": [{path, label, original_label}],
        "copies": [{original, copy, edit}]} with paths relative to data_dir; also saved as truth.json.
    """
    rng = np.random.default_rng(seed)
    dest = _fresh(dest)
    data = dest / "data"
    labels = sorted(p.name for p in source.iterdir() if p.is_dir())
    files = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    for rel in files:
        _link(source / rel, data / rel)
    chosen = rng.choice(len(files), N_FLIPPED + 3 * N_COPIES_PER_EDIT, replace=False)
    flipped_idx, copy_idx = chosen[:N_FLIPPED], chosen[N_FLIPPED:]

    flipped = []
    for i in flipped_idx:
        rel = files[i]
        other = next(name for name in labels if name != rel.parts[0])
        target = Path(other) / rel.name
        (data / target).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).rename(data / target)
        flipped.append({"path": target.as_posix(), "label": other, "original_label": rel.parts[0]})

    copies = []
    for n, i in enumerate(copy_idx):
        rel = files[i]
        kind = ("resized", "cropped", "brightness")[n // N_COPIES_PER_EDIT]
        image, quality, what = _edit(_open_rgb(source / rel), kind, rng)
        copy_rel = rel.with_name(f"{rel.stem}_v2.jpg")
        image.save(data / copy_rel, "JPEG", quality=quality)
        copies.append({"original": rel.as_posix(), "copy": copy_rel.as_posix(), "edit": what})

    truth = {
        "data_dir": str(data),
        "n_images": len(files) + len(copies),
        "flipped": flipped,
        "copies": copies,
    }
    (dest / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


# --- far-from-ImageNet sets ---------------------------------------------------------------------------


def digits_set(dest: Path, *, limit: int = 0, seed: int = SEED) -> SplitSet:
    """scikit-learn's handwritten digits (8x8, 17 grey levels) as 32x32 PNGs, dark ink on white.

    Each 8x8 pixel becomes a 4x4 block (nearest neighbour): the image holds no detail it did not have.

    Args:
        dest: the folder to create (replaced if present).
        limit: at most this many images, stratified (0: all 1797).
        seed: seed of the subset and the split.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = _stratified_subset(digits.target, limit or len(digits.target), seed)
    X, y = digits.data[keep], np.array([str(t) for t in digits.target[keep]])
    root = _fresh(dest)
    names = []
    for i, (row, label) in enumerate(zip(X, y, strict=True)):
        pixels = (255 - np.round(row.reshape(8, 8) * 255 / 16)).astype(np.uint8)
        name = f"digit{keep[i]:04d}.png"
        (root / "all" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "L").resize((32, 32), Image.Resampling.NEAREST).save(
            root / "all" / label / name
        )
        names.append(name)
    test = _stratified_test_mask(y, seed)
    _write_split(root, names, y, test)
    return SplitSet(root, X[~test], y[~test], X[test], y[test])


def _elpv_labels():
    """(file paths, defect probabilities, cell types) of the pip package's data, without decoding it."""
    import elpv_dataset.utils as elpv

    csv = Path(elpv.__file__).parent / "data" / "labels.csv"
    rows = [line.split() for line in csv.read_text().splitlines() if line.strip()]
    paths = [csv.parent / r[0] for r in rows]
    return paths, np.array([float(r[1]) for r in rows]), np.array([r[2] for r in rows])


def elpv_available() -> bool:
    try:
        _elpv_labels()
    except (ImportError, OSError):
        return False
    return True


def _elpv_label(probability: float) -> str:
    return "defective" if probability >= 0.5 else "functional"


def elpv_set(dest: Path, *, limit: int = 0, seed: int = SEED, baseline_size: int = 64) -> SplitSet:
    """ELPV solar cells (300x300 grayscale): functional (defect probability < 0.5) vs defective.

    Split 75/25 stratified by defect probability and cell type, as the dataset's paper does. The files
    are linked, not re-encoded: the engine reads the dataset's own PNGs.

    Args:
        dest: the folder to create (replaced if present).
        limit: at most this many cells, stratified the same way (0: all 2,624).
        seed: seed of the subset and the split.
        baseline_size: side of the downscaled pixels given to the classical baseline.
    """
    paths, probability, kind = _elpv_labels()
    strata = np.array([f"{p:.2f}-{t}" for p, t in zip(probability, kind, strict=True)])
    keep = _stratified_subset(strata, limit or len(paths), seed)
    root = _fresh(dest)
    names, labels, pixels = [], [], []
    for i in keep:
        label = _elpv_label(probability[i])
        _link(paths[i], root / "all" / label / paths[i].name)
        names.append(paths[i].name)
        labels.append(label)
        with Image.open(paths[i]) as image:
            small = image.convert("L").resize((baseline_size, baseline_size), Image.Resampling.BOX)
        pixels.append(np.asarray(small, dtype=np.float32).ravel() / 255)
    y, X = np.array(labels), np.stack(pixels)
    test = _stratified_test_mask(strata[keep], seed)
    _write_split(root, names, y, test)
    return SplitSet(root, X[~test], y[~test], X[test], y[test])


def elpv_subset(dest: Path, n: int, seed: int = SEED) -> Path:
    """n ELPV cells (stratified) in one DATA_DIR, for the cold-training time and memory figure."""
    paths, probability, kind = _elpv_labels()
    strata = np.array([f"{p:.2f}-{t}" for p, t in zip(probability, kind, strict=True)])
    root = _fresh(dest)
    for i in _stratified_subset(strata, n, seed):
        _link(paths[i], root / _elpv_label(probability[i]) / paths[i].name)
    return root


def texture_set(dest: Path, *, patch: int = 32, seed: int = SEED) -> SplitSet | None:
    """scikit-image's bundled brick, grass and gravel photos cut into patch x patch tiles.

    The test tiles come from the right quarter of each photo and the training tiles from the rest, so
    no test tile overlaps a training tile. None when scikit-image is not installed.
    """
    try:
        from skimage import data as skdata
    except ImportError:
        return None
    root = _fresh(dest)
    names, labels, X, test = [], [], [], []
    for label in ("brick", "grass", "gravel"):
        photo = np.asarray(getattr(skdata, label)(), dtype=np.uint8)
        rows, cols = photo.shape[0] // patch, photo.shape[1] // patch
        for r in range(rows):
            for c in range(cols):
                tile = photo[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch]
                name = f"{label}_{r:02d}_{c:02d}.png"
                (root / "all" / label).mkdir(parents=True, exist_ok=True)
                Image.fromarray(tile, "L").save(root / "all" / label / name)
                names.append(name)
                labels.append(label)
                X.append(tile.astype(np.float32).ravel() / 255)
                test.append(c >= cols * 3 // 4)
    y, X, test = np.array(labels), np.stack(X), np.array(test)
    _write_split(root, names, y, test)
    return SplitSet(root, X[~test], y[~test], X[test], y[test])


# --- out of distribution ------------------------------------------------------------------------------

_WORDS = [
    "invoice",
    "total",
    "amount",
    "date",
    "page",
    "account",
    "reference",
    "payment",
    "order",
    "customer",
    "number",
    "item",
    "quantity",
    "price",
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "with",
    "on",
    "by",
    "this",
    "that",
    "from",
    "report",
    "section",
    "figure",
    "table",
    "summary",
    "note",
    "signed",
]


def _random_size(rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(48, 900)), int(rng.integers(48, 900))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _ood_image(kind: str, rng: np.random.Generator) -> Image.Image:
    w, h = _random_size(rng)
    if kind == "flat":
        return Image.new("RGB", (w, h), _colour(rng))
    if kind == "gradient":
        a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(np.ptp(t), 1e-9)
        return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8), "RGB")
    if kind == "uniform_noise":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if kind == "gaussian_noise":
        grey = rng.random() < 0.5
        noise = rng.normal(rng.uniform(60, 190), rng.uniform(15, 60), (h, w, 1 if grey else 3))
        return Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8).repeat(3 if grey else 1, 2), "RGB")
    if kind == "drawing":
        image = Image.new("RGB", (w, h), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 15))):
            x0, x1 = sorted(rng.integers(0, w, 2))
            y0, y1 = sorted(rng.integers(0, h, 2))
            shape = rng.integers(0, 3)
            width = int(rng.integers(1, 6))
            if shape == 0:
                draw.line((x0, y0, x1, y1), fill=_colour(rng), width=width)
            elif shape == 1:
                draw.rectangle((x0, y0, x1, y1), outline=_colour(rng), width=width)
            else:
                draw.ellipse((x0, y0, x1, y1), outline=_colour(rng), width=width)
        return image
    if kind == "scan":
        # A page of text: white or grey paper, a little sensor noise, dark lines of words.
        w, h = int(rng.integers(300, 900)), int(rng.integers(300, 1100))
        paper = rng.uniform(200, 255)
        page = np.clip(rng.normal(paper, 4, (h, w)), 0, 255).astype(np.uint8)
        image = Image.fromarray(page, "L").convert("RGB")
        draw = ImageDraw.Draw(image)
        size = int(rng.integers(10, 22))
        font = ImageFont.load_default(size=size)
        ink = (int(rng.integers(0, 70)),) * 3
        for y in range(int(rng.integers(10, 40)), h - size, int(size * 1.6)):
            words = " ".join(rng.choice(_WORDS, int(rng.integers(3, 14))))
            draw.text((int(rng.integers(10, 40)), y), words, fill=ink, font=font)
        return image
    if kind == "checkerboard":
        square = int(rng.integers(4, 64))
        yy, xx = np.mgrid[0:h, 0:w]
        on = ((yy // square + xx // square) % 2).astype(bool)
        out = np.empty((h, w, 3), np.uint8)
        out[on], out[~on] = _colour(rng), _colour(rng)
        return Image.fromarray(out, "RGB")
    raise ValueError(f"unknown out-of-distribution kind {kind!r}")


def ood_set(dest: Path, per_kind: int = 20, seed: int = SEED) -> dict[str, list[Path]]:
    """Generated images unlike any photo: dest/<kind>/<n>.png (scans as JPEG, as scanners write them).

    Args:
        dest: the folder to create (replaced if present).
        per_kind: images of each kind in OOD_KINDS.
        seed: every image is drawn from one generator seeded with it, in a fixed order.
    Returns:
        {kind: [paths]}.
    """
    rng = np.random.default_rng(seed)
    root = _fresh(dest)
    out: dict[str, list[Path]] = {}
    for kind in OOD_KINDS:
        (root / kind).mkdir()
        out[kind] = []
        for n in range(per_kind):
            image = _ood_image(kind, rng)
            path = root / kind / (f"{n:03d}.jpg" if kind == "scan" else f"{n:03d}.png")
            image.save(path, **({"quality": 85} if kind == "scan" else {}))
            out[kind].append(path)
    return out
