"""Three hosts on one machine: the web host (this process) and two worker hosts.

Each worker has its own empty data directory and its own model cache, holding only the exported
backbone (as a worker image built with it would). The three share the database, Redis (the broker)
and a bucket on the S3-compatible server, and nothing else: no file goes from one to another except
through the bucket.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from itest import BLUE, GREEN, RED, png, post_train, predict, training_events, wait_for, wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported_backbone():
    """The default backbone exported once into the shared model cache (a worker image's build step)."""
    from django.conf import settings

    from classifier.backbones import DEFAULT_BACKBONE
    from classifier.features import Extractor

    Extractor(DEFAULT_BACKBONE, device="cpu", onnx_dir=Path(settings.PINHOLE_MODEL_CACHE) / "onnx").load()
    return Path(settings.PINHOLE_MODEL_CACHE) / "onnx"


@pytest.fixture
def worker_host(object_store, redis_broker, start_worker, exported_backbone, tmp_path):
    """worker_host(name, **env) -> (Worker, its home): a worker on a host of its own."""

    def start(name: str, **extra: str):
        home = tmp_path / name
        shutil.copytree(exported_backbone, home / "cache" / "onnx")
        worker = start_worker(
            redis_broker,
            PINHOLE_DATA_DIR=str(home / "data"),
            PINHOLE_MODEL_CACHE=str(home / "cache"),
            **object_store.env,
            **extra,
        )
        return worker, home

    return start


def project_files(home: Path) -> list[str]:
    """Files on a worker host other than its exported backbone, secret key and static files."""
    ignored = ("cache/onnx/", "data/secret_key", "data/static/")
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and not str(p.relative_to(home)).startswith(ignored)
    )


def trainer_of(run_id: int, log: Path, workers) -> list[int | None]:
    """Index in `workers` of each worker whose pool child started training this run, in order (None
    for a process that is gone)."""
    pids = [pid for event, run, pid, _ in training_events(log) if event == "start" and run == run_id]
    return [next((i for i, w in enumerate(workers) if pid in w.pool_children()), None) for pid in pids]


def add_project(api, name: str, colours) -> int:
    from django.core.files.uploadedfile import SimpleUploadedFile

    project_id = api.post("/api/v1/projects/", {"name": name}, format="json").json()["id"]
    for label, colour in colours:
        files = [SimpleUploadedFile(f"{label}{i}.png", png(colour, 300 + i), "image/png") for i in range(6)]
        response = api.post(
            f"/api/v1/projects/{project_id}/images/", {"files": files, "label": label}, format="multipart"
        )
        assert response.status_code == 201, response.json()
    return project_id


@pytest.mark.timeout(300)
def test_an_upload_is_trained_on_either_worker_and_served_by_the_web_host(
    object_store, worker_host, api, labelled_project, data_dir, start_worker
):
    (a, a_home), (b, b_home) = worker_host("host-a"), worker_host("host-b")
    run_id = post_train(api, labelled_project)["id"]
    run = wait_for_run(api, run_id, {"succeeded", "failed"}, a, timeout=120)
    assert run["status"] == "succeeded", run["error"] + a.log() + b.log()
    assert len(trainer_of(run_id, start_worker.training_log, [a, b])) == 1

    for colour, label in ((RED, "red"), (BLUE, "blue")):
        response = predict(api, labelled_project, colour)
        assert response.status_code == 200, response.json()
        assert response.json()["label"] == label
    # Images and the version went through the bucket; no host kept a file of the project.
    assert len(object_store.keys(f"projects/{labelled_project}/images/")) == 12
    assert object_store.keys(f"projects/{labelled_project}/versions/")
    assert project_files(a_home) == [] and project_files(b_home) == []
    assert [p for p in (data_dir / "media").rglob("*") if p.is_file()] == []


@pytest.mark.timeout(300)
def test_two_trainings_and_a_batch_prediction_spread_over_both_workers(
    object_store, worker_host, api, labelled_project, start_worker
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    # Each training waits 3 s first: long enough that the second message reaches the idle worker.
    workers = [worker_host(name, PINHOLE_TEST_TRAINING_DELAY_S="3")[0] for name in ("host-a", "host-b")]
    other = add_project(api, "Greens", [("green", GREEN), ("blue", BLUE)])
    runs = [post_train(api, project)["id"] for project in (labelled_project, other)]
    for run_id in runs:
        run = wait_for_run(api, run_id, {"succeeded", "failed"}, workers[0], timeout=150)
        assert run["status"] == "succeeded", run["error"] + workers[1].log()
    trainers = [trainer_of(run_id, start_worker.training_log, workers) for run_id in runs]
    events = training_events(start_worker.training_log)
    # One training on each host.
    assert sorted(t[0] for t in trainers) == [0, 1], (
        f"{trainers} {events}" + workers[0].log() + workers[1].log()
    )

    files = [SimpleUploadedFile(f"q{i}.png", png(GREEN, 900 + i), "image/png") for i in range(4)]
    response = api.post(f"/api/v1/projects/{other}/images/", {"files": files}, format="multipart")
    assert response.status_code == 201, response.json()
    response = api.post(f"/api/v1/projects/{other}/predictions/", {"scope": "unlabeled"}, format="json")
    assert response.status_code == 202, response.json()
    batch_id = response.json()["id"]

    def finished():
        batch = api.get(f"/api/v1/predictions/{batch_id}/").json()
        return batch if batch["status"] in ("succeeded", "failed") else None

    batch = wait_for(finished, 60, "the batch prediction", on_timeout=workers[0].log)
    assert batch["status"] == "succeeded", batch
    assert [row["label"] for row in batch["results"]] == ["green"] * 4


@pytest.mark.timeout(300)
def test_features_one_worker_computed_are_cache_hits_for_the_other(
    object_store, worker_host, api, labelled_project, start_worker
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    a, _ = worker_host("host-a")
    first = wait_for_run(api, post_train(api, labelled_project)["id"], {"succeeded", "failed"}, a)
    assert first["status"] == "succeeded", first["error"]
    a.stop()

    b, _ = worker_host("host-b")
    files = [SimpleUploadedFile(f"red-new{i}.png", png(RED, 500 + i), "image/png") for i in range(2)]
    api.post(
        f"/api/v1/projects/{labelled_project}/images/", {"files": files, "label": "red"}, format="multipart"
    )
    run_id = post_train(api, labelled_project)["id"]
    second = wait_for_run(api, run_id, {"succeeded", "failed"}, b)
    assert second["status"] == "succeeded", second["error"] + b.log()
    assert trainer_of(run_id, start_worker.training_log, [a, b]) == [1]
    timings = second["metrics"]["timings"]
    # Host B decoded only the two new photos; the twelve others' vectors came from host A's work.
    assert timings["n_decoded"] == 2, timings
    assert timings["n_cached"] >= 12, timings


@pytest.mark.timeout(300)
def test_a_worker_host_killed_mid_training_is_replaced_by_the_other(
    object_store, worker_host, api, labelled_project, start_worker
):
    import os

    from webui.training.models import ModelVersion, TrainingRun

    # Redis gives an unacknowledged message back after 6 s, looked for every second here.
    env = {
        "PINHOLE_BROKER_VISIBILITY_TIMEOUT": "6",
        "PINHOLE_TEST_REDIS_RESTORE_S": "1",
        "PINHOLE_TEST_TRAINING_DELAY_S": "3",
    }
    workers = [worker_host(name, **env)[0] for name in ("host-a", "host-b")]
    run_id = post_train(api, labelled_project)["id"]
    started = wait_for(
        lambda: trainer_of(run_id, start_worker.training_log, workers),
        30,
        "a worker to start training",
        on_timeout=workers[0].log,
    )
    victim, survivor = workers[started[0]], workers[1 - started[0]]
    os.killpg(victim.pid, signal.SIGKILL)  # the whole host: main process and pool child

    run = wait_for_run(api, run_id, {"succeeded", "failed", "cancelled"}, survivor, timeout=150)
    assert run["status"] == "succeeded", run["error"] + survivor.log()
    assert ModelVersion.objects.filter(project_id=labelled_project).count() == 1
    assert TrainingRun.objects.get(pk=run_id).attempts == 2
    # The killed host's child started it, the survivor's finished it.
    assert trainer_of(run_id, start_worker.training_log, workers) == [None, workers.index(survivor)]


@pytest.mark.timeout(300)
def test_a_worker_host_killed_mid_batch_is_replaced_by_the_other(
    object_store, worker_host, api, labelled_project, start_worker
):
    import os

    from webui.serving.models import BatchPrediction

    env = {
        "PINHOLE_BROKER_VISIBILITY_TIMEOUT": "6",
        "PINHOLE_TEST_REDIS_RESTORE_S": "1",
        "PINHOLE_TEST_BATCH_DELAY_S": "3",
    }
    workers = [worker_host(name, **env)[0] for name in ("host-a", "host-b")]
    run = wait_for_run(api, post_train(api, labelled_project)["id"], {"succeeded", "failed"}, workers[0])
    assert run["status"] == "succeeded", run["error"]
    response = api.post(f"/api/v1/projects/{labelled_project}/predictions/", {"scope": "all"}, format="json")
    assert response.status_code == 202, response.json()
    batch_id = response.json()["id"]

    def batch_started():
        # Claimed (so the kill lands inside the 3 s before its first chunk), and by which host.
        if not BatchPrediction.objects.filter(pk=batch_id, status="running").exists():
            return None
        pids = [pid for event, job, pid, _ in training_events(start_worker.training_log)
                if event == "batch-start" and job == batch_id]  # fmt: skip
        return next((w for w in workers for pid in pids if pid in w.pool_children()), None)

    victim = wait_for(batch_started, 30, "a worker to start the batch", on_timeout=workers[0].log)
    survivor = workers[1 - workers.index(victim)]
    os.killpg(victim.pid, signal.SIGKILL)  # the whole host, mid-batch

    def finished():
        batch = api.get(f"/api/v1/predictions/{batch_id}/").json()
        return batch if batch["status"] in ("succeeded", "failed") else None

    batch = wait_for(finished, 90, "the batch to be taken over", on_timeout=survivor.log)
    assert batch["status"] == "succeeded", batch["error"] + survivor.log()
    assert len(batch["results"]) == 12 and BatchPrediction.objects.get(pk=batch_id).attempts == 2


@pytest.mark.timeout(300)
def test_a_zip_import_through_the_web_host_is_imported_by_a_worker_from_the_bucket(
    object_store, worker_host, api, data_dir
):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.urls import reverse

    worker, home = worker_host("host-a")
    project_id = api.post("/api/v1/projects/", {"name": "Zipped"}, format="json").json()["id"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(30):
            label, colour = ("red", RED) if i % 2 else ("blue", BLUE)
            archive.writestr(f"{label}/{i}.png", png(colour, 700 + i))
        archive.writestr("notes.txt", b"not a picture")
    browser = Client()
    browser.force_login(api.user)
    response = browser.post(
        reverse("projects:upload-zip", args=[project_id]),
        {"archive": SimpleUploadedFile("shelf.zip", buffer.getvalue(), "application/zip")},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 202, response.json()
    status_url = response.json()["status_url"]
    assert len(object_store.keys(f"projects/{project_id}/imports/")) == 1  # stored in the bucket

    def finished():
        job = browser.get(status_url).json()
        return job if job["final"] else None

    job = wait_for(finished, 60, "the zip import", on_timeout=worker.log)
    assert job["status"] == "succeeded", job["error"] + worker.log()
    assert (job["created"], job["labels"], len(job["rejected"])) == (30, ["blue", "red"], 1)
    assert len(object_store.keys(f"projects/{project_id}/images/")) == 30
    assert object_store.keys(f"projects/{project_id}/imports/") == []  # the archive is gone
    assert project_files(home) == [] and [p for p in (data_dir / "media").rglob("*") if p.is_file()] == []
