"""A multi-label model version end to end on the real default backbone: pictures with red blobs, blue
stripes, both or neither; two labels planted wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.cache import MemoryCache
from classifier.data import Sample
from classifier.errors import TrainingError
from classifier.features import sha256_of
from classifier.multilabel_train import train_multilabel
from classifier.predict import Predictor
from tests.helpers import shapes as picture


def cards(n: int = 40) -> list[Sample]:
    samples = []
    for i in range(n):
        red, blue = bool(i % 2), bool((i // 2) % 2)
        data = picture(red, blue, i)
        labels = tuple(name for name, on in (("red", red), ("blue", blue)) if on)
        split = "test" if i % 5 == 0 else "train"
        samples.append(Sample(key=sha256_of(data), source=data, label="", split=split, labels=labels))
    return samples


@pytest.fixture(scope="module")
def trained(model_cache, tmp_path_factory):
    samples = cards()
    samples[3] = Sample(samples[3].key, samples[3].source, "", "train", ("blue",))  # red left out
    samples[6] = Sample(samples[6].key, samples[6].source, "", "train", ("red", "blue"))  # red wrongly given
    return train_multilabel(
        samples, tmp_path_factory.mktemp("ml") / "v1", labels=["red", "blue"], cache=MemoryCache()
    )


def test_it_writes_a_multi_label_artifact_scored_per_label(trained):
    manifest = json.loads((trained.path / "manifest.json").read_text())
    assert manifest["task_type"] == "multi_label"
    assert set(manifest["thresholds"]) == {"red", "blue"}
    metrics = trained.metrics
    assert metrics["evaluation_kind"] == "frozen_test" and metrics["n"] == 8
    assert [row["label"] for row in metrics["per_label"]] == ["red", "blue"]
    assert metrics["mean_average_precision"] >= 0.9
    answer = metrics["test_predictions"][0]
    assert set(answer) == {"key", "labels", "probabilities"} and len(answer["probabilities"]) == 2
    json.dumps(metrics)  # stored as JSON by the site


def test_it_finds_the_planted_wrong_labels(trained):
    flagged = {(f["index"], f["label"], f["given"]) for f in trained.metrics["mislabeled"]}
    assert (3, "red", "absent") in flagged and (6, "red", "present") in flagged
    assert len(flagged) <= 4


def test_the_served_graph_answers_each_label_on_its_own(trained):
    predictor = Predictor(trained.path)
    assert predictor.multi_label
    answers = predictor.predict([picture(r, b, 1000 + 2 * r + b) for r in (0, 1) for b in (0, 1)])
    assert [sorted(a.present) for a in answers] == [[], ["blue"], ["red"], ["blue", "red"]]
    first = answers[3].to_dict()
    assert [row["label"] for row in first["labels"]] == ["red", "blue"]
    assert all(row["present"] for row in first["labels"])
    # A threshold the site serves instead of the trained one.
    [strict] = predictor.predict([picture(1, 1, 1003)], thresholds={"red": 1.0})
    assert strict.present == ["blue"]
    probabilities = np.array([p for _name, p, _present in answers[0].labels])
    assert not np.isclose(probabilities.sum(), 1.0)


def test_a_multi_label_answer_can_be_explained(trained):
    predictor = Predictor(trained.path)
    explanation = predictor.explain(picture(1, 0, 2000), label_index=0)
    assert explanation.heat.max() > 0


def test_it_refuses_what_it_cannot_train(model_cache, tmp_path):
    samples = cards(12)
    with pytest.raises(TrainingError, match="linear heads only"):
        train_multilabel(samples, tmp_path / "a", labels=["red", "blue"], strategy="full")
    with pytest.raises(TrainingError, match="not among"):
        train_multilabel(samples, tmp_path / "b", labels=["red"])
    few = [s for s in samples if "red" not in s.labels] + [s for s in samples if "red" in s.labels][:1]
    with pytest.raises(TrainingError, match="'red' has 1 with it"):
        train_multilabel(few, tmp_path / "c", labels=["red", "blue"])


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "coreml"])
def test_a_multi_label_version_exports_with_its_thresholds(trained, fmt, tmp_path):
    """Each label's own probability survives the conversion, and the export says where each label
    counts as present."""
    from classifier.exporting import export_version
    from classifier.exporting.standalone import Model

    pictures = [picture(r, b, 2000 + 2 * r + b) for r in (0, 1) for b in (0, 1)]
    result = export_version(trained.path, fmt, tmp_path / fmt, check=pictures)
    assert result.parity.passed and result.parity.max_difference < 1e-4
    info = json.loads((result.directory / "pinhole.json").read_text())
    assert info["task_type"] == "multi_label" and info["output"]["activation"] == "sigmoid"
    assert set(info["thresholds"]) == {"red", "blue"}
    assert "threshold" in (result.directory / "README.md").read_text()
    if fmt != "coreml":  # Core ML cannot run on Linux; its program is checked instead
        import io

        answer = Model(result.directory).predict(io.BytesIO(pictures[3]))
        assert {row["label"] for row in answer["labels"] if row["present"]} == {"red", "blue"}
