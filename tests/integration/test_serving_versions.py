"""Promotion, refusal of a broken artifact and rollback while predictions are served (rows 24-26).

Two real versions are trained once per module with the engine (v1: red/blue, v2: red/blue/green, so
an answer's label set shows which version produced it); each test stores copies as ModelVersions.
"""

from __future__ import annotations

import hashlib
import shutil
import threading

import pytest
from itest import BLUE, GREEN, RED, png

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUERY = png(RED, 4242)


@pytest.fixture(scope="module")
def trained_artifacts(tmp_path_factory):
    from classifier.data import Sample
    from classifier.pipeline import train_model

    folder = tmp_path_factory.mktemp("artifacts")
    artifacts = []
    for number, colours in ((1, {"red": RED, "blue": BLUE}), (2, {"red": RED, "blue": BLUE, "green": GREEN})):
        samples = []
        for index, (name, colour) in enumerate(colours.items()):
            for i in range(6):
                data = png(colour, 1000 * index + i)
                split = "test" if i == 5 else "train"
                samples.append(
                    Sample(key=hashlib.sha256(data).hexdigest(), source=data, label=name, split=split)
                )
        outcome = train_model(
            samples, folder / f"v{number}", labels=list(colours), strategy="linear", holdout="given"
        )
        artifacts.append(outcome)
    return artifacts


@pytest.fixture
def versions(transactional_db, trained_artifacts, data_dir, django_user_model, settings):
    """Project with v1 then v2 promoted (v2 serves); returns (project, user, v1, v2)."""
    from webui.projects.models import Project
    from webui.serving import services as serving
    from webui.training.artifacts import artifact_prefix, store_artifact
    from webui.training.models import ModelVersion

    # Four threads predict as one user far faster than the API's per-user limit allows.
    settings.PINHOLE_API_PREDICT_RATE = "100000/s"
    serving.evict()
    user = django_user_model.objects.create_user(username="paula", password="pw-paula")
    project = Project.objects.create(name="Serving", owner=user)
    made = []
    for number, outcome in enumerate(trained_artifacts, start=1):
        prefix = artifact_prefix(project.pk, f"v{number}-itest")
        size = store_artifact(outcome.path, prefix)
        made.append(
            ModelVersion.objects.create(
                project=project,
                number=number,
                artifact=prefix,
                backbone=outcome.manifest["backbone"]["name"],
                labels=outcome.manifest["labels"],
                metrics=outcome.metrics,
                size=size,
            )
        )
    for version in made:
        version.promote(user)
    yield project, user, *made
    serving.evict()


def _client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def _predict(client, project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/api/v1/projects/{project.pk}/predict/",
        {"file": SimpleUploadedFile("q.png", QUERY, content_type="image/png"), "top_k": 5},
        format="multipart",
    )


def _expected(project, version) -> dict:
    from webui.serving.services import predict

    return predict(project, QUERY, version_id=version.pk, top_k=5)


@pytest.mark.timeout(180)
def test_it_answers_from_one_complete_version_while_promotions_flip(versions):
    project, user, v1, v2 = versions
    expected = {v.pk: _expected(project, v) for v in (v1, v2)}
    assert {t["label"] for t in expected[v1.pk]["top"]} == {"red", "blue"}
    stop = threading.Event()
    answers, problems = [], []

    def predict_loop():
        from django.db import connection

        client = _client(user)
        try:
            while not stop.is_set():
                response = _predict(client, project)
                if response.status_code != 200:
                    problems.append((response.status_code, response.content[:300]))
                else:
                    answers.append(response.json())
        except Exception as exc:  # collected and asserted below
            problems.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=predict_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for flip in range(20):
            (v1 if flip % 2 == 0 else v2).promote(user)
            stop.wait(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert problems == []
    assert {a["model_version_id"] for a in answers} == {v1.pk, v2.pk}
    for answer in answers:
        want = expected[answer["model_version_id"]]
        assert answer["model_version"] == want["model_version"]
        assert answer["top"] == want["top"], "an answer mixed two versions"


@pytest.mark.timeout(120)
def test_it_refuses_to_promote_a_broken_artifact(versions, data_dir):
    from webui.training.artifacts import artifact_prefix
    from webui.training.models import ModelVersion

    project, user, v1, v2 = versions
    prefix = artifact_prefix(project.pk, "v3-broken")
    shutil.copytree(data_dir / "media" / v1.artifact, data_dir / "media" / prefix)
    model = data_dir / "media" / prefix / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    broken = ModelVersion.objects.create(
        project=project, number=3, artifact=prefix, backbone=v1.backbone, labels=v1.labels, size=1
    )

    client = _client(user)
    response = client.post(f"/api/v1/versions/{broken.pk}/promote/")
    assert response.status_code == 409, response.content
    project.refresh_from_db()
    assert project.serving_version_id == v2.pk
    answer = _predict(client, project)
    assert answer.status_code == 200 and answer.json()["model_version_id"] == v2.pk


@pytest.mark.timeout(120)
def test_it_serves_the_previous_version_after_a_rollback(versions):
    project, user, v1, v2 = versions
    client = _client(user)
    assert _predict(client, project).json()["model_version_id"] == v2.pk

    response = client.post(f"/api/v1/projects/{project.pk}/rollback/")
    assert response.status_code == 200, response.content
    answer = _predict(client, project).json()
    assert answer["model_version_id"] == v1.pk
    assert answer["top"] == _expected(project, v1)["top"]
