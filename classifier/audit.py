"""Data audit: likely mislabeled images, near-duplicates and train/test leakage.

Pure functions on arrays (and a PIL image for the hash), shared by the CLI and the site. Pair searches
work blockwise, so memory stays bounded (about `_BLOCK_ELEMENTS` similarities at a time) whatever the
number of images. Importing this module never imports torch or Django.

The duplicate thresholds were measured with efficientnet_lite0 features and `perceptual_hash` of
`load_rgb(source, target_size=256)`: on the 245 hymenoptera training photos plus edited copies of each
(resized to 90 % and saved at JPEG quality 80, 5-8 % cropped off the borders, brightness x0.85 and
x1.15, and mirrored, which must not pair), and on two sets far from ImageNet where distinct images look
alike (scikit-learn's 1,797 digits upscaled to 64x64, 2,624 ELPV solar-cell images).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy.fft import dct

from .evaluation import as_indices
from .features import ImageHash

# Side of the grayscale thumbnail the DCT runs on; its top-left HASH_SIDE^2 coefficients are the hash.
_HASH_THUMB = 32
HASH_SIDE = 8
HASH_BITS = HASH_SIDE * HASH_SIDE

# How alike two images of one set look by default is read off each image's BACKGROUND_RANK-th nearest
# neighbour, not a fixed cut: distinct ELPV cells reach a centred cosine of 0.99 and share hashes, while
# distinct insect photos stay below 0.69. The rank must exceed the copies an image has, or the copies
# raise their own background: with four edits and a mirror of every photo in one set, rank 5 paired
# 36 % of the copies, rank 8 91 %, rank 12 94 % (but 1.7 % of ELPV cells in a false pair, 0.9 % at 8).
BACKGROUND_RANK = 8
# A pair must close this share of the gap between the higher of its two backgrounds and identity
# (cosine 1). At 0.8, one edited copy per photo is paired 93.5 % of the time after a 90 % resize and
# JPEG quality 80, 87 % after a 5-8 % crop, 100 % after brightness x0.85 or x1.15, with no other pair;
# all four edits and the mirror in one set: 91 % of copies, no mirror, no other pair. No digit and 0.9 %
# of ELPV cells land in a false pair (consecutive cells of one module that differ by about 3 grey levels
# in 255). 0.75 pairs 95.5 % of the copies but puts 2.5 % of ELPV cells in a false pair.
DUPLICATE_LIFT = 0.8
# Hash distance (of 64 bits) above which no pair counts, and never more than the image's own
# BACKGROUND_RANK-th hash neighbour. Resized, recompressed and brightened copies differ by 0-6 bits and
# 5-8 % crops by 2-24 (median 10), while mirrors differ by 24-38 bits and distinct photos by 14 or more.
MAX_HASH_DISTANCE = 20
# Below this many images the set cannot say what its background is (centring two images makes them
# opposite), so raw cosines are compared against SMALL_SET_BACKGROUND instead: the median raw cosine of
# a hymenoptera photo to its 8th neighbour is 0.57, and 0.6 gives a raw threshold of 0.92 that pairs
# 95 % of resized, 87 % of cropped and 99 % of brightened copies and no two distinct photos.
MIN_BACKGROUND_ROWS = 20
SMALL_SET_BACKGROUND = 0.6

# 4M float32 similarities = 16 MB per block (and as much again for the block's hash distances).
_BLOCK_ELEMENTS = 4_000_000
# Float32 block products are only a first cut, loose by this much; each candidate is then decided on
# one float64 dot. Reported and ordered at _SIMILARITY_DECIMALS, so ties fall to the row indices.
_BLOCK_SLACK = 1e-4
# Thresholds stop short of 1, so exact copies still pair when an image has so many that they fill its
# background (float32 rows of one vector can dot to just under 1).
_IDENTICAL = 1.0 - 1e-6
_SIMILARITY_DECIMALS = 6


def perceptual_hash(image: Image.Image) -> np.ndarray:
    """64-bit DCT perceptual hash (the pHash construction, bit-for-bit the same as imagehash's phash).

    Args:
        image: a PIL image, any mode (the upright RGB image from preprocessing.load_rgb).
    Returns:
        uint8 array [64] of zeros and ones, row-major over the 8x8 lowest frequencies.
    """
    gray = image.convert("L").resize((_HASH_THUMB, _HASH_THUMB), Image.Resampling.LANCZOS)
    coeffs = dct(dct(np.asarray(gray, dtype=np.float64), axis=0), axis=1)[:HASH_SIDE, :HASH_SIDE]
    # Against the median, not zero: half the bits are set whatever the contrast or brightness.
    return (coeffs > np.median(coeffs)).astype(np.uint8).ravel()


# Hashes are cached like features, under this key; bump its version when perceptual_hash changes.
PERCEPTUAL_HASH = ImageHash("phash-v1", perceptual_hash)


def find_mislabeled(oof_proba, y, labels: Sequence[str]) -> list[dict]:
    """Likely mislabeled images, by confident learning (Northcutt et al.) on out-of-fold probabilities,
    pruned by noise rate.

    Each class j gets its own threshold t_j, the mean probability of j over the images labelled j, so a
    class the model finds hard (often a small one) is not held to the confidence of an easy one. An image
    counts towards class j when p_j >= t_j (the largest such p_j when several are): the confident joint
    of given and counted classes. Its rows, rescaled to the number of images each label has, estimate how
    many images labelled i are really j; for each such cell that many images labelled i are flagged,
    those whose p_j - p_i is largest, provided the model's top answer is not their given label. Rows must
    come from heads that never saw the image, or memorised labels would hide every error.

    Measured on hymenoptera/train with 12 labels flipped (efficientnet_lite0, the training's own
    out-of-fold answers): 10 of the 12 found among 13 flagged; counting only the confident joint's
    off-diagonal found 9 among 10, and every top answer that disagrees, 12 among 24.

    Args:
        oof_proba: out-of-fold probabilities [N, K], columns in `labels` order.
        y: given labels [N], names from `labels` or indices into it.
        labels: class names in index order.
    Returns:
        list of {index, given, predicted, confidence (probability of predicted), given_probability}, most
        suspicious first: largest margin p_predicted - p_given, then lowest given probability, then index.
    """
    labels = [str(v) for v in labels]
    proba = np.asarray(oof_proba, dtype=np.float64)
    yi = as_indices(y, labels)
    if proba.ndim != 2 or proba.shape != (len(yi), len(labels)):
        raise ValueError(f"oof_proba must have shape ({len(yi)}, {len(labels)}), got {proba.shape}")
    if not len(yi):
        return []
    k = len(labels)
    rows = np.arange(len(yi))
    counts = np.bincount(yi, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, yi, proba[rows, yi])
    # A class nobody is labelled with has no threshold, so nobody is counted towards it.
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    above = np.where(proba >= thresholds, proba, -np.inf)
    counted = above.argmax(axis=1)
    confident = np.isfinite(above[rows, counted])
    joint = np.zeros((k, k))
    np.add.at(joint, (yi[confident], counted[confident]), 1.0)
    calibrated = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1.0) * counts[:, None]
    disagrees = proba.argmax(axis=1) != yi
    best: dict[int, tuple[float, int]] = {}  # image -> (margin, class it is flagged towards)
    for i in range(k):
        members = np.flatnonzero((yi == i) & disagrees)
        for j in range(k):
            n_errors = int(round(calibrated[i, j])) if i != j else 0
            if not n_errors or not len(members):
                continue
            margin = proba[members, j] - proba[members, i]
            for m in members[np.argsort(-margin, kind="stable")[:n_errors]]:
                gap = float(proba[m, j] - proba[m, i])
                if m not in best or gap > best[m][0]:
                    best[int(m)] = (gap, j)
    flagged = np.array(sorted(best), dtype=np.int64)
    if not len(flagged):
        return []
    towards = np.array([best[m][1] for m in flagged])
    p_pred = proba[flagged, towards]
    p_given = proba[flagged, yi[flagged]]
    order = np.lexsort((flagged, p_given, -(p_pred - p_given)))
    return [
        {
            "index": int(flagged[o]),
            "given": labels[yi[flagged[o]]],
            "predicted": labels[towards[o]],
            "confidence": float(p_pred[o]),
            "given_probability": float(p_given[o]),
        }
        for o in order
    ]


def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(n_cols, 1))


def _checked(features, hashes, what: str) -> tuple[np.ndarray, np.ndarray]:
    # float32 throughout: 20,000 rows of 1,280 features stay at 100 MB a copy.
    X = np.asarray(features, dtype=np.float32)
    H = np.asarray(hashes)
    if X.ndim != 2:
        raise ValueError(f"{what} features must be a 2-D array [N, D], got shape {X.shape}")
    if H.shape != (len(X), HASH_BITS):
        raise ValueError(f"{what} hashes must have shape ({len(X)}, {HASH_BITS}), got {H.shape}")
    return X, H


def _hamming(signs_a: np.ndarray, signs_b: np.ndarray) -> np.ndarray:
    # With bits as +-1, a dot product is (agreeing - disagreeing) bits: a matrix product does every pair.
    return (HASH_BITS - signs_a @ signs_b.T) * 0.5


def _threshold(background: np.ndarray) -> np.ndarray:
    # sim >= b + LIFT * (1 - b) is increasing in b, so the higher background of a pair wins by
    # requiring the similarity to pass both images' thresholds.
    return np.minimum(DUPLICATE_LIFT + (1.0 - DUPLICATE_LIFT) * background, _IDENTICAL)


def _search(X: np.ndarray, H: np.ndarray, split: int | None = None) -> list[tuple[int, int, float]]:
    """Duplicate pairs (i, j, similarity) of one set, i < j; with split, only i < split <= j.

    One blockwise pass: each block of rows gives those rows' backgrounds and, since a row's threshold
    lies above its BACKGROUND_RANK-th neighbour, at most a few candidate columns per row; the candidates
    are then checked against the other side's threshold and the hashes.
    """
    n = len(X)
    signs = np.where(H.astype(bool), 1.0, -1.0).astype(np.float32)
    centred = n >= MIN_BACKGROUND_ROWS
    # Pooled features are all positive and crowd near cosine 1; centring on the set's mean leaves what
    # tells its images apart.
    unit = X - X.mean(axis=0, dtype=np.float64).astype(np.float32) if centred else X.copy()
    unit /= np.maximum(np.sqrt(np.einsum("ij,ij->i", unit, unit)), 1e-12)[:, None]
    k = min(BACKGROUND_RANK, n - 1)
    background = np.full(n, SMALL_SET_BACKGROUND)
    max_hash = np.full(n, float(MAX_HASH_DISTANCE))
    cand_r, cand_c = [], []
    step = _block_rows(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        rows = np.arange(stop - start)
        sims = unit[start:stop] @ unit.T
        sims[rows, start + rows] = -np.inf
        if centred:
            background[start:stop] = np.partition(sims, -k, axis=1)[:, -k]
            ham = _hamming(signs[start:stop], signs)
            ham[rows, start + rows] = np.inf
            max_hash[start:stop] = np.minimum(np.partition(ham, k - 1, axis=1)[:, k - 1], MAX_HASH_DISTANCE)
        r, c = np.nonzero(sims >= _threshold(background[start:stop])[:, None] - _BLOCK_SLACK)
        r = r + start
        keep = r < c if split is None else (r < split) & (c >= split)
        cand_r.append(r[keep])
        cand_c.append(c[keep])
    r, c = np.concatenate(cand_r), np.concatenate(cand_c)
    threshold = _threshold(background)
    # The block product's last bits depend on the block's shape; one float64 dot per candidate makes
    # the decision and the reported value the same whatever the blocking.
    s = np.einsum("ij,ij->i", unit[r].astype(np.float64), unit[c].astype(np.float64))
    ham = (HASH_BITS - np.einsum("ij,ij->i", signs[r], signs[c])) * 0.5
    keep = (s >= threshold[r]) & (s >= threshold[c]) & (ham <= max_hash[r]) & (ham <= max_hash[c])
    s = np.round(s[keep], _SIMILARITY_DECIMALS)
    pairs = list(zip(r[keep].tolist(), c[keep].tolist(), s.tolist(), strict=True))
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs


def find_near_duplicates(features, hashes, *, ids: Sequence | None = None) -> list[tuple]:
    """Pairs of images that are copies of one another: resized, recompressed, slightly cropped or
    brightened, but not mirrored and not merely similar photos of one class.

    A pair needs both signals: the perceptual hashes within MAX_HASH_DISTANCE bits (and within each
    image's usual hash neighbours), and a centred feature cosine that stands out from what the set's
    images share with their BACKGROUND_RANK-th neighbours (DUPLICATE_LIFT).

    Args:
        features: pooled backbone features [N, D], one row per image.
        hashes: perceptual_hash of each image [N, 64].
        ids: optional names for the rows; pairs then carry ids instead of row indices.
    Returns:
        list of (i, j, similarity) with i < j in row order, most similar first (ties by i, then j);
        similarity is the cosine of the centred features (raw features below MIN_BACKGROUND_ROWS).
    """
    X, H = _checked(features, hashes, "the")
    n = len(X)
    if ids is not None and len(ids) != n:
        raise ValueError(f"{n} feature rows but {len(ids)} ids")
    if n < 2:
        return []
    pairs = _search(X, H)
    if ids is not None:
        pairs = [(ids[i], ids[j], s) for i, j, s in pairs]
    return pairs


def find_leakage(train_features, train_hashes, test_features, test_hashes) -> list[tuple[int, int, float]]:
    """Test images that are copies of a training image, which would inflate the test metrics.

    The criterion is find_near_duplicates' on the two sets taken together, keeping the pairs that cross.

    Args:
        train_features: training features [N, D].
        train_hashes: perceptual_hash of each training image [N, 64].
        test_features: test features [M, D].
        test_hashes: perceptual_hash of each test image [M, 64].
    Returns:
        list of (i_train, j_test, similarity), most similar first (ties by i_train, then j_test).
    """
    Xa, Ha = _checked(train_features, train_hashes, "training")
    Xb, Hb = _checked(test_features, test_hashes, "test")
    if Xa.shape[1] != Xb.shape[1]:
        raise ValueError(f"training features have {Xa.shape[1]} dimensions but test features {Xb.shape[1]}")
    n = len(Xa)
    if not n or not len(Xb):
        return []
    pairs = _search(np.concatenate([Xa, Xb]), np.concatenate([Ha, Hb]), split=n)
    return [(i, j - n, s) for i, j, s in pairs]
