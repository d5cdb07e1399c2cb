"""Does "label next" pay? Labelling hymenoptera/train 8 pictures at a time, in Pinhole's order or at random.

    .venv/bin/python -m bench.active_learning [--seeds 5] [--step 8] [--upto 80]

Each round labels the next 8 pictures of the pool (the 245 training photos, their labels hidden until
"labelled"), trains a head on the cached features of the labelled ones exactly as a linear training
does (classifier.fit.fit_linear: the regularisation searched by cross-validation, then calibrated), and
scores it on hymenoptera/val. "next" orders the pool with classifier.selection.order_to_label, asking
the model of the round before for its probabilities; "random" draws from the pool. A round whose
labels hold one class only cannot train; it scores the share of val in that class.

The features are the default backbone's, extracted once and kept in PINHOLE_MODEL_CACHE/bench.
"next" is deterministic for given features except through the head's fold seed; random order differs
by seed. The last line is one JSON object: mean val accuracy after 16, 32, 48, 64 and 80 labels per
order; the line before it says whether "next" reaches random's 80-label accuracy with 48 labels.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.common import report, require_dataset

MARKS = (16, 32, 48, 64, 80)


def features(root) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """{split: (features, label indices, label names)} of hymenoptera, extracted once and cached."""
    from classifier.features import Extractor, default_model_cache

    extractor = Extractor()
    cache = default_model_cache() / "bench" / f"active_learning-{extractor.cache_key}.npz"
    if cache.exists():
        saved = np.load(cache, allow_pickle=False)
        names = [str(n) for n in saved["names"]]
        return {s: (saved[f"{s}_X"], saved[f"{s}_y"], names) for s in ("train", "val")}
    out, arrays = {}, {}
    for split in ("train", "val"):
        names = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        paths = [(f, i) for i, name in enumerate(names) for f in sorted((root / split / name).iterdir())]
        X = extractor.extract([f for f, _ in paths])
        y = np.array([i for _, i in paths])
        out[split] = (X, y, names)
        arrays.update({f"{split}_X": X, f"{split}_y": y})
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, names=np.array(out["train"][2]), **arrays)
    return out


def _fit(X, y, names, seed):
    """The head a linear training would fit, or None when the labels hold fewer than two classes
    with two pictures each."""
    from classifier.errors import TrainingError
    from classifier.fit import fit_linear

    try:
        return fit_linear(X, y, names, seed=seed).head
    except TrainingError:
        return None


def _score(head, y_labelled, X_val, y_val) -> float:
    if head is None:  # one class (or too few of one): the best it can say is that class
        majority = np.bincount(y_labelled).argmax()
        return float(np.mean(y_val == majority))
    return float(np.mean(head.predict_proba(X_val).argmax(axis=1) == y_val))


def _space(X, labelled):
    from classifier.unknown import UnknownDetector

    if labelled.sum() < 2:
        return X
    return UnknownDetector().fit(X[labelled]).embed(X)


def simulate(order: str, data, seed: int, step: int, upto: int) -> dict[int, float]:
    """Val accuracy after each multiple of `step` labels, labelling in `order` ("next" or "random")."""
    from classifier.selection import order_to_label, uncertainty

    X, y, names = data["train"]
    X_val, y_val, _ = data["val"]
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(X), dtype=bool)
    head, scores = None, {}
    while labelled.sum() < min(upto, len(X)):
        if order == "random":
            picks = rng.choice(np.flatnonzero(~labelled), step, replace=False)
        else:
            # As a serving version does: compare pictures in the unknown detector's space (features
            # standardised on the labelled ones), with the labelled pictures' features as references.
            unsure = uncertainty(head.predict_proba(X)) if head is not None else None
            space = _space(X, labelled)
            picks = order_to_label(space, labelled, unsure, ranked=step)[:step]
        labelled[picks] = True
        head = _fit(X[labelled], y[labelled], names, seed)
        scores[int(labelled.sum())] = _score(head, y[labelled], X_val, y_val)
    return scores


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--step", type=int, default=8)
    parser.add_argument("--upto", type=int, default=max(MARKS))
    args = parser.parse_args(argv)
    data = features(require_dataset())
    started = time.perf_counter()
    runs: dict[str, list[dict[int, float]]] = {"next": [], "random": []}
    for seed in range(args.seeds):
        for order in runs:
            runs[order].append(simulate(order, data, seed, args.step, args.upto))
            print(f"seed {seed} {order}: " + json.dumps(runs[order][-1]), flush=True)
    means = {
        order: {
            str(m): round(float(np.mean([r[m] for r in rs])), 4) for m in MARKS if all(m in r for r in rs)
        }
        for order, rs in runs.items()
    }
    goal = means["random"].get("80")
    reached = next((int(m) for m, acc in means["next"].items() if goal is not None and acc >= goal), None)
    report(
        "active_learning",
        {
            "seeds": args.seeds,
            "step": args.step,
            "random_80": goal,
            "next_reaches_it_with": reached,
            "target_met": reached is not None and reached <= 48,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(json.dumps(means), flush=True)
    return means


if __name__ == "__main__":
    main()
