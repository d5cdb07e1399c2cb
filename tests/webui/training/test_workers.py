"""Worker presence: a worker loads the network before it is called ready, and a queued training says what
it waits for."""

from datetime import timedelta

import pytest
from django.utils import timezone

from webui.jobs.models import JobStatus
from webui.training import workers
from webui.training.models import TrainingRun, WorkerPresence

pytestmark = pytest.mark.django_db


def _worker(name="gpu-1:10", phase=WorkerPresence.READY, seen=0, warm_up_seconds=None, detail=""):
    now = timezone.now()
    return WorkerPresence.objects.create(
        name=name, phase=phase, detail=detail, started_at=now - timedelta(seconds=seen + 5),
        seen_at=now - timedelta(seconds=seen), warm_up_seconds=warm_up_seconds,
    )  # fmt: skip


def _run(project, status=JobStatus.QUEUED, **fields):
    return TrainingRun.objects.create(project=project, status=status, **fields)


def test_a_worker_is_ready_only_once_the_network_is_loaded(media_root, settings, monkeypatch):
    from webui.training import services

    monkeypatch.setattr(services, "_extractors", {})
    seen = []
    real_announce = workers.announce

    def announce(name, phase, detail="", warm_up_seconds=None):
        extractor = services._extractors.get(settings.PINHOLE_DEFAULT_BACKBONE)
        seen.append((phase, extractor is not None and extractor._session is not None))
        real_announce(name, phase, detail, warm_up_seconds)

    monkeypatch.setattr(workers, "announce", announce)
    seconds = workers.warm_up("here:1")
    assert seen == [(WorkerPresence.STARTING, False), (WorkerPresence.READY, True)]
    row = WorkerPresence.objects.get(name="here:1")
    assert row.phase == WorkerPresence.READY and row.warm_up_seconds == pytest.approx(seconds)
    assert settings.PINHOLE_DEFAULT_BACKBONE in row.detail
    # The training that comes next finds the same loaded network.
    assert services.extractor_for(settings.PINHOLE_DEFAULT_BACKBONE)._session is not None


def test_a_queued_training_says_when_no_worker_runs(project):
    run = _run(project)
    _worker(seen=workers.GONE_AFTER_SECONDS + 5)  # killed a while ago
    assert "none is running" in workers.phase_message(run)


def test_a_queued_training_says_the_worker_is_loading(project):
    run = _run(project)
    _worker(name="old:1", seen=3600, warm_up_seconds=4.2)  # the last start, long gone
    _worker(phase=WorkerPresence.STARTING, detail="loading the network (efficientnet_lite0, bf16)")
    message = workers.phase_message(run)
    assert message.startswith("the worker is starting: loading the network (efficientnet_lite0, bf16)")
    assert "took 4 s last time" in message


def test_a_queued_training_counts_what_is_ahead_of_it(project):
    _worker()
    _run(project, status=JobStatus.RUNNING)
    earlier = _run(project)
    run = _run(project)
    TrainingRun.objects.filter(pk=earlier.pk).update(created=run.created - timedelta(seconds=1))
    assert workers.phase_message(run) == "queued behind 2 other trainings"
    TrainingRun.objects.exclude(pk=run.pk).update(status=JobStatus.SUCCEEDED)
    assert workers.phase_message(run) == "about to start: a worker is ready"


def test_a_running_training_estimates_the_time_left(project):
    run = _run(
        project, status=JobStatus.RUNNING, progress=0.25, message="extracting 100/398",
        started_at=timezone.now() - timedelta(seconds=10),
    )  # fmt: skip
    assert workers.phase_message(run).startswith(
        "extracting 100/398 (about 3"
    )  # 30 s, give or take the clock
    assert workers.phase_message(run).endswith(" s left)")
    run.progress = 0.01
    assert workers.phase_message(run) == "extracting 100/398"  # too early to tell


def test_announcing_twice_keeps_one_row_and_the_start_time():
    workers.announce("w:1", WorkerPresence.STARTING, "loading")
    started = WorkerPresence.objects.get(name="w:1").started_at
    workers.announce("w:1", WorkerPresence.READY, "loaded", 1.5)
    row = WorkerPresence.objects.get()
    assert (row.phase, row.started_at, row.warm_up_seconds) == (WorkerPresence.READY, started, 1.5)
