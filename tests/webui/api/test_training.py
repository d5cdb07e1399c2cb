"""Starting and cancelling training over the API; refusals are readable and happen before any ML."""

from __future__ import annotations

import pytest
from django.utils import timezone

from webui.jobs.models import JobStatus
from webui.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_it_refuses_to_train_when_a_label_has_one_image(api_for, labelled_project, editor):
    labelled_project.images.filter(label__name="bees").first().delete()
    response = api_for(editor).post(f"/api/v1/projects/{labelled_project.pk}/train/", {})
    assert response.status_code == 400
    assert response.json() == {"detail": "each label needs at least 2 images; 'bees' has 1"}
    assert not TrainingRun.objects.exists()


def test_it_refuses_to_train_with_fewer_than_two_labels(api_for, project, editor):
    response = api_for(editor).post(f"/api/v1/projects/{project.pk}/train/", {})
    assert response.status_code == 400
    assert "at least two labels" in response.json()["detail"]


def test_it_refuses_an_unknown_backbone(api_for, labelled_project, editor):
    response = api_for(editor).post(f"/api/v1/projects/{labelled_project.pk}/train/", {"backbone": "vgg99"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("unknown backbone 'vgg99'")


def test_it_queues_a_run_after_commit_and_reuses_an_identical_one(
    api_for, labelled_project, editor, django_capture_on_commit_callbacks
):
    api = api_for(editor)
    url = f"/api/v1/projects/{labelled_project.pk}/train/"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = api.post(url, {"strategy": "linear", "seed": 3})
    assert first.status_code == 202
    assert len(callbacks) == 1  # the task is enqueued only once the run row has committed
    run = first.json()
    assert (run["status"], run["reused"], run["model_version"]) == ("queued", False, None)
    assert run["params"] == {"backbone": "efficientnet_lite0", "strategy": "linear", "seed": 3}
    assert set(run) >= {"id", "project", "progress", "message", "metrics", "error", "created", "started_at"}

    again = api.post(url, {"strategy": "linear", "seed": 3})
    assert again.status_code == 200
    assert again.json()["reused"] is True and again.json()["id"] == run["id"]


def test_it_lists_and_shows_runs(api_for, labelled_project, viewer):
    run = TrainingRun.objects.create(project=labelled_project, params={"backbone": "resnet18"})
    api = api_for(viewer)
    assert [r["id"] for r in api.get(f"/api/v1/projects/{labelled_project.pk}/runs/").json()] == [run.pk]
    body = api.get(f"/api/v1/runs/{run.pk}/").json()
    assert (body["project"], body["status"], body["params"]) == (
        labelled_project.pk,
        "queued",
        {"backbone": "resnet18"},
    )


def test_it_names_the_version_a_run_produced(api_for, labelled_project, make_version, viewer):
    run = TrainingRun.objects.create(project=labelled_project, status=JobStatus.SUCCEEDED)
    version = make_version(labelled_project, 1)
    version.run = run
    version.save()
    body = api_for(viewer).get(f"/api/v1/runs/{run.pk}/").json()
    assert (body["model_version"], body["model_version_id"]) == (1, version.pk)


def test_it_cancels_a_queued_run_once(api_for, labelled_project, editor):
    run = TrainingRun.objects.create(project=labelled_project)
    api = api_for(editor)
    response = api.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["detail"] == "this training run is cancelled and cannot be cancelled"


def test_it_asks_a_running_run_to_stop(api_for, labelled_project, editor):
    run = TrainingRun.objects.create(
        project=labelled_project, status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    body = api_for(editor).post(f"/api/v1/runs/{run.pk}/cancel/").json()
    assert body["status"] == "running" and body["message"] == "cancelling…"
    run.refresh_from_db()
    assert run.cancel_requested
