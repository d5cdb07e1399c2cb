"""Training workflows: refusals a person can act on, reuse, claims, cancel, promotion, the feature cache."""

import zlib

import pytest
from django.utils import timezone

from classifier.audit import PERCEPTUAL_HASH
from classifier.progress import ProgressReport
from webui.jobs.models import InvalidTransition, JobStatus
from webui.projects.ingest import ingest_image
from webui.projects.labels import get_or_create_label
from webui.training import services
from webui.training.models import FeatureVector, ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db

RED, BLUE = (210, 40, 40), (40, 40, 210)


@pytest.fixture
def add_images(project, owner, media_root, image_bytes, upload):
    def add(name, colour, count, start=0):
        label = get_or_create_label(project, name)
        for seed in range(start, start + count):
            data = image_bytes(colour, size=(64, 64), seed=zlib.crc32(name.encode()) % 1000 + seed)
            ingest_image(project, owner, upload(f"{name}{seed}.png", data), label=label)

    return add


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "at least two labels"),
        ([("red", 3)], "at least two labels"),
        ([("red", 3), ("blue", 1)], "each label needs at least 2 images; 'blue' has 1"),
    ],
)
def test_it_refuses_to_train_saying_what_is_missing(project, owner, add_images, images, message):
    for name, count in images:
        add_images(name, RED, count)
    with pytest.raises(services.TrainingRefused, match=message):
        services.start_training(project, owner)
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize(("params", "message"), [({"backbone": "nope"}, "unknown backbone"),
                                                  ({"strategy": "magic"}, "unknown strategy")])  # fmt: skip
def test_it_refuses_unknown_parameters(project, owner, add_images, params, message):
    add_images("red", RED, 2)
    add_images("blue", BLUE, 2)
    with pytest.raises(services.TrainingRefused, match=message):
        services.start_training(project, owner, params)


def test_it_queues_once_after_commit_and_reuses_an_identical_run(
    project, owner, add_images, django_capture_on_commit_callbacks
):
    add_images("red", RED, 2)
    add_images("blue", BLUE, 2)
    with django_capture_on_commit_callbacks() as callbacks:
        run = services.start_training(project, owner, {"strategy": "linear"})
    assert run.status == JobStatus.QUEUED and not run.reused and len(callbacks) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        again = services.start_training(project, owner, {"strategy": "linear"})
    assert again.pk == run.pk and again.reused and not callbacks
    add_images("blue", BLUE, 1, start=50)  # new data: a new fingerprint, a new run
    with django_capture_on_commit_callbacks():
        assert services.start_training(project, owner, {"strategy": "linear"}).pk != run.pk


def test_a_train_request_never_reuses_a_run_whose_worker_died(
    project, owner, add_images, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    add_images("red", RED, 2)
    add_images("blue", BLUE, 2)
    with django_capture_on_commit_callbacks():
        stuck = services.start_training(project, owner, {"strategy": "linear"})
    TrainingRun.objects.filter(pk=stuck.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        fresh = services.start_training(project, owner, {"strategy": "linear"})
    assert fresh.pk != stuck.pk and not fresh.reused and len(callbacks) == 1
    stuck.refresh_from_db()
    assert stuck.status == JobStatus.CANCELLED


def test_it_cancels_queued_runs_at_once_and_running_ones_between_batches(project):
    queued = TrainingRun.objects.create(project=project)
    assert services.cancel(queued).status == JobStatus.CANCELLED
    running = TrainingRun.objects.create(
        project=project, status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    assert services.cancel(running).cancel_requested
    progress = services._Progress(running)
    with pytest.raises(services.Cancelled):
        progress(ProgressReport("extract", 0.5, "extracting 10/20"))
    with pytest.raises(InvalidTransition):
        services.cancel(queued)


def test_it_writes_each_engine_report_into_the_run(project):
    run = TrainingRun.objects.create(project=project, status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    progress = services._Progress(run)
    progress(ProgressReport("extract", 0.1, "extracting 1/100"))
    run.refresh_from_db()
    assert (run.progress, run.message) == (0.1, "extracting 1/100")
    progress(ProgressReport("fit", 0.6, "training the classifier head"))
    run.refresh_from_db()
    assert (run.progress, run.message) == (0.6, "training the classifier head")


def _set(version, **metrics):
    version.metrics = {**version.metrics, **metrics}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    return version


def test_it_serves_the_first_version_and_better_ones_automatically(project, make_version):
    v1 = _set(make_version(project, 1), balanced_accuracy=0.9)
    assert services.promote_if_better(v1)[0]
    worse = _set(make_version(project, 2), balanced_accuracy=0.8)
    promoted, reason = services.promote_if_better(worse)
    assert not promoted and "v1 scored better" in reason
    better = _set(make_version(project, 3), balanced_accuracy=0.95)
    assert services.promote_if_better(better)[0]
    project.refresh_from_db()
    assert project.serving_version == better
    assert ModelVersion.objects.get(pk=worse.pk).metrics["promotion"]["promoted"] is False


def test_it_waits_for_a_person_when_auto_promote_is_off(project, make_version):
    project.auto_promote = False
    project.save()
    promoted, reason = services.promote_if_better(make_version(project, 1))
    assert not promoted and "auto-promote is off" in reason


def test_it_serves_a_version_whose_labels_changed(project, make_version):
    _set(make_version(project, 1), balanced_accuracy=0.99).promote()
    changed = _set(make_version(project, 2, labels=("ants", "bees", "wasps")), balanced_accuracy=0.5)
    assert services.promote_if_better(changed) == (
        True,
        "the labels changed, so the serving version cannot answer this question",
    )


@pytest.mark.slow
def test_it_extracts_only_new_images_when_retraining(
    project, owner, add_images, django_capture_on_commit_callbacks
):
    add_images("red", RED, 4)
    add_images("blue", BLUE, 4)
    with django_capture_on_commit_callbacks():
        first = services.start_training(project, owner, {"strategy": "linear"})
    services.run_training(first.pk)
    first.refresh_from_db()
    assert first.status == JobStatus.SUCCEEDED, first.error
    # Each image at least once (the training images in both framings, to choose one).
    assert first.metrics["timings"]["n_extracted"] >= 8

    add_images("red", RED, 2, start=100)
    with django_capture_on_commit_callbacks():
        second = services.start_training(project, owner, {"strategy": "linear"})
    services.run_training(second.pk)
    second.refresh_from_db()
    assert second.status == JobStatus.SUCCEEDED, second.error
    timings = second.metrics["timings"]
    # The 8 earlier images come from the cache, and nothing is extracted twice: every vector either
    # run extracted is one row of the shared cache (a view the second run chose anew is extracted once).
    assert timings["n_extracted"] > 0 and timings["n_cached"] >= 8
    vectors = FeatureVector.objects.exclude(backbone_id=PERCEPTUAL_HASH.key).count()
    assert vectors == first.metrics["timings"]["n_extracted"] + timings["n_extracted"]
    assert list(project.versions.values_list("number", flat=True)) == [2, 1]
    assert second.model_version.number == 2


@pytest.mark.slow
def test_it_stops_a_running_training_cleanly_when_a_person_cancels(
    project, owner, add_images, django_capture_on_commit_callbacks, monkeypatch
):
    import tempfile
    from pathlib import Path

    add_images("red", RED, 4)
    add_images("blue", BLUE, 4)
    with django_capture_on_commit_callbacks():
        run = services.start_training(project, owner, {"strategy": "linear"})
    report = services._Progress.__call__
    seen = []

    def press_cancel_during_extraction(self, progress):
        # A person presses Cancel while the worker extracts: the real service marks the row, and the
        # worker must notice at its next progress report.
        if progress.stage == "extract" and not seen:
            seen.append(progress.message)
            services.cancel(TrainingRun.objects.get(pk=self.run.pk))
        return report(self, progress)

    monkeypatch.setattr(services._Progress, "__call__", press_cancel_during_extraction)
    services.run_training(run.pk)
    run.refresh_from_db()
    assert seen, "the worker never reported extraction progress"
    assert (run.status, run.message) == (JobStatus.CANCELLED, "cancelled")
    assert not ModelVersion.objects.filter(project=project).exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"pinhole-run{run.pk}-*"))
    assert project.images.filter(label__isnull=False).count() == 8  # nothing a person made is lost


def _answers(keys, wrong=()):
    return [{"key": k, "predicted": "blue" if k in wrong else "red", "confidence": 0.9} for k in keys]


def test_it_compares_versions_on_the_test_images_both_were_scored_on(project, add_images, make_version):
    add_images("red", RED, 6)
    reds = list(project.images.values_list("sha256", flat=True))
    old_set, new_images = reds[:4], reds[4:]
    # v1 was scored on four images and missed one of them.
    v1 = _set(
        make_version(project, 1),
        balanced_accuracy=0.75,
        test_predictions=_answers(old_set, wrong=old_set[:1]),
    )
    v1.promote()
    # v2 was scored on those four plus two newer, harder images: its own score is lower (4/6), but on the
    # images both saw it is right every time, so it is the better model.
    v2 = _set(
        make_version(project, 2),
        balanced_accuracy=4 / 6,
        test_predictions=_answers(old_set + new_images, wrong=new_images),
    )
    promoted, reason = services.promote_if_better(v2)
    assert promoted, reason
    assert reason == "balanced accuracy 100% vs 75% for v1 on the 4 test images both were scored on"
    # v3 recorded a higher score than v2, but on the same six images it is right three times to v2's four.
    v3 = _set(
        make_version(project, 3), balanced_accuracy=0.8, test_predictions=_answers(reds, wrong=old_set[:3])
    )
    promoted, reason = services.promote_if_better(v3)
    assert (promoted, reason) == (
        False,
        "v2 scored better on the 6 test images both were scored on (67% vs 50%)",
    )
    project.refresh_from_db()
    assert project.serving_version == v2


def test_it_falls_back_to_recorded_scores_without_shared_test_images(project, make_version):
    _set(make_version(project, 1), balanced_accuracy=0.9).promote()
    promoted, reason = services.promote_if_better(_set(make_version(project, 2), balanced_accuracy=0.85))
    assert not promoted and reason == "v1 scored better on their own test images (90% vs 85%)"


def test_a_serving_decision_never_quotes_two_equal_percentages_as_better(project, make_version):
    _set(make_version(project, 1), balanced_accuracy=0.962).promote()
    promoted, reason = services.promote_if_better(_set(make_version(project, 2), balanced_accuracy=0.958))
    assert not promoted and reason == "v1 scored slightly better on their own test images (both about 96%)"
