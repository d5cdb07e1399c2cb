"""A worker that dies, keeps dying, or runs out of time."""

from __future__ import annotations

import os
import signal

import pytest
from itest import (
    pinhole_temp_dirs,
    post_train,
    queued_messages,
    training_events,
    wait_for,
    wait_for_run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _versions(project_id: int) -> int:
    from webui.training.models import ModelVersion

    return ModelVersion.objects.filter(project_id=project_id).count()


@pytest.mark.timeout(240)
def test_it_redelivers_a_training_whose_worker_was_killed(any_broker, start_worker, api, labelled_project):
    from webui.training.models import TrainingRun

    worker = start_worker(any_broker, PINHOLE_TEST_TRAINING_DELAY_S="4")
    run_id = post_train(api, labelled_project)["id"]
    wait_for_run(api, run_id, "running", worker)
    started = wait_for(
        lambda: [e for e in training_events(start_worker.training_log) if e[0] == "start"],
        30,
        "the pool child to start training",
        on_timeout=worker.log,
    )
    victim = started[0][2]
    assert victim in worker.pool_children()
    os.kill(victim, signal.SIGKILL)

    run = wait_for_run(api, run_id, {"succeeded", "failed", "cancelled"}, worker, timeout=120)
    assert run["status"] == "succeeded", run["error"] + worker.log()
    assert _versions(labelled_project) == 1
    assert TrainingRun.objects.get(pk=run_id).attempts == 2
    trainers = [e[2] for e in training_events(start_worker.training_log) if e[0] == "start"]
    assert len(trainers) == 2 and trainers[0] == victim and trainers[1] != victim
    # The killed child's work directory went with the takeover; the survivor removes its own just after
    # the run is marked succeeded.
    wait_for(
        lambda: pinhole_temp_dirs(start_worker.tmpdir) == [],
        10,
        "the runs' temp files to be removed",
        on_timeout=lambda: str(pinhole_temp_dirs(start_worker.tmpdir)),
    )


@pytest.mark.timeout(240)
def test_a_training_whose_whole_worker_was_killed_is_recovered_at_the_next_start_whatever_its_age(
    any_broker, start_worker, api, labelled_project
):
    """The worker's main process and its pool child killed together, and a worker started again at
    once. The heartbeat window is ten minutes, so the run's heartbeat is still fresh: only the claimant
    (the killed child, gone from this host) tells the new worker the run lost its worker."""
    window = {"PINHOLE_HEARTBEAT_STALE_S": "600"}
    first = start_worker(any_broker, PINHOLE_TEST_TRAINING_DELAY_S="4", **window)
    run_id = post_train(api, labelled_project)["id"]
    wait_for_run(api, run_id, "running", first)
    wait_for(
        lambda: [e for e in training_events(start_worker.training_log) if e[0] == "start"],
        30,
        "the pool child to start training",
        on_timeout=first.log,
    )
    first.stop()  # SIGKILL to the whole process group

    second = start_worker(any_broker, **window)
    run = wait_for_run(api, run_id, {"succeeded", "failed", "cancelled"}, second, timeout=90)
    assert run["status"] == "succeeded", run["error"] + second.log()
    assert _versions(labelled_project) == 1


@pytest.mark.timeout(240)
def test_it_fails_a_task_that_kills_its_worker_every_time(broker, start_worker, api, labelled_project):
    worker = start_worker(broker, PINHOLE_TEST_CRASH_TRAINING="1", PINHOLE_TASK_MAX_DELIVERIES="2")
    run_id = post_train(api, labelled_project)["id"]

    run = wait_for_run(api, run_id, {"succeeded", "failed", "cancelled"}, worker, timeout=150)
    assert run["status"] == "failed"
    assert "the worker stopped 2 times" in run["error"]
    assert len([e for e in training_events(start_worker.training_log) if e[0] == "start"]) == 2
    assert _versions(labelled_project) == 0
    wait_for(lambda: queued_messages(broker) == 0, 20, "the queue to drain", on_timeout=worker.log)
    assert worker.process.poll() is None, "the worker itself must survive its children"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("limit", ["soft", "hard"])
def test_it_fails_a_training_past_its_time_limit(limit, broker, start_worker, api, labelled_project):
    limits = (
        {"PINHOLE_TASK_SOFT_TIME_LIMIT": "2", "PINHOLE_TASK_TIME_LIMIT": "60"}
        if limit == "soft"
        # The prefork pool arms the hard limit only once the soft one has passed (soft < hard); the
        # training ignores the soft one here, like a native call that never returns to Python.
        else {
            "PINHOLE_TASK_SOFT_TIME_LIMIT": "2",
            "PINHOLE_TASK_TIME_LIMIT": "4",
            "PINHOLE_TEST_IGNORE_SOFT_LIMIT": "1",
        }
    )
    worker = start_worker(broker, PINHOLE_TEST_TRAINING_DELAY_S="60", **limits)
    run_id = post_train(api, labelled_project)["id"]

    run = wait_for_run(api, run_id, {"succeeded", "failed", "cancelled"}, worker, timeout=90)
    assert run["status"] == "failed"
    assert "time limit" in run["error"]
    if limit == "hard":
        assert "Hard time limit" in worker.log(tail=10**6), "the soft limit ended it, not the hard one"
    assert _versions(labelled_project) == 0
    wait_for(lambda: queued_messages(broker) == 0, 20, "the queue to drain", on_timeout=worker.log)
    wait_for(
        lambda: pinhole_temp_dirs(start_worker.tmpdir) == [],
        10,
        "the run's temp files to be removed",
        on_timeout=lambda: str(pinhole_temp_dirs(start_worker.tmpdir)),
    )
