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


def test_it_trains_and_prints_the_metrics_as_the_last_json_line(toy_data, model_cache, tmp_path):
    out = cli("train", toy_data, "--out", tmp_path / "m", "--strategy", "linear", cache=model_cache)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("accuracy", "balanced_accuracy", "labels", "confusion_matrix", "per_class", "n_train",
                "n_val", "backbone", "strategy", "device", "timings"):  # fmt: skip
        assert key in result, key
    assert set(result["timings"]) >= {"extract_s", "fit_s", "total_s", "images_per_s"}
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
    assert json.loads(evaluated.stdout)["accuracy"] >= 0.9


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


def test_it_refuses_to_overwrite_a_model(toy_data, trained, model_cache):
    out = cli("train", toy_data, "--out", trained.path, cache=model_cache, timeout=60)
    assert out.returncode == 2 and "already exists" in out.stderr
