"""A multi-label project end to end through the REST API, on digit cards built from registry data.

    .venv/bin/python -m bench.multilabel_api [--train 600] [--test 400] [--seed 0]

The cards are bench.multilabel's: 3 x 3 grids of scikit-learn's real handwritten digit scans, labelled
with the digits 0-5 they show (6-9 are distractors, so some cards show none of the labels). The bench
starts the site with `make run`'s embedded defaults (bench.api_pipeline.Site), then, over HTTP only:
creates a project with `"task_type": "multi_label"`, uploads the training cards with their `labels`
(and marks the cards with none of them by `PATCH {"labels": []}`), trains, and asks the served version
about every test card. Its mean average precision on the test cards is compared with independent binary
linear probes (scikit-learn LogisticRegression per label, raw and standardised) fitted on the same
training cards' features as the site's training reads them (the default backbone, several depths).
The last line is one JSON object; "target_met" says whether the site's mAP is at least the better
probe's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.api_pipeline import Site, train
from bench.common import report
from bench.multilabel import LABELS, card_sets, probes


def _upload(site: Site, project: int, pictures: list[bytes], Y: np.ndarray) -> None:
    """Each card with its labels, cards with the same labels together; none-of-these cards marked so."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(Y):
        groups.setdefault(tuple(name for name, on in zip(LABELS, row, strict=True) if on), []).append(i)
    for names, rows in groups.items():
        for start in range(0, len(rows), 25):
            chunk = rows[start : start + 25]
            files = [("files", (f"card{i}.png", pictures[i])) for i in chunk]
            sent = site.api("POST", f"projects/{project}/images/", files=files, data={"labels": list(names)})
            if not names:
                for image in sent["images"]:
                    site.api("PATCH", f"images/{image['id']}/", json={"labels": []})


def _features(pictures: list[bytes]) -> np.ndarray:
    """The cards' vectors as a site training reads them (the default backbone, several depths)."""
    from classifier.features import Extractor
    from classifier.steps import Representation, represent

    extractor = Extractor()
    keys = [hashlib.sha256(p).hexdigest() for p in pictures]
    result = extractor.extract_items(list(zip(keys, pictures, strict=True)))
    X = np.stack([result.vectors[k] for k in keys])
    return represent(X, Representation.DEPTHS, extractor.backbone)


def main(argv=None) -> dict:
    from classifier.multilabel import scores

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train_pictures, Y_train, test_pictures, Y_test = card_sets(args.train, args.test, args.seed)

    with tempfile.TemporaryDirectory(prefix="pinhole-bench-") as tmp:
        site = Site(Path(tmp))
        try:
            body = {"name": "Which digits?", "labels": LABELS, "task_type": "multi_label"}
            project = site.api("POST", "projects/", json=body)["id"]
            started = time.perf_counter()
            _upload(site, project, train_pictures, Y_train)
            uploaded = time.perf_counter() - started
            run = train(site, project)
            trained = time.perf_counter() - started - uploaded
            version = site.api("GET", f"versions/{run['model_version_id']}/")
            P = np.zeros(Y_test.shape)
            said = np.zeros(Y_test.shape, dtype=bool)
            for i, picture in enumerate(test_pictures):
                answer = site.api(
                    "POST", f"projects/{project}/predict/", files={"file": (f"t{i}.png", picture)}
                )
                for row in answer["labels"]:
                    j = LABELS.index(row["label"])
                    P[i, j], said[i, j] = row["probability"], row["present"]
        finally:
            site.close()
    thresholds = np.array([version["metrics"]["thresholds"][name] for name in LABELS])
    ours = scores(Y_test, P, thresholds)
    clear = np.abs(P - thresholds) > 1e-5  # answers carry probabilities to 6 decimals
    assert (said == (thresholds <= P))[clear].all(), "the API's present flags disagree with its thresholds"

    X_train, X_test = _features(train_pictures), _features(test_pictures)
    baselines = {
        name: scores(Y_test, probes(X_train, Y_train, X_test, standardise), np.full(len(LABELS), 0.5))
        for name, standardise in (("probe_raw", False), ("probe_standardised", True))
    }
    best_probe = max(b["mean_average_precision"] for b in baselines.values())
    result = {
        "seed": args.seed,
        "train_cards": args.train,
        "test_cards": args.test,
        "site_map": round(ours["mean_average_precision"], 4),
        "site_macro_f1": round(ours["macro_f1"], 4),
        "site_exact_match": round(ours["exact_match"], 4),
        "site_map_on_its_own_test_split": round(version["metrics"]["mean_average_precision"], 4),
        **{f"{name}_map": round(b["mean_average_precision"], 4) for name, b in baselines.items()},
        "upload_seconds": round(uploaded, 1),
        "train_seconds": round(trained, 1),
        "target_met": ours["mean_average_precision"] >= best_probe,
    }
    report("multilabel_api", result)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
