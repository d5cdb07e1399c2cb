"""Data audit: the perceptual hash, confident-learning mislabels, near-duplicates and leakage."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from classifier import audit
from classifier.audit import find_leakage, find_mislabeled, find_near_duplicates, perceptual_hash
from classifier.evaluation import kfold_evaluate


def picture(seed: int, size=(240, 180)) -> Image.Image:
    """A smooth random colour field: photo-like low frequencies, different for every seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 200, (6, 8, 3)).astype(np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.count_nonzero(a != b))


def test_it_hashes_to_64_bits():
    h = perceptual_hash(picture(0))
    assert h.dtype == np.uint8 and h.shape == (64,)
    assert set(np.unique(h).tolist()) <= {0, 1}
    assert np.array_equal(h, perceptual_hash(picture(0).convert("L")))


def test_it_keeps_the_hash_through_resize_jpeg_and_brightness():
    for seed in range(4):
        image = picture(seed)
        h = perceptual_hash(image)
        w, hgt = image.size
        edits = [
            jpeg(image.resize((round(w * 0.9), round(hgt * 0.9)), Image.Resampling.LANCZOS), 80),
            ImageEnhance.Brightness(image).enhance(0.85),
            ImageEnhance.Brightness(image).enhance(1.15),
        ]
        for edited in edits:
            assert hamming(h, perceptual_hash(edited)) <= 6
        assert hamming(h, perceptual_hash(picture(seed + 100))) >= 16


def test_it_matches_the_imagehash_reference():
    imagehash = pytest.importorskip("imagehash", reason="imagehash (the pHash reference) is not installed")
    for seed in range(5):
        image = picture(seed, size=(97 + seed * 31, 64 + seed * 17))
        expected = imagehash.phash(image).hash.ravel().astype(np.uint8)
        assert np.array_equal(perceptual_hash(image), expected)


def blobs(n_per_class, dim=16, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (len(n_per_class), dim)) * 2.0
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    return centres[y] + rng.normal(0, spread, (len(y), dim)), y


def test_it_finds_planted_label_flips():
    X, y = blobs([30, 30, 30])
    planted = [4, 37, 75]
    given = y.copy()
    given[planted] = (y[planted] + 1) % 3
    labels = ["ants", "bees", "wasps"]
    _, oof = kfold_evaluate(X, given, labels, k=5, seed=0)
    found = find_mislabeled(oof, given, labels)
    assert {f["index"] for f in found} == set(planted)
    first = found[0]
    assert set(first) == {"index", "given", "predicted", "confidence", "given_probability"}
    by_index = {f["index"]: f for f in found}
    assert (by_index[4]["given"], by_index[4]["predicted"]) == ("bees", "ants")
    assert by_index[4]["confidence"] == pytest.approx(oof[4, 0])
    margins = [f["confidence"] - f["given_probability"] for f in found]
    assert margins == sorted(margins, reverse=True)
    names = np.array(labels)[given]
    assert find_mislabeled(oof, names, labels) == found


def test_it_holds_each_class_to_its_own_threshold():
    # A rare class the model is unsure of: its images get p(rare) around 0.6, common ones 0.95.
    labels = ["common", "rare"]
    p_rare = [0.05] * 88 + [0.62, 0.45] + [0.55, 0.58, 0.6, 0.6, 0.6, 0.6, 0.6, 0.62, 0.62, 0.63]
    given = [0] * 90 + [1] * 10
    proba = np.column_stack([1 - np.array(p_rare), p_rare])
    found = find_mislabeled(proba, given, labels)
    # 88 is above the rare class's mean (0.6); a single 0.8 cut-off would have missed it. 89 is below
    # it, and the rare images below their own mean are not pushed into the common class.
    assert [(f["index"], f["predicted"]) for f in found] == [(88, "rare")]
    assert found[0]["confidence"] == pytest.approx(0.62)
    assert found[0]["given_probability"] == pytest.approx(0.38)


def test_it_ignores_classes_nobody_is_labelled_with():
    proba = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.3, 0.7, 0.0]])
    assert find_mislabeled(proba, [0, 0, 1, 1], ["a", "b", "c"]) == []
    with pytest.raises(ValueError, match="shape"):
        find_mislabeled(proba[:, :2], [0, 0, 1, 1], ["a", "b", "c"])


def feature_set(n=40, dim=64, seed=0):
    """Two classes of positive, ReLU-like features with random hashes: similar within a class, no copies."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (2, dim))
    y = np.arange(n) % 2
    X = np.abs(centres[y] + rng.normal(0, 0.5, (n, dim)))
    H = rng.integers(0, 2, (n, 64), dtype=np.uint8)
    return X, H, rng


def flip(bits: np.ndarray, n: int, rng) -> np.ndarray:
    out = bits.copy()
    idx = rng.choice(64, n, replace=False)
    out[idx] = 1 - out[idx]
    return out


def rounded(pairs, decimals=3):
    return {(i, j, round(s, decimals)) for i, j, s in pairs}


def test_it_pairs_a_planted_copy_and_not_distinct_images():
    X, H, rng = feature_set()
    copy = X[6] + rng.normal(0, 0.01, X.shape[1])
    mirror = X[9] + rng.normal(0, 0.01, X.shape[1])  # the same content, a hash far off
    X = np.vstack([X, copy, mirror])
    H = np.vstack([H, flip(H[6], 3, rng), flip(H[9], 30, rng)])
    pairs = find_near_duplicates(X, H)
    assert [(i, j) for i, j, _ in pairs] == [(6, 40)]
    assert pairs[0][2] > 0.99
    # The same hash is not enough either: features far apart never pair.
    H2 = H.copy()
    H2[11] = H2[12]
    assert [(i, j) for i, j, _ in find_near_duplicates(X, H2)] == [(6, 40)]


def test_it_names_pairs_by_ids_and_orders_most_similar_first():
    X, H, rng = feature_set()
    X = np.vstack([X, X[3] + rng.normal(0, 0.05, X.shape[1]), X[20] + rng.normal(0, 0.001, X.shape[1])])
    H = np.vstack([H, H[3], H[20]])
    ids = [f"img{i}" for i in range(len(X))]
    pairs = find_near_duplicates(X, H, ids=ids)
    assert [(a, b) for a, b, _ in pairs] == [("img20", "img41"), ("img3", "img40")]
    assert pairs[0][2] >= pairs[1][2]
    with pytest.raises(ValueError, match="ids"):
        find_near_duplicates(X, H, ids=ids[:-1])
    with pytest.raises(ValueError, match="hashes"):
        find_near_duplicates(X, H[:, :32])


def test_it_gives_the_same_pairs_blockwise(monkeypatch):
    X, H, rng = feature_set(n=60)
    copies = [2, 15, 33, 47]
    X = np.vstack([X] + [X[c] + rng.normal(0, 0.02, X.shape[1]) for c in copies])
    H = np.vstack([H] + [flip(H[c], 2, rng) for c in copies])
    test_X, test_H = X[[5, 60, 20]] + rng.normal(0, 0.01, (3, X.shape[1])), H[[5, 60, 20]]
    one_block = rounded(find_near_duplicates(X, H))
    leaks = rounded(find_leakage(X, H, test_X, test_H))
    assert {(i, j) for i, j, _ in one_block} == {(c, 60 + k) for k, c in enumerate(copies)}
    monkeypatch.setattr(audit, "_BLOCK_ELEMENTS", 50)
    assert rounded(find_near_duplicates(X, H)) == one_block
    assert rounded(find_leakage(X, H, test_X, test_H)) == leaks


def test_it_finds_test_images_that_copy_training_images():
    X, H, rng = feature_set(n=40)
    train_X, train_H = X[:30], H[:30]
    test_X, test_H = X[30:].copy(), H[30:].copy()
    test_X[3] = train_X[7] + rng.normal(0, 0.01, X.shape[1])
    test_H[3] = flip(train_H[7], 2, rng)
    leaks = find_leakage(train_X, train_H, test_X, test_H)
    assert [(i, j) for i, j, _ in leaks] == [(7, 3)]
    assert find_leakage(train_X, train_H, test_X[:0], test_H[:0]) == []
    with pytest.raises(ValueError, match="dimensions"):
        find_leakage(train_X, train_H, test_X[:, :10], test_H)


def test_it_pairs_copies_in_sets_too_small_to_centre():
    X, H, rng = feature_set(n=3)
    X = np.vstack([X, X[0]])
    H = np.vstack([H, H[0]])
    assert [(i, j) for i, j, _ in find_near_duplicates(X, H)] == [(0, 3)]
    assert find_near_duplicates(X[:1], H[:1]) == []


def test_it_pairs_every_exact_copy_of_an_image_with_many():
    X, H, _ = feature_set(n=40)
    X = np.vstack([X] + [X[5]] * 10)
    H = np.vstack([H] + [H[5]] * 10)
    group = [5, *range(40, 50)]
    expected = {(a, b) for a in group for b in group if a < b}
    assert {(i, j) for i, j, _ in find_near_duplicates(X, H)} == expected
