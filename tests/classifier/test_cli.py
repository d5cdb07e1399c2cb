"""python -m classifier: JSON on stdout, messages (never tracebacks) and exit codes for mistakes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli(*args, cache: Path, timeout: int = 240):
    env = dict(os.environ, PINHOLE_MODEL_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "classifier", *map(str, args)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# The keys the CLI contract promises for `train`, and for `evaluate` ("the same metric keys").
METRIC_KEYS = (
    "accuracy", "balanced_accuracy", "labels", "confusion_matrix", "per_class", "n_train", "n_val",
    "backbone", "strategy", "device", "timings",
)  # fmt: skip
TIMING_KEYS = {"extract_s", "fit_s", "total_s", "images_per_s"}


def last_json(out) -> dict:
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_it_trains_and_prints_the_metrics_as_the_last_json_line(toy_data, model_cache, tmp_path):
    out = cli("train", toy_data, "--out", tmp_path / "m", "--strategy", "linear", cache=model_cache)
    assert out.returncode == 0, out.stderr
    result = last_json(out)
    for key in METRIC_KEYS:
        assert key in result, key
    assert set(result["timings"]) >= TIMING_KEYS
    assert result["labels"] == ["blue", "red"]
    assert "Traceback" not in out.stderr

    predicted = cli(
        "predict", tmp_path / "m", toy_data / "red" / "red0.jpg", "--top-k", "2", cache=model_cache
    )
    assert predicted.returncode == 0, predicted.stderr
    [line] = [json.loads(x) for x in predicted.stdout.splitlines()]
    assert line["label"] == "red" and line["path"].endswith("red0.jpg")
    assert {"probability", "top", "unknown"} <= set(line)

    evaluated = cli("evaluate", tmp_path / "m", toy_data, cache=model_cache)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = last_json(evaluated)
    assert metrics["accuracy"] >= 0.9
    # evaluate reports under the same keys as train, the model's own facts included.
    assert set(result) - set(metrics) <= {"mislabeled", "near_duplicates"}, set(result) - set(metrics)
    assert set(metrics["timings"]) >= TIMING_KEYS
    assert metrics["n_val"] == 16 and metrics["n_train"] == result["n_train"]
    assert metrics["labels"] == result["labels"] and metrics["backbone"] == result["backbone"]
    assert metrics["strategy"] == "linear" and metrics["strategy_reason"] == result["strategy_reason"]
    assert metrics["model_dir"] == str(tmp_path / "m") and metrics["skipped"] == 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "is not a folder"),
        ("one_label", "at least two"),
        ("no_subfolders", "no sub-folders"),
    ],
)
def test_it_explains_a_mistake_without_a_traceback(tmp_path, model_cache, setup, message):
    data = tmp_path / "data"
    if setup == "one_label":
        (data / "only").mkdir(parents=True)
        (data / "only" / "a.jpg").write_bytes(b"x")
    elif setup == "no_subfolders":
        data.mkdir()
    out = cli("train", data, "--out", tmp_path / "m", cache=model_cache, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_it_skips_an_unreadable_image_and_reports_it(toy_data, model_cache, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    (data / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    out = cli("train", data, "--out", tmp_path / "m", "--strategy", "linear", cache=model_cache)
    assert out.returncode == 0, out.stderr
    assert "skipped" in out.stderr and "broken.jpg" in out.stderr


def test_it_reports_a_missing_image_to_predict(toy_data, trained, model_cache, tmp_path):
    out = cli("predict", trained.path, tmp_path / "nope.jpg", cache=model_cache)
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"] == "no such file"
    assert f"error: {tmp_path / 'nope.jpg'}: no such file" in out.stderr


def test_it_refuses_to_overwrite_a_model(toy_data, trained, model_cache):
    out = cli("train", toy_data, "--out", trained.path, cache=model_cache, timeout=60)
    assert out.returncode == 2 and "already exists" in out.stderr


def test_evaluate_skips_an_unreadable_image_and_reports_it(toy_data, trained, model_cache, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    (data / "blue" / "notes.txt").write_text("not a picture")
    out = cli("evaluate", trained.path, data, cache=model_cache)
    assert out.returncode == 0, out.stderr
    metrics = last_json(out)
    assert metrics["skipped"] == 1 and metrics["n_val"] == 16
    assert "skipped" in out.stderr and "notes.txt" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("missing", "does not exist"),
        ("not_a_model", "no manifest.json"),
        ("tampered", "fails its checksum"),
    ],
)
def test_evaluate_refuses_a_bad_model_dir_without_a_traceback(
    toy_data, trained, model_cache, tmp_path, model, message
):
    import shutil

    path = tmp_path / "model"
    if model == "not_a_model":
        path = toy_data
    elif model == "tampered":
        shutil.copytree(trained.path, path)
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["labels"] = list(reversed(manifest["labels"]))
        (path / "manifest.json").write_text(json.dumps(manifest))
    out = cli("evaluate", path, toy_data, cache=model_cache, timeout=60)
    assert out.returncode != 0
    assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_evaluate_refuses_labels_the_model_does_not_know(toy_data, trained, model_cache, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    (data / "green").mkdir()
    shutil.copy(toy_data / "red" / "red0.jpg", data / "green" / "g.jpg")
    out = cli("evaluate", trained.path, data, cache=model_cache, timeout=60)
    assert out.returncode == 2
    assert "does not know: green" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_predict_reports_an_unreadable_image_and_answers_the_others(toy_data, trained, model_cache, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    out = cli("predict", trained.path, broken, toy_data / "red" / "red1.jpg", cache=model_cache, timeout=60)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and f"error: {broken}: image is incomplete" in out.stderr
    bad, good = [json.loads(x) for x in out.stdout.splitlines()]
    assert bad["path"] == str(broken) and "image is incomplete" in bad["error"]
    assert good["label"] == "red" and "error" not in good


def test_bench_skips_files_that_are_not_images_and_reports_them(make_toy_image, model_cache, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # Named to sort first, so the skipped files are met before --limit is reached.
    (data / "0-notes.txt").write_text("not a picture")
    (data / "1-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    for i, colour in enumerate(["red", "blue", "red", "blue"]):
        (data / f"img{i}.jpg").write_bytes(make_toy_image(colour, 50 + i))
    out = cli("bench", data, "--limit", "3", "--eager-limit", "2", cache=model_cache)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    result = last_json(out)
    for key in ("backbone", "n_fast", "fast_images_per_s", "n_eager", "eager_images_per_s",
                "fast_images_per_s_same_images", "ratio", "model_only_images_per_s",
                "end_to_end_share_of_model_only", "n_skipped", "skipped"):  # fmt: skip
        assert key in result, key
    assert result["n_fast"] == 3 and result["n_eager"] == 2
    assert result["fast_images_per_s"] > 0 and result["eager_images_per_s"] > 0 and result["ratio"] > 0
    assert result["n_skipped"] == 2
    assert [Path(item["path"]).name for item in result["skipped"]] == ["0-notes.txt", "1-broken.jpg"]
    assert all(item["error"] for item in result["skipped"])
    assert "skipped" in out.stderr and "0-notes.txt" in out.stderr


def test_bench_explains_a_folder_without_images(model_cache, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("not a picture")
    out = cli("bench", tmp_path / "data", cache=model_cache, timeout=120)
    assert out.returncode == 1
    assert "none of the files is a readable image" in out.stderr and "Traceback" not in out.stderr
    missing = cli("bench", tmp_path / "nope", cache=model_cache, timeout=60)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_it_audits_a_folder_and_names_what_to_fix(make_toy_image, model_cache, tmp_path):
    import io

    from PIL import Image

    data = tmp_path / "data"
    for colour in ("red", "blue"):
        (data / colour).mkdir(parents=True)
        for i in range(12):
            (data / colour / f"{colour}{i}.jpg").write_bytes(make_toy_image(colour, seed=i))
    # A red picture filed under blue, and an edited copy (90 % size, JPEG quality 80) of another.
    (data / "blue" / "planted-red.jpg").write_bytes(make_toy_image("red", seed=99))
    original = Image.open(data / "red" / "red3.jpg")
    buffer = io.BytesIO()
    original.resize((int(original.width * 0.9), int(original.height * 0.9))).save(buffer, "JPEG", quality=80)
    (data / "red" / "red3-copy.jpg").write_bytes(buffer.getvalue())
    (data / "red" / "notes.jpg").write_bytes(b"not a picture")

    out = cli("audit", data, "--cache", tmp_path / "features", cache=model_cache)
    assert out.returncode == 0, out.stderr
    result = last_json(out)
    assert set(result) == {"mislabeled", "near_duplicates", "outliers", "unreadable", "counts"}
    flagged = {m["path"]: m for m in result["mislabeled"]}
    assert flagged["blue/planted-red.jpg"]["label"] == "blue"
    assert flagged["blue/planted-red.jpg"]["suggested"] == "red"
    assert 0.5 < flagged["blue/planted-red.jpg"]["confidence"] <= 1
    assert ["red/red3-copy.jpg", "red/red3.jpg"] in [sorted(d["paths"]) for d in result["near_duplicates"]]
    assert [u["path"] for u in result["unreadable"]] == ["red/notes.jpg"]
    assert all(set(o) == {"path", "label", "score"} for o in result["outliers"])
    assert result["counts"]["images"] == 27 and result["counts"]["checked"] == 26
    assert result["counts"]["mislabeled"] == len(result["mislabeled"])
