"""Multi-label heads on a real multi-label set built from registry data: which digits are on the card?

    .venv/bin/python -m bench.multilabel [--train 600] [--test 400] [--seed 0]

Each picture is a 3 x 3 card of handwritten digits from scikit-learn's `load_digits` (1,797 real 8 x 8
scans shipped with the package): one to four digits, drawn from scans that never appear on both a
training and a test card. The labels are the digits 0-5; 6-9 are distractors, so a card may hold none
of the labels. Far from ImageNet photos on purpose.

Features are the default backbone's (as a training extracts them). Pinhole's heads
(classifier.multilabel.fit_multilabel: a calibrated head per label, C chosen by cross-validation,
thresholds where out-of-fold F1 is best) are compared with independent binary linear probes on the same
features (scikit-learn LogisticRegression per label, raw and standardised). The last line is one JSON
object; "target_met" says whether Pinhole's mean average precision is at least the better probe's.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np

from bench.common import report

LABELS = [str(d) for d in range(6)]  # 6-9 appear as distractors only
CELL = 32


def cards(n: int, scans: np.ndarray, digits: np.ndarray, rng) -> tuple[list[bytes], np.ndarray]:
    """n PNG cards and their labels [n, 6]."""
    from PIL import Image

    pictures, Y = [], np.zeros((n, len(LABELS)), dtype=bool)
    for i in range(n):
        canvas = np.zeros((3 * CELL, 3 * CELL), dtype=np.float32)
        count = rng.integers(1, 5)
        places = rng.choice(9, count, replace=False)
        for place in places:
            pick = rng.integers(len(scans))
            digit = Image.fromarray((scans[pick] * 255 / 16).astype(np.uint8)).resize((CELL - 4, CELL - 4))
            r, c = divmod(int(place), 3)
            canvas[r * CELL + 2 : r * CELL + CELL - 2, c * CELL + 2 : c * CELL + CELL - 2] = np.asarray(digit)
            if digits[pick] < len(LABELS):
                Y[i, digits[pick]] = True
        canvas += rng.normal(0, 8, canvas.shape)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(255 - canvas, 0, 255).astype(np.uint8)).convert("RGB").save(buffer, "PNG")
        pictures.append(buffer.getvalue())
    return pictures, Y


def card_sets(n_train: int, n_test: int, seed: int):
    """Training and test cards drawn from disjoint halves of the scans.

    Returns: (train pictures, their labels [n_train, 6], test pictures, their labels [n_test, 6])."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    order = rng.permutation(len(digits.images))
    half = len(order) // 2
    train_pictures, Y_train = cards(n_train, digits.images[order[:half]], digits.target[order[:half]], rng)
    test_pictures, Y_test = cards(n_test, digits.images[order[half:]], digits.target[order[half:]], rng)
    return train_pictures, Y_train, test_pictures, Y_test


def _vectors(extractor, pictures: list[bytes]) -> np.ndarray:
    """The cached-vector layout a training reads (pooled features, then the taps), one row per picture."""
    import hashlib

    keys = [hashlib.sha256(p).hexdigest() for p in pictures]
    result = extractor.extract_items(list(zip(keys, pictures, strict=True)))
    return np.stack([result.vectors[k] for k in keys])


def probes(X_train, Y_train, X_test, standardise: bool) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    columns = []
    for j in range(Y_train.shape[1]):
        model = LogisticRegression(max_iter=3000)
        if standardise:
            model = make_pipeline(StandardScaler(), model)
        columns.append(model.fit(X_train, Y_train[:, j]).predict_proba(X_test)[:, 1])
    return np.column_stack(columns)


def main(argv=None) -> dict:
    from classifier.features import Extractor
    from classifier.multilabel import fit_multilabel, scores

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--representation", default="depths", choices=["last", "depths", "layout"])
    args = parser.parse_args(argv)
    train_pictures, Y_train, test_pictures, Y_test = card_sets(args.train, args.test, args.seed)

    started = time.perf_counter()
    extractor = Extractor()
    X_train, X_test = _vectors(extractor, train_pictures), _vectors(extractor, test_pictures)
    extracted = time.perf_counter() - started
    if args.representation:
        from classifier.steps import represent

        X_train = represent(X_train, args.representation, extractor.backbone)
        X_test = represent(X_test, args.representation, extractor.backbone)

    started = time.perf_counter()
    heads = fit_multilabel(X_train, Y_train, LABELS, seed=args.seed)
    fitted = time.perf_counter() - started
    ours = scores(Y_test, heads.predict_proba(X_test), heads.thresholds)
    baselines = {}
    for name, standardise in (("probe_raw", False), ("probe_standardised", True)):
        P = probes(X_train, Y_train, X_test, standardise)
        baselines[name] = scores(Y_test, P, np.full(len(LABELS), 0.5))
    best_probe = max(b["mean_average_precision"] for b in baselines.values())
    result = {
        "representation": args.representation,
        "seed": args.seed,
        "train_cards": args.train,
        "test_cards": args.test,
        "cards_with_no_label": int((~Y_test.any(axis=1)).sum()),
        "pinhole_map": round(ours["mean_average_precision"], 4),
        "pinhole_macro_f1": round(ours["macro_f1"], 4),
        "pinhole_exact_match": round(ours["exact_match"], 4),
        **{f"{name}_map": round(b["mean_average_precision"], 4) for name, b in baselines.items()},
        **{f"{name}_macro_f1": round(b["macro_f1"], 4) for name, b in baselines.items()},
        "per_label_ap": [round(row["average_precision"], 4) for row in ours["per_label"]],
        "thresholds": [round(float(t), 3) for t in heads.thresholds],
        "extract_seconds": round(extracted, 1),
        "fit_seconds": round(fitted, 1),
        "target_met": ours["mean_average_precision"] >= best_probe,
    }
    report("multilabel", result)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
