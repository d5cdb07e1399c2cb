"""Train a real model through the API and predict with it (needs the ML engine).

The worker is not started: the run is queued over the API (its Celery task only on commit, which is
captured and not executed) and then trained in-process by calling the service the task would call.
"""

from __future__ import annotations

import pytest

pytest.importorskip("classifier.predict")
pytest.importorskip("classifier.pipeline")

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RED, BLUE = (210, 40, 40), (40, 40, 210)


@pytest.fixture
def trained(api_for, project, editor, media_root, image_bytes, upload, django_capture_on_commit_callbacks):
    from webui.training.services import run_training

    api = api_for(editor)
    for name, colour, base in (("red", RED, 0), ("blue", BLUE, 100)):
        files = [
            upload(f"{name}{i}.png", image_bytes(colour, size=(64, 64), seed=base + i)) for i in range(4)
        ]
        response = api.post(
            f"/api/v1/projects/{project.pk}/images/", {"files": files, "label": name}, format="multipart"
        )
        assert response.status_code == 201, response.json()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = api.post(f"/api/v1/projects/{project.pk}/train/", {"strategy": "linear"})
    assert queued.status_code == 202, queued.json()
    assert len(callbacks) == 1
    run_training(queued.json()["id"])
    run = api.get(f"/api/v1/runs/{queued.json()['id']}/").json()
    assert run["status"] == "succeeded", run["error"]
    return project, run


def test_it_trains_a_version_that_serves(api_for, trained, viewer):
    project, run = trained
    assert run["model_version"] == 1 and run["progress"] == 1.0
    body = api_for(viewer).get(f"/api/v1/projects/{project.pk}/").json()
    assert body["serving_version"] == 1


def test_it_predicts_with_the_serving_version(api_for, trained, viewer, image_bytes, upload):
    project, run = trained
    response = api_for(viewer).post(
        f"/api/v1/projects/{project.pk}/predict/",
        {"file": upload("q.png", image_bytes(RED, size=(64, 64), seed=999)), "top_k": 2},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["label"] == "red"
    assert [t["label"] for t in body["top"]] == ["red", "blue"]
    assert (body["model_version"], body["model_version_id"]) == (1, run["model_version_id"])
    assert isinstance(body["unknown"], bool) and body["unknown_score"] >= 0


def test_it_predicts_with_a_named_version(api_for, trained, viewer, image_bytes, upload):
    project, run = trained
    response = api_for(viewer).post(
        f"/api/v1/projects/{project.pk}/predict/",
        {
            "file": upload("q.png", image_bytes(BLUE, size=(64, 64), seed=998)),
            "version": run["model_version_id"],
        },
        format="multipart",
    )
    assert response.status_code == 200 and response.json()["label"] == "blue"


def test_it_answers_400_for_a_bad_image(api_for, trained, viewer, upload):
    project, _run = trained
    response = api_for(viewer).post(
        f"/api/v1/projects/{project.pk}/predict/", {"file": upload("q.jpg", b"\x00" * 64)}, format="multipart"
    )
    assert response.status_code == 400
    assert "not an image" in response.json()["detail"]


def test_it_reuses_the_finished_run_for_identical_data(api_for, trained, editor):
    project, run = trained
    again = api_for(editor).post(f"/api/v1/projects/{project.pk}/train/", {"strategy": "linear"})
    assert again.status_code == 200
    assert again.json()["reused"] is True and again.json()["id"] == run["id"]


def test_a_batch_whose_worker_died_is_finished_by_the_next_delivery(
    api_for, trained, viewer, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from webui.jobs import lifecycle
    from webui.serving.batch import run_batch
    from webui.serving.models import BatchPrediction

    project, _run = trained
    api = api_for(viewer)
    with django_capture_on_commit_callbacks(execute=False):
        batch_id = api.post(f"/api/v1/projects/{project.pk}/predictions/", {"scope": "all"}).json()["id"]
    assert lifecycle.claim(BatchPrediction, batch_id) is not None  # a worker took it ...
    with pytest.raises(lifecycle.NotClaimable):
        run_batch(batch_id)  # ... and while it lives, a second delivery leaves it alone
    BatchPrediction.objects.filter(pk=batch_id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    run_batch(batch_id)  # it died: the redelivered task finishes the batch
    batch = api.get(f"/api/v1/predictions/{batch_id}/").json()
    assert batch["status"] == "succeeded" and len(batch["results"]) == project.images.count()
    assert BatchPrediction.objects.get(pk=batch_id).attempts == 2


def test_it_predicts_every_unlabeled_image_in_a_background_batch(
    api_for, trained, viewer, owner, image_bytes, upload, django_capture_on_commit_callbacks
):
    from webui.projects.ingest import ingest_image
    from webui.serving.batch import run_batch

    project, _run = trained
    for seed, colour in ((501, RED), (502, BLUE)):
        ingest_image(project, owner, upload(f"new{seed}.png", image_bytes(colour, size=(64, 64), seed=seed)))
    api = api_for(viewer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = api.post(f"/api/v1/projects/{project.pk}/predictions/", {"scope": "unlabeled"})
    assert queued.status_code == 202, queued.json()
    assert queued.json()["status"] == "queued" and len(callbacks) == 1
    run_batch(queued.json()["id"])
    batch = api.get(f"/api/v1/predictions/{queued.json()['id']}/").json()
    assert batch["status"] == "succeeded" and batch["progress"] == 1.0
    by_image = {row["image_id"]: row["label"] for row in batch["results"]}
    unlabeled = project.images.filter(label__isnull=True).order_by("pk")
    assert [by_image[image.pk] for image in unlabeled] == ["red", "blue"]
