"""Broker and database faults around a real worker: the broker away at start, lost mid-task, the database away."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from itest import (
    is_postgres,
    post_train,
    redis_ping,
    training_events,
    wait_for,
    wait_for_run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


@pytest.mark.timeout(180)
def test_it_never_trains_twice_when_training_outlasts_the_visibility_timeout(
    redis_broker, start_worker, api, labelled_project
):
    from webui.training.models import ModelVersion, TrainingRun

    # Two pool children, so a redelivered copy can start while the first still trains; Redis restores
    # unacknowledged messages older than 2 s, swept every 2 s here, while the training lasts 10 s more.
    worker = start_worker(
        redis_broker,
        concurrency=2,
        PINHOLE_BROKER_VISIBILITY_TIMEOUT="2",
        PINHOLE_TEST_REDIS_RESTORE_S="2",
        PINHOLE_TEST_TRAINING_DELAY_S="10",
    )
    run_id = post_train(api, labelled_project)["id"]

    run = wait_for_run(api, run_id, {"succeeded", "failed", "cancelled"}, worker, timeout=120)
    assert run["status"] == "succeeded", run["error"]
    log = worker.log(tail=10**6)
    assert log.count("] received") >= 2, "the broker never redelivered"
    assert "NotClaimable" in log, "no duplicate delivery met the running training"
    # The run is marked succeeded just before the task returns and logs its end: wait for it.
    wait_for(
        lambda: [e[0] for e in training_events(start_worker.training_log)] == ["start", "end"],
        15,
        "one training to start and end",
        on_timeout=lambda: str(training_events(start_worker.training_log)),
    )
    assert TrainingRun.objects.get(pk=run_id).attempts == 1
    assert ModelVersion.objects.filter(project_id=labelled_project).count() == 1


def _restart_redis() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], check=False)
    wait_for(lambda: not redis_ping("redis://127.0.0.1:6379/0"), 15, "Redis to stop")
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(REDIS_START, check=True)
    wait_for(lambda: redis_ping("redis://127.0.0.1:6379/0"), 30, "Redis to answer again")


@pytest.mark.timeout(180)
def test_it_consumes_new_tasks_after_redis_restarts(redis_broker, start_worker, api, labelled_project):
    if "127.0.0.1:6379" not in redis_broker and "localhost:6379" not in redis_broker:
        pytest.skip(f"only restarts the local Redis on 127.0.0.1:6379, not {redis_broker}")
    worker = start_worker(redis_broker)
    try:
        _restart_redis()
    finally:
        if not redis_ping(redis_broker):
            subprocess.run(REDIS_START, check=False)
    restarted = time.monotonic()
    run_id = post_train(api, labelled_project)["id"]

    wait_for_run(api, run_id, {"running", "succeeded"}, worker, timeout=30)
    assert time.monotonic() - restarted < 30
    run = wait_for_run(api, run_id, {"succeeded", "failed"}, worker)
    assert run["status"] == "succeeded", run["error"]


@pytest.mark.timeout(240)
@pytest.mark.skipif(not is_postgres(), reason="PostgreSQL only: this configuration runs on SQLite")
def test_it_serves_and_trains_after_postgresql_restarts(broker, start_worker, api, labelled_project):
    from django.db import close_old_connections

    worker = start_worker(broker)
    first = post_train(api, labelled_project)["id"]
    assert wait_for_run(api, first, {"succeeded", "failed"}, worker)["status"] == "succeeded"

    version = Path("/etc/postgresql")
    cluster = sorted(p.name for p in version.iterdir())[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"], check=True, timeout=120
    )
    wait_for(
        lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0,
        60,
        "PostgreSQL to accept connections",
    )

    # The next request and the next task both succeed: stale connections are health-checked away.
    # A real server sends request_started, whose close_old_connections() arms the health check; the
    # test client disconnects that handler, so do what the server would.
    close_old_connections()
    response = api.get(f"/api/v1/runs/{first}/")
    assert response.status_code == 200, response.content
    second = post_train(api, labelled_project, seed=1)["id"]
    run = wait_for_run(api, second, {"succeeded", "failed"}, worker)
    assert run["status"] == "succeeded", run["error"]
    assert run["model_version"] == 2
