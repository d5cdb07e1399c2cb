"""The one shape every kind of background work shares (webui/jobs): claimed once, taken over only when
its worker died, given up after too many deaths, sent again when its message was lost, cancelled."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from classifier.errors import Cancelled
from webui.jobs import lifecycle, recovery
from webui.jobs.models import InvalidTransition, JobStatus
from webui.projects.models import ZipImport
from webui.serving.models import BatchPrediction, SuggestionRefresh
from webui.training.models import TrainingRun, VersionExport

pytestmark = pytest.mark.django_db

KINDS = [TrainingRun, BatchPrediction, ZipImport, SuggestionRefresh, VersionExport]
TRAINING_QUEUE = (TrainingRun, VersionExport)
each_kind = pytest.mark.parametrize("model", KINDS, ids=lambda m: m.__name__)


@pytest.fixture
def make_job(project, make_version):
    versions = []

    def make(model, **fields):
        extra = {}
        if model in (BatchPrediction, SuggestionRefresh, VersionExport):
            versions.append(versions[0] if versions else make_version(project, 1))
            extra["version"] = versions[0]
        if model is ZipImport:
            extra = {"archive": "imports/x.zip", "name": "x.zip"}
        if model is VersionExport:  # belongs to its version's project
            return model.objects.create(format="onnx", **extra, **fields)
        return model.objects.create(project=project, **extra, **fields)

    return make


def _stale(model, job) -> None:
    model.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))


@each_kind
def test_a_job_is_claimed_once_and_taken_over_only_when_its_worker_died(make_job, model):
    job = make_job(model)
    claimed = lifecycle.claim(model, job.pk)
    assert claimed.status == JobStatus.RUNNING and claimed.attempts == 1 and claimed.heartbeat_at
    with pytest.raises(lifecycle.NotClaimable):
        lifecycle.claim(model, job.pk)  # a live worker holds it
    _stale(model, job)
    assert lifecycle.claim(model, job.pk).attempts == 2  # its worker died: take over


@each_kind
def test_a_job_whose_worker_keeps_dying_fails_with_a_message(make_job, model, settings):
    settings.PINHOLE_TASK_MAX_DELIVERIES = 2
    job, cleaned = make_job(model), []
    for _ in range(2):
        assert lifecycle.claim(model, job.pk) is not None
        _stale(model, job)
    assert lifecycle.claim(model, job.pk, on_give_up=cleaned.append) is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped 2 times" in job.error and model.noun in job.error
    assert cleaned == [job.pk] and job.finished_at is not None


@each_kind
def test_a_finished_or_missing_job_is_not_claimed(make_job, model):
    assert lifecycle.claim(model, make_job(model, status=JobStatus.SUCCEEDED).pk) is None
    assert lifecycle.claim(model, 987654) is None


@each_kind
def test_progress_beats_the_heartbeat_and_a_cancel_stops_the_work(make_job, model):
    job = lifecycle.claim(model, make_job(model).pk)
    model.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    lifecycle.report(job, 0.25, "a quarter")
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.25, "a quarter")
    assert timezone.now() - job.heartbeat_at < timedelta(seconds=5)
    assert lifecycle.cancel(job).cancel_requested and job.message == "cancelling…"
    with pytest.raises(Cancelled):
        lifecycle.report(job, 0.5, "half")
    assert lifecycle.finish(job, JobStatus.CANCELLED, message="cancelled")
    with pytest.raises(InvalidTransition, match="cannot be cancelled"):
        lifecycle.cancel(job)


@each_kind
def test_a_queued_job_is_cancelled_at_once(make_job, model):
    job = lifecycle.cancel(make_job(model))
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert lifecycle.claim(model, job.pk) is None


@each_kind
def test_a_heartbeat_thread_keeps_a_long_step_alive(make_job, model, transactional_db):
    import time

    job = lifecycle.claim(model, make_job(model).pk)
    _stale(model, job)
    with lifecycle.Heartbeat(job, every=0.05):
        time.sleep(0.5)
    job.refresh_from_db()
    assert timezone.now() - job.heartbeat_at < timedelta(seconds=5)


def test_a_starting_worker_sends_again_the_jobs_of_its_queues_whose_message_was_lost(make_job, monkeypatch):
    sent = []
    monkeypatch.setattr(lifecycle, "enqueue", lambda model, job_id: sent.append((model, job_id)))
    long_ago = timezone.now() - timedelta(hours=1)
    lost, dead = {}, {}
    for model in KINDS:
        lost[model] = make_job(model)
        model.objects.filter(pk=lost[model].pk).update(created=long_ago)
        make_job(model)  # just queued: its message is still on its way
        dead[model] = make_job(model, status=JobStatus.RUNNING, heartbeat_at=long_ago)
        make_job(model, status=JobStatus.RUNNING, heartbeat_at=timezone.now())  # alive
        make_job(model, status=JobStatus.SUCCEEDED)
    recovery.recover({"default"})
    expected_default = {(m, j[m].pk) for m in KINDS if m not in TRAINING_QUEUE for j in (lost, dead)}
    assert set(sent) == expected_default
    sent.clear()
    recovery.recover({"training"})
    assert set(sent) == {(m, j[m].pk) for m in TRAINING_QUEUE for j in (lost, dead)}


def test_a_running_worker_sends_again_the_jobs_whose_worker_died_once_per_window(make_job, monkeypatch):
    """A worker killed and started again within one heartbeat window found nothing stale at its
    start; the sweep while it runs catches the job once its heartbeat is silent, and does not flood
    the queue with a message every window while the new message waits."""
    sent = []
    monkeypatch.setattr(lifecycle, "enqueue", lambda model, job_id: sent.append((model, job_id)))
    long_ago = timezone.now() - timedelta(hours=1)
    dead = make_job(TrainingRun, status=JobStatus.RUNNING, heartbeat_at=long_ago)
    make_job(TrainingRun, status=JobStatus.RUNNING, heartbeat_at=timezone.now())  # alive
    make_job(TrainingRun).__class__.objects.filter(status=JobStatus.QUEUED).update(created=long_ago)
    make_job(ZipImport, status=JobStatus.RUNNING, heartbeat_at=long_ago)  # not this worker's queue
    sweeper = recovery.Sweeper({"training"})
    assert sweeper.sweep() == [("training.TrainingRun", dead.pk)]
    assert sent == [(TrainingRun, dead.pk)]  # a queued job is the start-up sweep's business only
    assert sweeper.sweep() == []  # sent already: not again within RESEND_WINDOWS windows
    sweeper.sent = {key: when - 10_000 for key, when in sweeper.sent.items()}
    assert sweeper.sweep() == [("training.TrainingRun", dead.pk)]


def test_every_kind_of_job_names_a_task_on_the_queue_its_recovery_sweeps():
    from django.apps import apps
    from django.utils.module_loading import import_string

    from webui.celery import app
    from webui.jobs.models import Job

    kinds = {m for m in apps.get_models() if issubclass(m, Job)}
    assert kinds == set(KINDS)
    swept = {kind: queue for queue, names in recovery.JOB_KINDS.items() for kind in names}
    for model in kinds:
        task = import_string(model.task)
        routed = app.amqp.router.route({}, task.name)["queue"].name
        assert swept[model._meta.label] == routed, (model, routed)


@each_kind
def test_cancelling_a_job_whose_worker_died_ends_it_at_once(make_job, model):
    dead = make_job(model, status=JobStatus.RUNNING)
    _stale(model, dead)
    lifecycle.cancel(dead)
    assert dead.status == JobStatus.CANCELLED and "its worker had stopped" in dead.message
    alive = make_job(model, status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    lifecycle.cancel(alive)
    assert alive.status == JobStatus.RUNNING and alive.cancel_requested and alive.message == "cancelling…"


@pytest.fixture
def gone_process():
    """The claimant name of a real process of this host that has ended."""
    import subprocess
    import sys

    from webui.jobs import claimant

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    name = claimant._this(child.pid)
    assert not claimant.is_gone(name)  # alive while it waits for its input
    child.communicate(b"")
    return name


def test_a_claimant_is_gone_only_when_its_process_on_this_host_has_ended(gone_process):
    import socket

    from webui.jobs import claimant

    me = claimant.this_process()
    host, pid, start = me.split(":")
    assert host == socket.gethostname() and int(pid) == os.getpid()
    assert claimant.is_gone(gone_process)
    assert claimant.is_gone(f"{host}:{pid}:{float(start) - 5:.2f}")  # its pid, but another process's start
    assert not claimant.is_gone(me)
    assert not claimant.is_gone(f"another-host:{gone_process.split(':', 1)[1]}")  # the heartbeat decides
    assert not claimant.is_gone("") and not claimant.is_gone("nonsense")


@each_kind
def test_a_job_whose_claimant_died_on_this_host_is_taken_over_and_sent_again_whatever_its_age(
    make_job, model, gone_process, monkeypatch
):
    """A worker killed and started again within one heartbeat window: its job's heartbeat is fresh, but
    the process that claimed it is gone. The start-up sweep sends it again and the claim takes it over
    at once; cancel ends it at once too."""
    sent = []
    monkeypatch.setattr(lifecycle, "enqueue", lambda m, job_id: sent.append((m, job_id)))
    fresh = dict(status=JobStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1)
    orphan = make_job(model, claimed_by=gone_process, **fresh)
    held = make_job(model, claimed_by=lifecycle.claimant.this_process(), **fresh)
    recovery.recover({"default", "training"})
    assert sent == [(model, orphan.pk)]
    assert lifecycle.dead_jobs(model) == [orphan.pk]
    with pytest.raises(lifecycle.NotClaimable):
        lifecycle.claim(model, held.pk)
    taken = lifecycle.claim(model, orphan.pk)
    assert taken.attempts == 2 and taken.claimed_by == lifecycle.claimant.this_process()
    with pytest.raises(lifecycle.NotClaimable):
        lifecycle.claim(model, orphan.pk)  # now held by a live process
    other = make_job(model, claimed_by=gone_process, **fresh)
    assert lifecycle.cancel(other).status == JobStatus.CANCELLED
