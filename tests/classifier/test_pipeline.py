"""train_model: from labelled images to a checked artifact, evaluated honestly."""

import json

import numpy as np
import pytest

from classifier.artifacts import verify_artifact
from classifier.errors import Cancelled, TrainingError
from classifier.features import MemoryCache
from classifier.pipeline import Sample, train_model


def test_it_writes_a_checked_artifact_with_metrics(trained):
    manifest = verify_artifact(trained.path)
    assert manifest["labels"] == ["blue", "red"]
    assert manifest["backbone"]["name"] == "efficientnet_lite0"
    assert {p.name for p in trained.path.iterdir()} >= {"manifest.json", "head.safetensors", "model.onnx"}
    metrics = trained.metrics
    for key in ("accuracy", "balanced_accuracy", "confusion_matrix", "per_class", "ece", "timings"):
        assert key in metrics
    assert metrics["accuracy"] >= 0.9
    assert metrics["strategy"] == "linear" and metrics["n_train"] == 16
    json.dumps(metrics)  # the site stores it as JSON


def test_it_never_extracts_an_image_twice(trained, toy_data, samples_of, tmp_path):
    again = train_model(samples_of(toy_data), tmp_path / "v2", strategy="linear", cache=trained.cache)
    assert again.metrics["timings"]["n_extracted"] == 0
    assert again.metrics["timings"]["n_cached"] == 16


def test_it_evaluates_on_a_given_frozen_test_split(toy_data, samples_of, model_cache, tmp_path):
    samples = samples_of(toy_data)
    for i, sample in enumerate(samples):
        sample.split = "test" if i % 4 == 0 else "train"
    outcome = train_model(samples, tmp_path / "v", strategy="linear", holdout="given", cache=MemoryCache())
    # Scored by a model trained on the 12 others; the model that ships then learns from all 16.
    assert outcome.metrics["n_val"] == 4 and outcome.metrics["n_train"] == 16
    assert {s.key for s in outcome.test_samples} == {s.key for s in samples if s.split == "test"}
    assert "frozen test split" in outcome.metrics["evaluation"]
    recorded = outcome.metrics["test_predictions"]
    assert [row["key"] for row in recorded] == [s.key for s in samples if s.split == "test"]
    assert all(row["predicted"] in ("blue", "red") and 0 <= row["confidence"] <= 1 for row in recorded)


def test_it_skips_unreadable_images_and_says_why(toy_data, samples_of, model_cache, tmp_path):
    samples = samples_of(toy_data) + [Sample(key="f" * 64, source=b"not an image at all", label="red")]
    outcome = train_model(samples, tmp_path / "v", strategy="linear", cache=MemoryCache())
    [skipped] = outcome.metrics["skipped"]
    assert skipped["key"] == "f" * 64 and "not an image" in skipped["error"]


def test_it_refuses_a_label_with_one_image(make_toy_image, model_cache, tmp_path):
    samples = [Sample(key=f"{i:064x}", source=make_toy_image("red", i), label="red") for i in range(3)]
    samples.append(Sample(key="e" * 64, source=make_toy_image("blue", 0), label="blue"))
    with pytest.raises(TrainingError, match="blue"):
        train_model(samples, tmp_path / "v", strategy="linear", cache=MemoryCache())
    assert not (tmp_path / "v").exists()


def test_it_stops_when_the_progress_callback_cancels(toy_data, samples_of, model_cache, tmp_path):
    def cancel(fraction, message):
        if fraction > 0.3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        train_model(samples_of(toy_data), tmp_path / "v", strategy="linear", on_progress=cancel)
    assert not (tmp_path / "v").exists()


def test_it_reports_monotonic_progress_up_to_done(toy_data, samples_of, model_cache, tmp_path):
    seen = []
    train_model(
        samples_of(toy_data), tmp_path / "v", strategy="linear", cache=MemoryCache(),
        on_progress=lambda f, m: seen.append((f, m)),
    )  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] >= 0.97
    assert any(m.startswith("extracting") for _, m in seen)


@pytest.mark.slow
def test_it_adapts_the_last_blocks_with_the_partial_strategy(toy_data, samples_of, model_cache, tmp_path):
    outcome = train_model(samples_of(toy_data), tmp_path / "v", strategy="partial", cache=MemoryCache())
    assert outcome.metrics["strategy"] == "partial"
    assert (outcome.path / "tail.safetensors").is_file()
    assert outcome.metrics["accuracy"] >= 0.8


@pytest.mark.slow
def test_it_reaches_high_accuracy_on_real_photos(hymenoptera, model_cache, tmp_path):
    from classifier.features import sha256_of

    def folder(split):
        return [
            Sample(key=sha256_of(p.read_bytes()), source=p, label=p.parent.name)
            for p in sorted((hymenoptera / split).glob("*/*"))
        ]

    outcome = train_model(folder("train"), tmp_path / "v", val_samples=folder("val"), cache=MemoryCache())
    assert outcome.metrics["n_val"] == 153
    assert outcome.metrics["accuracy"] >= 0.93
    assert np.array(outcome.metrics["confusion_matrix"]).sum() == 153
