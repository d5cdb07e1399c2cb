"""Heatmaps: the class activation map adds up to the model's own scores and points at planted evidence."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy.special import softmax

from classifier.artifacts import write_artifact
from classifier.explain import Explainer
from classifier.heads import LinearHead
from classifier.predict import Predictor
from classifier.preprocessing import Preprocessing


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _planted(corner: tuple[int, int], size: int = 240) -> bytes:
    """A grey picture with one blue-striped patch (the toy model's "blue") in one quadrant."""
    image = Image.new("RGB", (size, size), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    left, top = corner[0] * size // 2, corner[1] * size // 2
    for y in range(top + 10, top + size // 2 - 10, 12):
        draw.rectangle([left + 10, y, left + size // 2 - 10, y + 6], fill=(40, 60, 200))
    return _png(image)


def test_the_map_adds_up_to_the_models_own_answer(trained):
    predictor = Predictor(trained.path, precision="fp32")
    for picture in (_planted((0, 0)), _planted((1, 1))):
        explanation = predictor.explain(picture)
        probabilities = predictor.predict_proba([picture])[0]
        # Pooling and the head are linear: the per-place contributions rebuild the scores exactly.
        assert np.allclose(softmax(explanation.logits), probabilities, atol=1e-5)
        assert explanation.label_index == int(np.argmax(probabilities))
        crop = predictor.preprocessing.crop
        assert explanation.heat.shape == (crop, crop)
        assert explanation.heat.min() >= 0 and explanation.heat.max() == pytest.approx(1.0)
        assert 0.0 < explanation.coverage <= 1.0
        # Drawn on the photo itself (240 x 240 here), not on the square the network was given.
        assert Image.open(io.BytesIO(explanation.overlay_jpeg)).size == (240, 240)


def test_the_overlay_keeps_the_photos_shape_and_greys_what_the_network_does_not_see():
    from classifier.explain import _overlay
    from classifier.preprocessing import frame_box

    wide = Image.new("RGB", (960, 480), (200, 200, 200))
    heat = np.zeros((224, 224))
    heat[:, 112:] = 1.0  # all the evidence in the right half of the square
    prep = Preprocessing(resize=256, crop=224, mean=(0.5,) * 3, std=(0.5,) * 3, framing="crop")
    box = frame_box(960, 480, prep)  # the centre 420 x 420 (224 of the 256 the short side becomes)
    assert box == pytest.approx((270, 30, 690, 450), abs=1)
    pixels = np.asarray(Image.open(io.BytesIO(_overlay(wide, heat, box))).convert("L"), dtype=float)
    assert pixels.shape == (240, 480)  # the photo's own shape, at most 480 a side
    outside, cold, hot = (
        pixels[:, :120].mean(),
        pixels[20:220, 150:230].mean(),
        pixels[20:220, 250:340].mean(),
    )
    assert outside < cold < hot, (outside, cold, hot)
    full = Preprocessing(resize=224, crop=224, mean=(0.5,) * 3, std=(0.5,) * 3, framing="full")
    assert frame_box(960, 480, full) == (0, 0, 960, 480)


@pytest.mark.parametrize("corner", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_the_heat_lies_where_the_evidence_was_planted(trained, corner):
    predictor = Predictor(trained.path, precision="fp32")
    blue = predictor.labels.index("blue")
    explanation = predictor.explain(_planted(corner), label_index=blue)
    heat = explanation.heat
    half = heat.shape[0] // 2
    quadrants = {
        (x, y): float(heat[y * half : (y + 1) * half, x * half : (x + 1) * half].sum())
        for x in (0, 1)
        for y in (0, 1)
    }
    assert max(quadrants, key=quadrants.get) == corner, quadrants
    assert quadrants[corner] > 0.5 * sum(quadrants.values()), quadrants


def test_it_traces_a_head_that_reads_earlier_blocks_and_cuts_a_wider_vector(tmp_path):
    """Last layer pooled, an earlier block pooled by ReduceMean, then extra columns the head never
    reads (sliced off): the map covers both pooled maps and still adds up exactly."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(6, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(4, 6, 3, 3)).astype(np.float32)
    X = rng.normal(size=(40, 10))
    y = (X[:, 0] + X[:, 7] > 0).astype(int)
    head = LinearHead(C=1.0, random_state=0).fit(X, y)
    W, b = head.as_affine()
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["early"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["early"], ["early_relu"]),
        helper.make_node("Conv", ["early_relu", "w2"], ["late"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["late"], ["late_pool"]),
        helper.make_node("Flatten", ["late_pool"], ["last"]),
        helper.make_node("ReduceMean", ["early_relu"], ["tap"], axes=[2, 3], keepdims=0),
        helper.make_node("Concat", ["last", "tap", "extra"], ["depths"], axis=1),
        helper.make_node("Slice", ["depths", "from", "to", "axis"], ["features"]),
        helper.make_node("LpNormalization", ["features"], ["unit"], axis=1, p=2),
        helper.make_node("Gemm", ["unit", "W", "b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(np.ones((1, 5), np.float32), "extra"),
        numpy_helper.from_array(np.array([0], np.int64), "from"),
        numpy_helper.from_array(np.array([10], np.int64), "to"),
        numpy_helper.from_array(np.array([1], np.int64), "axis"),
        numpy_helper.from_array(W.astype(np.float32), "W"),
        numpy_helper.from_array(b.astype(np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 10]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = write_artifact(
        tmp_path / "v",
        manifest={"labels": ["no", "yes"], "backbone": {"name": "toy"}, "metrics": {}},
        arrays=head.to_arrays(),
        files={"model.onnx": model.SerializeToString()},
    )
    prep = Preprocessing(resize=16, crop=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    explainer = Explainer(path, prep)
    assert [(s.tensor, s.pooled) for s in explainer.segments][:2] == [("late", True), ("early_relu", True)]
    picture = Image.fromarray(rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8))
    explanation = explainer.explain(picture)
    tensor = ((np.asarray(picture, np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    probabilities = explainer.session.run(["probabilities"], {"input": tensor})[0][0]
    assert np.allclose(softmax(explanation.logits), probabilities, atol=1e-5)
    assert explanation.coverage == pytest.approx(1.0)
