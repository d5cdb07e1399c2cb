"""train_model: from labelled images to a checked artifact, evaluated honestly."""

import dataclasses
import json

import numpy as np
import pytest

from classifier.artifacts import verify_artifact
from classifier.backbones import BACKBONES
from classifier.cache import MemoryCache
from classifier.data import Sample
from classifier.errors import Cancelled, TrainingError
from classifier.pipeline import STAGES, train_model


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
    # Each image, and its mirror image where the mirrored view was chosen.
    assert again.metrics["timings"]["n_cached"] == (32 if again.metrics["views"] == "mirror" else 16)


def test_it_evaluates_on_a_given_frozen_test_split(toy_data, samples_of, model_cache, tmp_path):
    samples = samples_of(toy_data)
    for i, sample in enumerate(samples):
        sample.split = "test" if i % 4 == 0 else "train"
    outcome = train_model(samples, tmp_path / "v", strategy="linear", holdout="given", cache=MemoryCache())
    # Scored by a model trained on the 12 others; the model that ships then learns from all 16.
    assert outcome.metrics["n_val"] == 4 and outcome.metrics["n_train"] == 16
    assert {s.key for s in outcome.test_samples} == {s.key for s in samples if s.split == "test"}
    assert outcome.metrics["evaluation_kind"] == "frozen_test"
    recorded = outcome.metrics["test_predictions"]
    assert [row["key"] for row in recorded] == [s.key for s in samples if s.split == "test"]
    assert all(row["predicted"] in ("blue", "red") and 0 <= row["confidence"] <= 1 for row in recorded)
    assert [row["label"] for row in recorded] == [s.label for s in samples if s.split == "test"]
    assert "oof_predictions" not in outcome.metrics


def test_a_cross_validated_version_records_each_images_out_of_fold_answer(trained):
    """The answers that make the confusion matrix, so a cell can list its images later."""
    metrics = trained.metrics
    assert metrics["evaluation_kind"] == "cross_validation"  # 8 per label: too few to hold images out
    rows = metrics["oof_predictions"]
    assert len(rows) == metrics["n_train"] == 16
    labels = metrics["labels"]
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for row in rows:
        matrix[labels.index(row["label"]), labels.index(row["predicted"])] += 1
    assert matrix.tolist() == metrics["confusion_matrix"]


def test_it_skips_unreadable_images_and_says_why(toy_data, samples_of, model_cache, tmp_path):
    samples = samples_of(toy_data) + [Sample(key="f" * 64, source=b"not an image at all", label="red")]
    outcome = train_model(samples, tmp_path / "v", strategy="linear", cache=MemoryCache())
    [skipped] = outcome.metrics["skipped"]
    assert skipped["key"] == "f" * 64 and "not an image" in skipped["error"]


def test_a_picture_deleted_before_or_during_training_is_skipped_without_the_servers_path(
    toy_data, samples_of, model_cache, tmp_path
):
    gone = tmp_path / "secret-dir" / "gone.jpg"
    samples = [Sample(key="e" * 64, source=gone, label="red"), *samples_of(toy_data)]
    outcome = train_model(samples, tmp_path / "v", strategy="linear", cache=MemoryCache())
    [skipped] = outcome.metrics["skipped"]
    assert skipped["key"] == "e" * 64 and "file is gone" in skipped["error"]
    assert "secret-dir" not in skipped["error"]


def test_the_export_check_passes_over_pictures_deleted_meanwhile(toy_data, samples_of, tmp_path):
    from classifier.steps import _still_readable

    samples = [Sample(key="e" * 64, source=tmp_path / "gone.jpg", label="red"), *samples_of(toy_data)]
    checked, sources = _still_readable(samples, 3)
    assert [s.key for s in checked] == [s.key for s in samples[1:4]] and all(
        isinstance(b, bytes) for b in sources
    )


def test_it_refuses_a_label_with_one_image(make_toy_image, model_cache, tmp_path):
    samples = [Sample(key=f"{i:064x}", source=make_toy_image("red", i), label="red") for i in range(3)]
    samples.append(Sample(key="e" * 64, source=make_toy_image("blue", 0), label="blue"))
    with pytest.raises(TrainingError, match="blue"):
        train_model(samples, tmp_path / "v", strategy="linear", cache=MemoryCache())
    assert not (tmp_path / "v").exists()


def test_it_stops_when_the_progress_callback_cancels(toy_data, samples_of, model_cache, tmp_path):
    def cancel(report):
        if report.fraction > 0.3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        train_model(samples_of(toy_data), tmp_path / "v", strategy="linear", on_progress=cancel)
    assert not (tmp_path / "v").exists()


def test_it_reports_monotonic_progress_up_to_done(toy_data, samples_of, model_cache, tmp_path):
    seen = []
    train_model(
        samples_of(toy_data), tmp_path / "v", strategy="linear", cache=MemoryCache(), on_progress=seen.append
    )
    fractions = [r.fraction for r in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The probe that chooses the framing extracts first; the extraction step then finds it all cached.
    assert any(r.stage == "choose" and "extracting" in r.message for r in seen)
    assert any(r.stage == "extract" and r.message.endswith("feature vectors cached") for r in seen)
    stages = list(dict.fromkeys(r.stage for r in seen))
    assert stages == [s for s in STAGES if s in stages]  # in the planned order, each once


def test_it_moves_the_bar_through_the_mirrored_pass(toy_data, samples_of, model_cache, tmp_path):
    seen = []
    train_model(
        samples_of(toy_data), tmp_path / "v", strategy="linear", cache=MemoryCache(), on_progress=seen.append,
        views="mirror",
    )  # fmt: skip
    mirrored = [r.fraction for r in seen if r.stage == "mirror"]
    extracted = [r.fraction for r in seen if r.stage == "extract"]
    assert mirrored, "the mirrored pass reported nothing"
    assert min(mirrored) >= max(extracted) and max(mirrored) > max(extracted)


def test_it_counts_mirrored_images_in_its_extraction_rate(toy_data, samples_of, model_cache, tmp_path):
    outcome = train_model(
        samples_of(toy_data), tmp_path / "v", strategy="linear", cache=MemoryCache(), views="mirror"
    )
    timings = outcome.metrics["timings"]
    # 16 images cropped and whole (to choose the framing), and the mirror images of both: 64 vectors in
    # extract_s, from 16 decoded images.
    assert timings["n_extracted"] == 64
    assert timings["n_decoded"] == 16
    assert set(timings["ms_per_image"]) == {"decode", "hash", "preprocess", "inference"}
    assert all(ms > 0 for ms in timings["ms_per_image"].values())
    # extract_s is rounded to the millisecond: compare within what that rounding allows.
    assert timings["images_per_s"] == pytest.approx(
        64 / timings["extract_s"], rel=0.0005 / timings["extract_s"] + 0.002
    )


def test_it_reads_images_from_remote_storage_batch_by_batch(make_toy_image, model_cache, tmp_path):
    reads = []

    def remote(data):
        def read():
            reads.append(len(data))
            return data

        return read

    samples = [
        Sample(key=f"{i:064x}", source=remote(make_toy_image(colour, i)), label=colour)
        for colour in ("red", "blue")
        for i in range(48)
    ]
    reads_at_first_batch = []

    def watch(report):
        if report.stage in ("choose", "extract") and report.fraction > 0 and not reads_at_first_batch:
            reads_at_first_batch.append(len(reads))

    train_model(
        samples, tmp_path / "v", strategy="linear", augment=False, cache=MemoryCache(), on_progress=watch
    )
    assert reads_at_first_batch and reads_at_first_batch[0] < len(samples)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["partial", "full"])
def test_it_ships_what_it_evaluated_refitted_the_same_way(
    strategy, toy_data, samples_of, model_cache, tmp_path
):
    # Five images per label, two of them in a frozen test split: the smallest set both fits can run on.
    samples = [s for s in samples_of(toy_data) if int(s.source.stem[-1]) < 5]
    for sample in samples:
        sample.split = "test" if int(sample.source.stem[-1]) < 2 else "train"
    # The same network on 64-pixel crops: adapting it on a CPU then takes seconds, not minutes.
    small = dataclasses.replace(
        BACKBONES["efficientnet_lite0"],
        preprocessing=dataclasses.replace(BACKBONES["efficientnet_lite0"].preprocessing, resize=72, crop=64),
    )
    outcome = train_model(
        samples, tmp_path / "v", backbone=small, strategy=strategy, holdout="given", cache=MemoryCache()
    )
    assert outcome.metrics["strategy"] == strategy and outcome.metrics["n_val"] == 4
    assert (outcome.path / "tail.safetensors").is_file()
    # The serving network was adapted on all 10 images, and its head is the layer trained with it
    # (calibrated on the inner split), as in the evaluated model; not a new head fitted afterwards.
    training = outcome.metrics["training"]
    assert training["n_train"] == 10 and outcome.metrics["n_train"] == 10
    assert training["calibrated_on"] == "inner validation split"


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
