"""Predictor: loads an artifact once, answers through ONNX Runtime like the torch model, refuses bad files."""

import io
import shutil

import numpy as np
import pytest

from classifier.artifacts import load_arrays
from classifier.errors import ArtifactError, InvalidImage
from classifier.heads import LinearHead
from classifier.predict import Predictor, preprocess_batch


def test_it_predicts_the_right_label_with_calibrated_top_k(trained, make_toy_image):
    predictor = Predictor(trained.path)
    red, blue = predictor.predict([make_toy_image("red", 100), make_toy_image("blue", 100)], top_k=5)
    assert red.label == "red" and blue.label == "blue"
    assert [name for name, _ in red.top] == ["red", "blue"]  # top-k is capped at the label count
    assert sum(p for _, p in red.top) == pytest.approx(1.0, abs=1e-5)
    assert red.to_dict()["top"][0] == {"label": "red", "probability": red.probability}


def test_its_fp32_engine_agrees_with_the_torch_model_within_1e_4(trained, make_toy_image, model_cache):
    import torch

    from classifier.export import serving_module
    from classifier.features import Extractor
    from classifier.steps import taps_read

    images = [make_toy_image(c, 200 + i) for i, c in enumerate(["red", "blue", "red", "blue"])]
    head = LinearHead.from_arrays(load_arrays(trained.path))
    extractor = Extractor(trained.manifest["backbone"]["name"])
    # The head reads the last layer alone, or that and the earlier blocks' pooled outputs (and cells).
    taps, layout_taps = taps_read(trained.manifest["metrics"]["representation"], extractor.backbone)
    batch = torch.from_numpy(preprocess_batch(images, Predictor(trained.path).preprocessing))
    with torch.inference_mode():
        expected = serving_module(extractor.net, head, taps, layout_taps)(batch)[0].numpy()
    got = Predictor(trained.path, precision="fp32").predict_proba(images)
    assert np.abs(expected - got).max() < 1e-4


def test_it_scores_inputs_unlike_the_training_images_as_unknown(trained, make_toy_image):
    from PIL import Image, ImageDraw

    odd = Image.new("RGB", (120, 96), "white")
    draw = ImageDraw.Draw(odd)
    for x in range(0, 120, 12):
        draw.line([x, 0, 120 - x, 96], fill="black", width=3)
    buffer = io.BytesIO()
    odd.save(buffer, "PNG")
    familiar, strange = Predictor(trained.path).predict([make_toy_image("red", 300), buffer.getvalue()])
    assert strange.unknown_score > familiar.unknown_score
    assert strange.unknown and not familiar.unknown


def test_it_calls_solid_colours_none_of_these_and_leaves_its_own_kind_alone(trained, make_toy_image):
    from PIL import Image

    solids = []
    for colour in ("red", "blue", "green", "white", "black", "gray", (30, 60, 220), (200, 40, 40)):
        buffer = io.BytesIO()
        Image.new("RGB", (120, 96), colour).save(buffer, "PNG")
        solids.append(buffer.getvalue())
    own_kind = [make_toy_image(c, 500 + i) for i in range(10) for c in ("red", "blue")]
    predictor = Predictor(trained.path)
    # Even a flat red or blue, the colours of the labels themselves, is no picture of either kind.
    assert all(p.unknown for p in predictor.predict(solids))
    assert sum(p.unknown for p in predictor.predict(own_kind)) <= 2  # about 5 % by design


def test_it_raises_a_typed_error_for_a_bad_image(trained):
    with pytest.raises(InvalidImage, match="not an image"):
        Predictor(trained.path).predict([b"garbage bytes"])


@pytest.mark.parametrize("damage", ["truncate_onnx", "tamper_head", "drop_manifest", "future_format"])
def test_it_refuses_a_damaged_artifact(trained, tmp_path, damage):
    import json

    broken = tmp_path / "broken"
    shutil.copytree(trained.path, broken)
    if damage == "truncate_onnx":
        data = (broken / "model.onnx").read_bytes()
        (broken / "model.onnx").write_bytes(data[: len(data) // 2])
    elif damage == "tamper_head":
        data = bytearray((broken / "head.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (broken / "head.safetensors").write_bytes(bytes(data))
    elif damage == "drop_manifest":
        (broken / "manifest.json").unlink()
    else:
        manifest = json.loads((broken / "manifest.json").read_text())
        manifest["format_version"] = 99
        (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        Predictor(broken)


def test_it_predicts_in_a_process_that_never_imports_torch(trained, make_toy_image, tmp_path):
    """The web process serves predictions without torch: the artifact alone must be enough."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    image = tmp_path / "red.jpg"
    image.write_bytes(make_toy_image("red", 400))
    code = (
        "import json, sys\n"
        "from classifier.predict import Predictor\n"
        "predictor = Predictor(sys.argv[1])\n"
        "[by_path] = predictor.predict([sys.argv[2]], top_k=2)\n"
        "[by_bytes] = predictor.predict([open(sys.argv[2], 'rb').read()])\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'django') if m in sys.modules)\n"
        "print(json.dumps({'heavy': heavy, 'path': by_path.to_dict(), 'bytes': by_bytes.to_dict()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(trained.path), str(image)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["path"]["label"] == "red" and len(result["path"]["top"]) == 2
    assert result["bytes"]["probability"] == pytest.approx(result["path"]["probability"], abs=1e-6)
    [here] = Predictor(trained.path).predict([image])
    assert result["path"]["probability"] == pytest.approx(here.probability, abs=1e-5)
