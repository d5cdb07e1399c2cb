"""Are Pinhole's trust features right? Planted faults, generated unknowns, sets far from ImageNet.

Drives the engine only as users do: `python -m classifier train|audit|export-backbone` in subprocesses
and `classifier.predict.Predictor`. Progress goes to stderr; the last stdout line is one JSON object in
which every goal figure reads {"value", "goal", "met"}, and "goals" sums them up.

    .venv/bin/python -m bench.quality                       # everything: about 15 minutes on 2 cores
    .venv/bin/python -m bench.quality --quick               # smaller sets: about 5 minutes
    .venv/bin/python -m bench.quality --only audit,unknown  # parts: accuracy,calibration,unknown,audit,timing

Parts and goals:
- accuracy: hymenoptera/val >= 96.5 % (train --val); on digits, ELPV solar cells and textures, at or
  above the best classical baseline measured in this run on the same split (SVMs) and, for ELPV, the
  published figures of the dataset's paper (quoted).
- calibration: expected calibration error <= 0.05 on hymenoptera/val.
- unknown: a model of hymenoptera/train flags <= 5 % of val/ and >= 90 % of generated
  out-of-distribution images; AUROC of unknown_score between the two >= 0.95.
- audit: hymenoptera/train with 12 labels flipped and 15 edited copies planted: flipped recall >= 0.75
  at precision >= 0.5, >= 90 % of copies paired with their original, <= 3 other pairs; on distinct
  images far from ImageNet (digits, ELPV) <= 1 % of images in a false pair (pixel-identical pairs
  count as true).
- timing: 2,000 ELPV cells trained cold (empty --cache; the exported backbone may be on disk) in
  <= 3 minutes with peak memory <= 1.5 GB (GNU time's maximum resident set).

The ELPV training, the cold 2,000-cell training and the three audits take most of a full run; a
strategy that adapts the network on the CPU would add 10-20 minutes to each ELPV training.
Sets, models and the feature cache live in bench/out/quality/ (git-ignored); PINHOLE_MODEL_CACHE
defaults to bench/out/quality/model-cache, where the backbone is exported once. Packages beyond the
project's: elpv-dataset (ELPV; skipped without it) and scikit-image (textures, HOG and LBP baselines).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path

import numpy as np

from bench import quality_sets as sets
from bench.common import HYMENOPTERA, REPO, report, require_dataset

PARTS = ("accuracy", "calibration", "unknown", "audit", "timing")
SIZES = {  # images per set; 0 means all of it
    "full": {"digits": 0, "elpv": 0, "ood_per_kind": 20, "timing": 2000},
    "quick": {"digits": 500, "elpv": 500, "ood_per_kind": 5, "timing": 400},
}
# Deitsch et al. 2019, Solar Energy 185:455-468 (the ELPV dataset's paper), abstract: "average accuracy"
# of a fine-tuned VGG-19 CNN and of an SVM on hand-crafted features, trained on 1,968 cells (75 % of the
# same 2,624). Their labels come from the four defect-probability levels, not exactly our two, so the
# comparison is indicative; it still sets the accuracy goal, being the higher bar.
ELPV_PUBLISHED = {"deitsch2019_cnn_vgg19": 0.8842, "deitsch2019_svm": 0.8244}
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


class EngineError(Exception):
    """A CLI command failed or printed no JSON result."""


def figure(value, op: str, goal) -> dict:
    """One measured figure next to its goal."""
    if value is None:
        return {"value": None, "goal": f"{op} {goal}", "met": False}
    met = value >= goal if op == ">=" else value <= goal
    return {"value": round(float(value), 4), "goal": f"{op} {round(float(goal), 4)}", "met": bool(met)}


def log(message: str) -> None:
    print(f"quality: {message}", file=sys.stderr, flush=True)


def _forward(stream, tail: deque) -> None:
    """The engine's own progress lines, indented under ours; the last few kept for an error message."""
    for line in stream:
        tail.append(line.rstrip())
        print(f"    {line.rstrip()}", file=sys.stderr, flush=True)


class Engine:
    """`python -m classifier ...` in a subprocess, timed, with GNU time's peak resident memory."""

    def __init__(self, work: Path, env: dict):
        self.work, self.env = work, env

    def run(self, *args: str) -> tuple[dict, float, float | None]:
        """Returns: (the last stdout line as JSON, wall seconds, peak resident MB or None)."""
        peak_file = self.work / ".peak-rss"
        peak_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "classifier", *args]
        if GNU_TIME:  # started from GNU time's small process, this large one's memory is not counted
            command = [GNU_TIME, "-f", "%M", "-o", str(peak_file), *command]
        started, tail = time.perf_counter(), deque(maxlen=8)
        pipe = subprocess.PIPE
        proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=pipe, stderr=pipe, text=True)
        forwarder = threading.Thread(target=_forward, args=(proc.stderr, tail), daemon=True)
        forwarder.start()
        lines = [line for line in proc.stdout.read().splitlines() if line.strip()]
        proc.wait()
        forwarder.join()
        wall = time.perf_counter() - started
        peak = int(peak_file.read_text().split()[-1]) / 1024 if peak_file.is_file() else None
        try:
            result = json.loads(lines[-1]) if lines else None
        except ValueError:
            result = None
        if proc.returncode or not isinstance(result, dict):
            why = next((t for t in reversed(tail) if t.strip()), "no output")
            raise EngineError(f"`classifier {args[0]}` exited {proc.returncode}: {why}")
        return result, wall, peak

    def train(self, name: str, data: Path, *extra: str) -> dict:
        out = self.work / "models" / name
        metrics, wall, peak = self.run("train", str(data), "--out", str(out), *extra)
        metrics["wall_s"], metrics["peak_rss_mb"] = round(wall, 1), peak and round(peak)
        return metrics


class Context:
    """What the parts share: the work folder, sizes, and the sets and models built once per run."""

    def __init__(self, work: Path, quick: bool, seed: int, env: dict):
        self.work, self.quick, self.seed = work, quick, seed
        self.sizes = SIZES["quick" if quick else "full"]
        self.engine = Engine(work, env)
        self.model_cache = Path(env["PINHOLE_MODEL_CACHE"])
        self.memo: dict = {}

    def far_sets(self) -> dict[str, sets.SplitSet]:
        if "far_sets" not in self.memo:
            log("building the far-from-ImageNet sets")
            far = {
                "digits": sets.digits_set(self.work / "digits", limit=self.sizes["digits"], seed=self.seed)
            }
            if sets.elpv_available():
                far["elpv"] = sets.elpv_set(self.work / "elpv", limit=self.sizes["elpv"], seed=self.seed)
            else:
                log("ELPV skipped: `pip install elpv-dataset` to include it")
            textures = sets.texture_set(self.work / "textures", seed=self.seed)  # None without scikit-image
            self.memo["far_sets"] = {**far, **({"textures": textures} if textures else {})}
        return self.memo["far_sets"]

    def model(self, name: str) -> dict:
        """Train metrics (with model_dir) of hymenoptera or a far set: train/ with --val test/, once."""
        if name not in self.memo:
            if name == "hymenoptera":
                train, val = HYMENOPTERA / "train", HYMENOPTERA / "val"
            else:
                train, val = self.far_sets()[name].train, self.far_sets()[name].test
            log(f"training on {name} train/ with --val {val.name}/")
            features = str(self.work / "features")  # shared by runs: keyed by image content and backbone
            self.memo[name] = self.engine.train(name, train, "--val", str(val), "--cache", features)
        return self.memo[name]


# --- classical baselines, measured in this run on the same split ------------------------------------


def _svc(X_train, y_train, X_test, y_test, scale: bool = False) -> float:
    """RBF SVM with C chosen by 5-fold cross-validation on the training split; test accuracy."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    model = (
        make_pipeline(StandardScaler(), SVC(gamma="scale")) if scale else make_pipeline(SVC(gamma="scale"))
    )
    search = GridSearchCV(model, {"svc__C": [1, 10, 100]}, cv=5).fit(X_train, y_train)
    return float(search.score(X_test, y_test))


def _hog(X: np.ndarray) -> np.ndarray:
    from skimage.feature import hog

    side = int(np.sqrt(X.shape[1]))
    return np.stack(
        [hog(row.reshape(side, side), pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for row in X]
    )


def _lbp(X: np.ndarray) -> np.ndarray:
    """Histograms of uniform local binary patterns at two radii: the classical texture descriptor."""
    from skimage.feature import local_binary_pattern

    side = int(np.sqrt(X.shape[1]))
    rows = []
    for row in X:
        image = (row.reshape(side, side) * 255).astype(np.uint8)
        hists = []
        for points, radius in ((8, 1), (16, 2)):
            codes = local_binary_pattern(image, points, radius, "uniform")
            hists.append(np.bincount(codes.astype(int).ravel(), minlength=points + 2) / codes.size)
        rows.append(np.concatenate(hists))
    return np.stack(rows)


def _pooled(X: np.ndarray, side: int = 32) -> np.ndarray:
    """Square images (rows of pixels) averaged down to at most side x side: as accurate, far faster."""
    n, full = len(X), int(np.sqrt(X.shape[1]))
    f = max(1, full // side)
    return X.reshape(n, full // f, f, full // f, f).mean(axis=(2, 4)).reshape(n, -1)


def classical_baselines(name: str, data: sets.SplitSet) -> dict[str, float]:
    """Test accuracy of each classical baseline for one far set."""
    a, b = data.X_train, data.X_test
    out = {"svc_rbf_pixels": _svc(_pooled(a), data.y_train, _pooled(b), data.y_test)}
    try:
        import skimage  # noqa: F401
    except ImportError:
        return out
    if name == "elpv":
        out["svc_rbf_hog"] = _svc(_hog(a), data.y_train, _hog(b), data.y_test, scale=True)
    if name == "textures":
        out["svc_rbf_lbp"] = _svc(_lbp(a), data.y_train, _lbp(b), data.y_test, scale=True)
    return out


# --- the parts ----------------------------------------------------------------------------------------


def part_accuracy(ctx: Context) -> dict:
    hym = ctx.model("hymenoptera")
    result = {
        "hymenoptera_val": figure(hym["accuracy"], ">=", 0.965),
        "hymenoptera_val_balanced": round(hym["balanced_accuracy"], 4),
        "hymenoptera_strategy": hym["strategy"],
    }
    for name, data in ctx.far_sets().items():
        log(f"classical baselines on {name}")
        started = time.perf_counter()
        baselines = {k: round(v, 4) for k, v in classical_baselines(name, data).items()}
        baseline_s = time.perf_counter() - started
        published = ELPV_PUBLISHED if name == "elpv" and not ctx.quick else {}
        best = max({**baselines, **published}.items(), key=lambda kv: kv[1])
        try:
            m = ctx.model(name)
        except EngineError as exc:
            result[name] = {"error": str(exc), "baselines": baselines}
            continue
        result[name] = {
            "engine_accuracy": figure(m["accuracy"], ">=", best[1]),
            "best_baseline": best[0],
            "engine_balanced_accuracy": round(m["balanced_accuracy"], 4),
            "baselines_this_run": baselines,
            "baselines_s": round(baseline_s, 1),
            "published": published or None,
            "strategy": m["strategy"],
            "n_train": m["n_train"],
            "n_test": m["n_val"],
            "train_wall_s": m["wall_s"],
        }
    return result


def part_calibration(ctx: Context) -> dict:
    result = {"hymenoptera_val_ece": figure(ctx.model("hymenoptera")["ece"], "<=", 0.05)}
    for name in ctx.memo.get("far_sets", {}):  # for information: models the accuracy part trained
        if name in ctx.memo:
            result[f"{name}_test_ece"] = round(ctx.model(name)["ece"], 4)
    return result


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def part_unknown(ctx: Context) -> dict:
    from sklearn.metrics import roc_auc_score

    from classifier.predict import Predictor

    predictor = Predictor(ctx.model("hymenoptera")["model_dir"])
    ood = sets.ood_set(ctx.work / "ood", per_kind=ctx.sizes["ood_per_kind"], seed=ctx.seed)
    val_paths = _images(HYMENOPTERA / "val")
    log(f"predicting {len(val_paths)} val photos and {sum(map(len, ood.values()))} generated unknowns")
    val = predictor.predict(val_paths)
    by_kind = {kind: predictor.predict(paths) for kind, paths in ood.items()}
    ood_all = [p for preds in by_kind.values() for p in preds]
    scores = [p.unknown_score for p in val + ood_all]
    result = {
        "val_flagged": figure(np.mean([p.unknown for p in val]), "<=", 0.05),
        "ood_flagged": figure(np.mean([p.unknown for p in ood_all]), ">=", 0.90),
        "auroc": figure(roc_auc_score([0] * len(val) + [1] * len(ood_all), scores), ">=", 0.95),
        "ood_flagged_by_kind": {
            k: round(float(np.mean([p.unknown for p in v])), 3) for k, v in by_kind.items()
        },
        "val_flagged_files": [p.name for p, pred in zip(val_paths, val, strict=True) if pred.unknown][:10],
        "threshold": predictor.detector.threshold_ if predictor.detector else None,
        "n_val": len(val),
        "n_ood": len(ood_all),
    }
    far = {}  # for information: the share of each far set's own test split its own model calls unknown
    for name, data in ctx.memo.get("far_sets", {}).items():
        if name in ctx.memo:
            preds = Predictor(ctx.model(name)["model_dir"]).predict(_images(data.test))
            far[name] = round(float(np.mean([p.unknown for p in preds])), 4)
    result["far_test_flagged"] = far or None
    return result


def _pixels(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return repr(rgb.size).encode() + rgb.tobytes()


def _correlation(a: Path, b: Path) -> float:
    """Pearson correlation of two images' grey pixels at 64x64: near 1 for pictures alike pixel by pixel."""
    from PIL import Image

    x, y = (np.asarray(Image.open(p).convert("L").resize((64, 64)), float).ravel() for p in (a, b))
    x, y = x - x.mean(), y - y.mean()
    return float(x @ y / (np.sqrt((x @ x) * (y @ y)) or 1.0))


def _pairs(answer: dict) -> list[tuple[str, str, float]]:
    """Every pair the audit reports (a group of identical files lists more than two paths)."""
    from itertools import combinations

    return [
        (Path(a).as_posix(), Path(b).as_posix(), group.get("similarity"))
        for group in answer["near_duplicates"]
        for a, b in combinations(group["paths"], 2)
    ]


def _audit(ctx: Context, data: Path) -> tuple[dict, float]:
    answer, wall, _ = ctx.engine.run("audit", str(data))
    missing = {"mislabeled", "near_duplicates", "outliers", "unreadable"} - set(answer)
    if missing:
        raise EngineError(f"the audit's answer lacks {sorted(missing)}")
    return answer, wall


def audit_planted(ctx: Context) -> dict:
    """Flipped labels and edited copies planted in hymenoptera/train: are they found, and nothing else?"""
    truth = sets.hymenoptera_audit_set(HYMENOPTERA / "train", ctx.work / "audit-hymenoptera", seed=ctx.seed)
    data = Path(truth["data_dir"])
    log(
        f"auditing hymenoptera/train with {len(truth['flipped'])} flipped labels, {len(truth['copies'])} copies"
    )
    answer, wall = _audit(ctx, data)
    flipped = {f["path"]: f["original_label"] for f in truth["flipped"]}
    flagged = {Path(m["path"]).as_posix(): m for m in answer["mislabeled"]}
    hits = [p for p in flagged if p in flipped]
    planted = {frozenset((c["original"], c["copy"])) for c in truth["copies"]}
    pairs = _pairs(answer)
    found = [frozenset((a, b)) for a, b, _ in pairs if frozenset((a, b)) in planted]
    others = [(a, b, s) for a, b, s in pairs if frozenset((a, b)) not in planted]
    identical = [o for o in others if _pixels(data / o[0]) == _pixels(data / o[1])]
    others = [o for o in others if o not in identical]
    missed = [c for c in truth["copies"] if frozenset((c["original"], c["copy"])) not in found]
    return {
        "mislabel_recall": figure(len(hits) / len(flipped), ">=", 0.75),
        "mislabel_precision": figure(len(hits) / len(flagged) if flagged else None, ">=", 0.5),
        "mislabel_flagged": len(flagged),
        "mislabel_suggestion_right": sum(flagged[p].get("suggested") == flipped[p] for p in hits),
        "mislabel_others_first": [p for p in flagged if p not in flipped][:5],
        "copies_paired": figure(len(set(found)) / len(planted), ">=", 0.90),
        "copies_missed": [f"{c['copy']} ({c['edit']})" for c in missed],
        "other_pairs": figure(len(others), "<=", 3),
        "other_pairs_first": [f"{a} ~ {b} ({s})" for a, b, s in others[:5]],
        "pixel_identical_pairs": len(identical),
        "outliers": len(answer["outliers"]),
        "unreadable": len(answer["unreadable"]),
        "n_images": truth["n_images"],
        "audit_wall_s": round(wall, 1),
    }


def audit_distinct(ctx: Context, name: str, data: Path) -> dict:
    """A set of distinct images: every pair the audit reports is false unless the pixels are identical."""
    log(f"auditing {name} (distinct images) for false near-duplicate pairs")
    answer, wall = _audit(ctx, data)
    false_pairs = [(a, b) for a, b, _ in _pairs(answer) if _pixels(data / a) != _pixels(data / b)]
    in_false = {p for pair in false_pairs for p in pair}
    n = len(_images(data))
    # For judging the false pairs by eye: distinct objects can still look alike (neighbouring solar
    # cells cut from one ingot share their grain), and pixel correlation says how alike.
    close = [a for a, b in false_pairs if _correlation(data / a, data / b) >= 0.95]
    return {
        "false_pair_fraction": figure(len(in_false) / n, "<=", 0.01),
        "false_pairs": len(false_pairs),
        "false_pairs_pixel_correlation_over_0.95": len(close),
        "false_pairs_first": [f"{a} ~ {b}" for a, b in false_pairs[:5]],
        "pairs": len(answer["near_duplicates"]),
        "mislabeled": len(answer["mislabeled"]),
        "outliers": len(answer["outliers"]),
        "n_images": n,
        "audit_wall_s": round(wall, 1),
    }


def part_audit(ctx: Context) -> dict:
    result = {}
    jobs = [("hymenoptera_planted", lambda: audit_planted(ctx))]
    for name in ("digits", "elpv"):
        if name in ctx.far_sets():
            jobs.append((f"{name}_distinct", lambda n=name: audit_distinct(ctx, n, ctx.far_sets()[n].all)))
    for key, job in jobs:
        try:
            result[key] = job()
        except EngineError as exc:  # the command may not exist yet, or fail on one set
            result[key] = {"error": str(exc)}
    return result


def part_timing(ctx: Context) -> dict:
    from classifier.backbones import DEFAULT_BACKBONE

    if not sets.elpv_available():
        return {"error": "ELPV is not installed: `pip install elpv-dataset`"}
    n = ctx.sizes["timing"]
    data = sets.elpv_subset(ctx.work / f"elpv-{n}", n, seed=ctx.seed)
    # The backbone's one-time ONNX export is not part of a cold training: make sure it is on disk.
    ctx.engine.run("export-backbone", DEFAULT_BACKBONE, "--onnx-dir", str(ctx.model_cache / "onnx"))
    cache = ctx.work / "timing-features"
    shutil.rmtree(cache, ignore_errors=True)
    log(f"cold training on {n} ELPV cells (empty feature cache)")
    load_before = os.getloadavg()[0]  # other work on the host slows this figure: say how much there was
    m = ctx.engine.train("timing", data, "--cache", str(cache))
    return {
        "cold_total_s": figure(m["wall_s"], "<=", 180),
        "peak_rss_mb": figure(m["peak_rss_mb"], "<=", 1536),
        "n_images": n,
        "strategy": m["strategy"],
        "holdout_accuracy": round(m["accuracy"], 4),
        "timings": m["timings"],
        "host_load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _goals(node, prefix: str = "") -> dict[str, bool]:
    """Every {"value", "goal", "met"} in the result by dotted path; a section that failed counts as unmet."""
    if not isinstance(node, dict):
        return {}
    if set(node) == {"value", "goal", "met"}:
        return {prefix: node["met"]}
    found = {f"{prefix} (error)": False} if "error" in node else {}
    for key, value in node.items():
        found.update(_goals(value, f"{prefix}.{key}" if prefix else key))
    return found


def _engine_version() -> str:
    """The last commit that changed classifier/, marked when it has changes not committed yet."""
    git = ["git", "-C", str(REPO)]
    last = subprocess.run(
        [*git, "log", "-1", "--format=%h", "--", "classifier"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "classifier"], capture_output=True, text=True
    ).stdout
    return f"{last.stdout.strip() or 'unknown'}{'+changes' if dirty.strip() else ''}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sets, for iterating")
    parser.add_argument("--seed", type=int, default=sets.SEED)
    parser.add_argument("--work", default=str(REPO / "bench" / "out" / "quality"))
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(set(parts) - set(PARTS))}; choose from {','.join(PARTS)}")
    require_dataset()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "models", ignore_errors=True)  # model versions are never overwritten
    env = {"PINHOLE_MODEL_CACHE": str(work / "model-cache"), **os.environ}
    ctx = Context(work, args.quick, args.seed, env)
    started = time.perf_counter()
    results = {"quick": args.quick, "seed": args.seed, "engine": _engine_version()}
    for part in (p for p in PARTS if p in parts):
        log(f"--- {part}")
        try:
            results[part] = globals()[f"part_{part}"](ctx)
        except Exception as exc:  # one broken part must not hide the figures of the others
            traceback.print_exc()
            results[part] = {"error": f"{type(exc).__name__}: {exc}"}
    goals = _goals(results)
    failed = sorted(k for k, met in goals.items() if not met)
    if _engine_version() != results["engine"]:  # the engine changed under the run: say so
        results["engine"] += f" -> {_engine_version()}"
    results["total_s"] = round(time.perf_counter() - started)
    results["goals"] = {"met": len(goals) - len(failed), "of": len(goals), "failed": failed}
    return report("quality", results)


if __name__ == "__main__":
    main()
