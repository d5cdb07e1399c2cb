"""Command line: python -m classifier train|evaluate|predict|audit|recognize|backbones|engines|bench|export-backbone.

Progress goes to stderr; results go to stdout as JSON (the last line of `train` and `evaluate` is one
JSON object). A person's mistake (missing folder, one label only, an unreadable image) gives a message
on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import ClassifierError

EXIT_USAGE = 2
_EVALUATE_BATCH = 32  # images per Predictor call in `evaluate`


class UsageError(Exception):
    """A mistake in the command line or the data folders."""


def _progress_printer():
    """A one-line progress bar on a terminal; plain lines (only when the stage changes) otherwise."""
    tty = sys.stderr.isatty()
    last = {"stage": None}

    def show(report) -> None:
        """Args: report: a progress.ProgressReport."""
        if tty:
            filled = int(report.fraction * 30)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {report.fraction:5.1%} {report.message[:60]:<60}"
            sys.stderr.write("\r" + bar)
            sys.stderr.flush()
            return
        if report.stage != last["stage"]:
            last["stage"] = report.stage
            print(f"{report.fraction:5.1%} {report.message}", file=sys.stderr)

    def close() -> None:
        if tty:
            sys.stderr.write("\n")

    show.close = close
    return show


def _folder_samples(root: Path, what: str):
    """Samples from DATA_DIR/<label>/<image>; files that are not images are reported later, not fatal."""
    from .data import Sample
    from .features import sha256_of

    if not root.is_dir():
        raise UsageError(f"{what} {root} is not a folder")
    labels = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not labels:
        raise UsageError(
            f"{what} {root} has no sub-folders; put each label's images in a folder named after it"
        )
    samples = []
    for label in labels:
        for path in sorted((root / label).rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                try:
                    data = path.read_bytes()
                except OSError as exc:  # no permission, removed meanwhile: skip it like a bad image
                    print(f"skipped {path}: cannot be read ({exc.strerror or exc})", file=sys.stderr)
                    continue
                samples.append(Sample(key=sha256_of(data), source=path, label=label))
    if not samples:
        raise UsageError(f"{what} {root} has no files in its label folders")
    return labels, samples


def _report_skipped(skipped: list[dict], samples) -> None:
    by_key = {s.key: s for s in samples}
    for item in skipped:
        sample = by_key.get(item["key"])
        name = sample.source if sample else item["key"][:12]
        print(f"skipped {name}: {item['error']}", file=sys.stderr)


def cmd_train(args) -> dict:
    from .cache import DirectoryCache
    from .features import default_model_cache
    from .pipeline import train_model

    labels, samples = _folder_samples(Path(args.data_dir), "DATA_DIR")
    if len(labels) < 2:
        raise UsageError(f"DATA_DIR has one label folder ({labels[0]}); a classifier needs at least two")
    val_samples = None
    if args.val:
        val_labels, val_samples = _folder_samples(Path(args.val), "--val")
        extra = sorted(set(val_labels) - set(labels))
        if extra:
            raise UsageError(f"--val has label folders the training data lacks: {', '.join(extra)}")
    out = Path(args.out)
    if out.exists():
        raise UsageError(f"--out {out} already exists; model versions are never overwritten")
    cache = DirectoryCache(Path(args.cache) if args.cache else default_model_cache() / "features")
    progress = _progress_printer()
    try:
        outcome = train_model(
            samples, out, labels=labels, backbone=args.backbone, strategy=args.strategy, cache=cache,
            val_samples=val_samples, seed=args.seed, device=args.device, on_progress=progress,
        )  # fmt: skip
    finally:
        progress.close()
    _report_skipped(outcome.metrics.get("skipped", []), [*samples, *(val_samples or [])])
    m = outcome.metrics
    keys = (
        "accuracy", "balanced_accuracy", "labels", "confusion_matrix", "per_class", "top_k_accuracy", "ece",
        "log_loss", "n_train", "n_val", "backbone", "strategy", "strategy_reason", "device", "engine", "evaluation",
        "evaluation_kind", "framing", "views", "representation", "setting_scores", "timings",
    )  # fmt: skip
    result = {k: m.get(k) for k in keys}
    result["model_dir"] = str(outcome.path)
    result["mislabeled"] = len(m.get("mislabeled", []))
    result["near_duplicates"] = len(m.get("near_duplicates", []))
    return result


def cmd_audit(args) -> dict:
    """Wrong labels, copies, outliers and unreadable files in DATA_DIR, paths relative to it."""
    from .cache import DirectoryCache
    from .features import default_model_cache
    from .pipeline import audit_images

    root = Path(args.data_dir)
    labels, samples = _folder_samples(root, "DATA_DIR")
    if len(labels) < 2:
        raise UsageError(f"DATA_DIR has one label folder ({labels[0]}); an audit compares at least two")

    def rel(sample) -> str:
        return Path(sample.source).relative_to(root).as_posix()

    paths: dict[str, list[str]] = {}
    for sample in samples:
        paths.setdefault(sample.key, []).append(rel(sample))
    cache = DirectoryCache(Path(args.cache) if args.cache else default_model_cache() / "features")
    progress = _progress_printer()
    try:
        outcome = audit_images(
            samples, labels=labels, backbone=args.backbone, cache=cache, seed=args.seed, on_progress=progress
        )
    finally:
        progress.close()
    found = outcome.findings
    first = {key: names[0] for key, names in paths.items()}
    by_key = {s.key: s for s in outcome.samples}
    # The same bytes under two names are the plainest copies of all (checked once, listed here).
    exact = [{"paths": names, "similarity": 1.0} for names in paths.values() if len(names) > 1]
    result = {
        "mislabeled": [
            {
                "path": first[m["key"]],
                "label": m["given"],
                "suggested": m["predicted"],
                "confidence": round(m["confidence"], 4),
            }
            for m in found["mislabeled"]
        ],
        "near_duplicates": exact
        + [
            {"paths": [first[d["a"]], first[d["b"]]], "similarity": d["similarity"]}
            for d in found["near_duplicates"]
        ],
        "outliers": [
            {"path": first[o["key"]], "label": by_key[o["key"]].label, "score": o["score"]}
            for o in found["outliers"]
        ],
        "unreadable": [{"path": first[key], "error": error} for key, error in sorted(outcome.failed.items())],
    }
    counts = {name: 0 for name in labels}
    for sample in outcome.samples:
        counts[sample.label] += 1
    result["counts"] = {
        "images": len(samples),
        "checked": len(outcome.samples),
        "per_label": counts,
        **{kind: len(result[kind]) for kind in ("mislabeled", "near_duplicates", "outliers", "unreadable")},
    }
    return result


def cmd_evaluate(args) -> dict:
    """The metrics of a saved model on DATA_DIR, under the same keys as `train` reports."""
    from .evaluation import evaluate
    from .predict import Predictor

    started = time.perf_counter()
    predictor = Predictor(args.model_dir)
    labels, samples = _folder_samples(Path(args.data_dir), "DATA_DIR")
    unknown = sorted(set(labels) - set(predictor.labels))
    if unknown:
        raise UsageError(f"DATA_DIR has label folders the model does not know: {', '.join(unknown)}")
    import numpy as np

    extract_started = time.perf_counter()
    probabilities, kept, skipped = [], [], []
    for start in range(0, len(samples), _EVALUATE_BATCH):
        chunk = samples[start : start + _EVALUATE_BATCH]
        try:  # a whole batch at once; one by one only when it holds an unreadable image
            probabilities.extend(predictor.predict_proba([s.source for s in chunk]))
            kept.extend(chunk)
            continue
        except (ClassifierError, OSError):
            pass
        for sample in chunk:
            try:
                probabilities.append(predictor.predict_proba([sample.source])[0])
                kept.append(sample)
            except ClassifierError as exc:
                skipped.append({"key": sample.key, "error": str(exc)})
            except OSError as exc:
                skipped.append({"key": sample.key, "error": f"cannot read: {exc}"})
    extract_s = time.perf_counter() - extract_started
    _report_skipped(skipped, samples)
    if not kept:
        raise UsageError("none of the images in DATA_DIR could be read")

    y = [predictor.labels.index(s.label) for s in kept]
    metrics = evaluate(y, np.stack(probabilities), predictor.labels)
    trained = predictor.manifest.get("metrics") or {}
    metrics.update(
        {
            "backbone": predictor.manifest["backbone"]["name"],
            "strategy": predictor.manifest.get("strategy"),
            "strategy_reason": trained.get("strategy_reason"),
            "device": "cpu",  # the Predictor serves on the CPU, on this host's engine
            "engine": {"precision": str(predictor.engine.precision), "runtime": predictor.engine.runtime},
            "evaluation": f"DATA_DIR of {len(kept)} images",
            "evaluation_kind": "validation_set",
            **{key: trained.get(key) for key in ("framing", "views", "representation", "setting_scores")},
            "n_train": trained.get("n_train"),
            "n_val": len(kept),
            "skipped": len(skipped),
            "model_dir": str(predictor.path),
            "timings": {
                "extract_s": round(extract_s, 3),
                "fit_s": 0.0,  # nothing is trained: the saved model is used as it is
                "total_s": round(time.perf_counter() - started, 3),
                "images_per_s": round(len(kept) / extract_s, 1) if extract_s else None,
            },
        }
    )
    return metrics


def cmd_predict(args) -> list[dict]:
    from .predict import Predictor

    predictor = Predictor(args.model_dir)
    results = []
    for name in args.images:
        path = Path(name)
        if not path.is_file():
            results.append({"path": name, "error": "no such file"})
            print(f"error: {name}: no such file", file=sys.stderr)
            continue
        try:
            [prediction] = predictor.predict([path], top_k=args.top_k)
        except (ClassifierError, OSError) as exc:
            results.append({"path": name, "error": str(exc)})
            print(f"error: {name}: {exc}", file=sys.stderr)
            continue
        results.append({"path": name, **prediction.to_dict()})
    return results


def cmd_recognize(args) -> list[dict]:
    from .recognition import recognize

    results = []
    for name in args.images:
        try:
            [top] = recognize([Path(name)], backbone=args.backbone, top_k=args.top_k)
        except (ClassifierError, OSError) as exc:
            results.append({"path": name, "error": str(exc)})
            continue
        results.append({"path": name, "top": [{"label": c, "probability": p} for c, p in top]})
    return results


def cmd_backbones(args) -> list[dict]:
    from .backbones import list_backbones

    return list_backbones()


def cmd_bench(args) -> dict:
    from .benchmark import extraction_benchmark

    root = Path(args.data_dir)
    if not root.is_dir():
        raise UsageError(f"DATA_DIR {root} is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise UsageError(f"DATA_DIR {root} has no files")
    result = extraction_benchmark(
        paths, backbone=args.backbone, limit=args.limit, eager_limit=args.eager_limit
    )
    for item in result["skipped"]:
        print(f"skipped {item['path']}: {item['error']}", file=sys.stderr)
    return result


def cmd_engines(args) -> dict:
    from .benchmark import engine_report

    try:
        return engine_report(args.backbone, measure=args.measure)
    except ValueError as exc:  # a PINHOLE_ENGINE value that is not one of the settings
        raise UsageError(str(exc)) from exc


def cmd_export_backbone(args) -> dict:
    # Import torch first so the Extractor exports here instead of starting yet another process.
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError(
            "exporting a backbone needs PyTorch, which this host does not have "
            "(pip install 'pinhole[train]', or export it on a worker host into PINHOLE_BACKBONE_DIR)"
        ) from None

    from .features import Extractor

    path = Extractor(args.backbone, device="cpu", onnx_dir=args.onnx_dir).export_here()
    return {"backbone": args.backbone, "onnx": str(path)}


def cmd_import_weights(args) -> dict:
    from .weights import import_weights

    return import_weights(args.file, check=not args.no_check)


def cmd_export(args) -> dict:
    from .exporting import export_version

    check = None
    if args.check:
        root = Path(args.check)
        if not root.is_dir():
            raise UsageError(f"--check {root} is not a folder")
        check = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not check:
            raise UsageError(f"--check {root} has no files")
    try:
        result = export_version(args.model_dir, args.format, Path(args.out), check=check)
    except ValueError as exc:  # an unknown format: say which exist
        raise UsageError(str(exc)) from None
    return result.to_dict()


def build_parser() -> argparse.ArgumentParser:
    from .backbones import DEFAULT_BACKBONE
    from .strategies import STRATEGY_CHOICES

    parser = argparse.ArgumentParser(prog="python -m classifier", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on DATA_DIR/<label>/<images>")
    train.add_argument("data_dir")
    train.add_argument("--out", required=True, help="the model directory to create")
    train.add_argument("--val", help="a validation folder with the same label sub-folders")
    train.add_argument("--backbone", default=DEFAULT_BACKBONE)
    train.add_argument("--strategy", default="auto", choices=STRATEGY_CHOICES)
    train.add_argument("--cache", help="feature cache directory (default: PINHOLE_MODEL_CACHE/features)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="metrics of a model on DATA_DIR/<label>/<images>")
    evaluate.add_argument("model_dir")
    evaluate.add_argument("data_dir")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="label images with a model")
    predict.add_argument("model_dir")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top-k", type=int, default=5)
    predict.set_defaults(func=cmd_predict)

    audit = sub.add_parser(
        "audit", help="find wrong labels, copies and outliers in DATA_DIR/<label>/<images>"
    )
    audit.add_argument("data_dir")
    audit.add_argument("--backbone", default=DEFAULT_BACKBONE)
    audit.add_argument("--cache", help="feature cache directory (default: PINHOLE_MODEL_CACHE/features)")
    audit.add_argument("--seed", type=int, default=0)
    audit.set_defaults(func=cmd_audit)

    recognize = sub.add_parser("recognize", help="the pretrained network's own ImageNet top-k")
    recognize.add_argument("images", nargs="+")
    recognize.add_argument("--backbone", default=DEFAULT_BACKBONE)
    recognize.add_argument("--top-k", type=int, default=5)
    recognize.set_defaults(func=cmd_recognize)

    backbones = sub.add_parser("backbones", help="which backbones are usable on this host")
    backbones.set_defaults(func=cmd_backbones)

    engines = sub.add_parser("engines", help="which engine runs the network on this CPU, and why")
    engines.add_argument("--measure", action="store_true", help="time every engine this host can run")
    engines.add_argument("--backbone", default=DEFAULT_BACKBONE)
    engines.set_defaults(func=cmd_engines)

    export = sub.add_parser("export-backbone", help="export a pretrained backbone to ONNX (cached)")
    export.add_argument("backbone")
    export.add_argument("--onnx-dir", required=True)
    export.set_defaults(func=cmd_export_backbone)

    from .exporting import FORMATS

    export_version = sub.add_parser(
        "export", help="export a model to another format, checked against its own answers"
    )
    export_version.add_argument("model_dir")
    export_version.add_argument("--format", required=True, help=f"one of {', '.join(FORMATS)}")
    export_version.add_argument("--out", required=True, help="the export directory to create")
    export_version.add_argument(
        "--check", help="a folder of pictures to compare answers on (default: fixed sample photos)"
    )
    export_version.set_defaults(func=cmd_export)

    weights = sub.add_parser(
        "import-weights", help="install a torchvision weights file copied from a machine with internet"
    )
    weights.add_argument("file")
    weights.add_argument("--no-check", action="store_true", help="do not build the network from it")
    weights.set_defaults(func=cmd_import_weights)

    bench = sub.add_parser("bench", help="extraction throughput: ONNX Runtime vs eager PyTorch, same run")
    bench.add_argument("data_dir")
    bench.add_argument("--backbone", default=DEFAULT_BACKBONE)
    bench.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    bench.add_argument("--eager-limit", type=int, default=64, help="images for the slow eager run")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (UsageError, ClassifierError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if isinstance(result, list):
        for item in result:
            print(json.dumps(item))
        return 1 if any("error" in item for item in result) else 0
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
