"""Exports of a model version: each format converted, checked against the version's answers, bundled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from classifier.errors import ExportError
from classifier.exporting import FORMATS, export_version
from classifier.exporting.bundle import INFO_FILE, PIXELS_FILE, PREDICT_FILE
from classifier.exporting.formats import get
from classifier.exporting.parity import coreml_spec_problem
from classifier.predict import Predictor

ROOT = Path(__file__).resolve().parents[2]


def toy_pictures(toy_data: Path) -> list[Path]:
    return sorted(toy_data.glob("*/*.jpg"))


@pytest.fixture(scope="module")
def exports(trained, toy_data, tmp_path_factory):
    """Every format exported once from the trained toy version (the conversions take seconds each)."""
    out = tmp_path_factory.mktemp("exports")
    return {
        name: export_version(trained.path, name, out / name, check=toy_pictures(toy_data), version="toy v1")
        for name in FORMATS
    }


def test_the_served_graph_carries_no_weight_that_no_node_reads(trained):
    model = onnx.load(str(trained.path / "model.onnx"))
    read = {name for node in model.graph.node for name in node.input}
    assert [init.name for init in model.graph.initializer if init.name not in read] == []


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_answers_as_the_version_does(exports, name):
    result = exports[name]
    fmt = FORMATS[name]
    assert result.parity.passed
    assert result.parity.pictures == 16
    assert result.parity.top_agreement >= 0.99
    assert result.parity.max_difference <= fmt.tolerance
    for file in result.files:
        assert (result.directory / file).exists(), file
    info = json.loads((result.directory / INFO_FILE).read_text())
    assert info["format"] == name and info["labels"] == ["blue", "red"]
    assert info["parity"]["passed"] and info["version"] == "toy v1"
    assert (result.directory / PIXELS_FILE).read_text() == (ROOT / "classifier" / "pixels.py").read_text()
    assert "## Input" in (result.directory / "README.md").read_text()


def test_the_exact_formats_agree_with_the_site_to_rounding(exports):
    assert exports["onnx"].parity.max_difference <= 1e-4
    assert exports["openvino"].parity.max_difference <= 1e-4
    assert exports["tflite"].parity.max_difference <= 1e-4  # allowed 0.01; measured far below


def test_predict_py_in_an_export_gives_the_sites_answers_without_pinhole(
    exports, trained, toy_data, tmp_path
):
    """The bundle's predict.py, run as a person would, in a process that cannot import Pinhole."""
    pictures = toy_pictures(toy_data)[:3]
    site = Predictor(trained.path, precision="fp32").predict_proba(pictures)
    for name in ("onnx", "openvino", "tflite"):
        directory = exports[name].directory
        env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
        # -S: no site-packages .pth files, so the editable install of Pinhole is out of reach; the
        # runtimes' own directories come back through PYTHONPATH.
        paths = [p for p in sys.path if p.endswith("site-packages")]
        out = subprocess.run(
            [sys.executable, "-S", PREDICT_FILE, *map(str, pictures)],
            cwd=directory,
            env={**env, "PYTHONPATH": ":".join(paths)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        answers = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        got = np.array(
            [[t["probability"] for t in sorted(a["top"], key=lambda t: t["label"])] for a in answers]
        )
        assert np.abs(got - site).max() <= FORMATS[name].tolerance, name


def test_the_pixels_an_outside_program_prepares_are_the_sites(trained, toy_data, hymenoptera):
    """An outside ONNX Runtime consumer with pinhole_pixels agrees exactly; one that resizes the whole
    picture and then crops (what most tutorials do) does not, which is why the file ships."""
    import onnxruntime as ort
    from PIL import Image

    from classifier import pixels

    pictures = sorted((hymenoptera / "val").glob("*/*.jpg"))[::5]
    prep = json.loads((trained.path / "manifest.json").read_text())["preprocessing"]
    session = ort.InferenceSession(str(trained.path / "model.onnx"), providers=["CPUExecutionProvider"])
    outside = np.concatenate(
        [session.run(["probabilities"], {"images": pixels.load(p, prep)})[0] for p in pictures]
    )
    site = Predictor(trained.path, precision="fp32").predict_proba(pictures)
    assert np.abs(outside - site).max() <= 1e-6

    def tutorial(path):
        image = Image.open(path).convert("RGB")
        (w, h), (left, top) = pixels.resize_crop_box(*image.size, prep["resize"], prep["crop"])
        image = image.resize((w, h), pixels.RESAMPLING[prep["interpolation"]])
        image = image.crop((left, top, left + prep["crop"], top + prep["crop"]))
        array = (np.asarray(image, np.float32) / 255 - prep["mean"]) / prep["std"]
        return array.transpose(2, 0, 1)[None].astype(np.float32)

    naive = np.concatenate([session.run(["probabilities"], {"images": tutorial(p)})[0] for p in pictures])
    assert np.abs(naive - site).max() > 1e-6


def test_an_export_whose_answers_differ_is_refused_and_leaves_nothing(
    trained, toy_data, tmp_path, monkeypatch
):
    """A planted fault: the converter writes a graph whose head leans 0.5 towards one label."""
    from onnx import numpy_helper

    from classifier.exporting import convert

    def faulty(source, out, fmt, info):
        model = onnx.load(str(source))
        for init in model.graph.initializer:
            if init.name == "pinhole_head_bias":
                init.CopyFrom(
                    numpy_helper.from_array(numpy_helper.to_array(init) + np.float32([0.5, 0.0]), init.name)
                )
        onnx.save(model, str(out / fmt.model_file))
        return [fmt.model_file]

    monkeypatch.setitem(convert.CONVERTERS, "onnx", faulty)
    with pytest.raises(ExportError, match="does not answer as the version does"):
        export_version(trained.path, "onnx", tmp_path / "out", check=toy_pictures(toy_data))
    assert list(tmp_path.iterdir()) == []


def test_without_pictures_the_check_uses_fixed_photos(trained, tmp_path):
    result = export_version(trained.path, "onnx", tmp_path / "onnx")
    assert result.parity.pictures == 64 and result.parity.passed


def test_unknown_and_unavailable_formats_say_why():
    with pytest.raises(ValueError, match="use one of onnx, onnx-int8, openvino, tflite, coreml"):
        get("keras")
    with pytest.raises(ValueError, match="onnxruntime-web"):
        get("tfjs")


def test_an_existing_target_is_never_overwritten(trained, tmp_path):
    (tmp_path / "onnx").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_version(trained.path, "onnx", tmp_path / "onnx")


def test_the_core_ml_specification_is_checked(exports):
    package = exports["coreml"].directory / "model.mlpackage"
    assert coreml_spec_problem(package, 224, ["blue", "red"]) == ""
    assert "lacks the labels" in coreml_spec_problem(package, 224, ["blue", "green"])
    assert "not images [1, 3, 260, 260]" in coreml_spec_problem(package, 260, ["blue", "red"])


def test_the_cli_exports_and_prints_one_json_line(trained, toy_data, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "classifier", "export", str(trained.path), "--format", "openvino",
         "--out", str(tmp_path / "ov"), "--check", str(toy_data)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    [line] = [line for line in out.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(line)
    assert answer["format"] == "openvino" and answer["parity"]["passed"]
    assert {"model.xml", "model.bin", "predict.py", "README.md"} <= set(answer["files"])
    bad = subprocess.run(
        [sys.executable, "-m", "classifier", "export", str(trained.path), "--format", "tfjs", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and "onnxruntime-web" in bad.stderr


def test_the_browser_graphs_none_of_these_is_the_detectors(trained, make_toy_image):
    """The detector written as ONNX operators gives the NumPy detector's scores and verdicts."""
    from classifier.exporting.browser import browser_graph
    from classifier.predict import Predictor, preprocess_batch

    predictor = Predictor(trained.path, precision="fp32")
    pictures = [make_toy_image("red", 91), make_toy_image("blue", 92), make_toy_image("red", 93)]
    import io

    import onnxruntime as ort
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    pictures.append(buffer.getvalue())
    batch = preprocess_batch(pictures, predictor.preprocessing)
    graph = browser_graph(trained.path, trained.path.parent / "browser-cache")
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    probabilities, score, unknown = session.run(None, {"images": batch})
    expected_p, features = predictor.session.run(["probabilities", "features"], {"images": batch})
    expected = predictor.detector.score(features)
    assert np.abs(probabilities - expected_p).max() < 1e-6
    assert np.abs(score[:, 0] - expected).max() < 1e-5
    assert (unknown[:, 0] > 0.5).tolist() == predictor.detector.unknown_at(expected).tolist()
    assert graph == browser_graph(trained.path, trained.path.parent / "browser-cache")  # built once
