"""Data health on the project overview: per-label readiness, imbalance, engine findings."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _fill(project, counts: dict[str, int], unlabeled: int = 0):
    from webui.projects.models import Image

    rows, n = [], 0
    for name, count in counts.items():
        label = project.labels.create(name=name)
        for _ in range(count):
            rows.append(
                Image(
                    project=project,
                    file=f"x/{n}.png",
                    sha256=f"{n:064x}",
                    width=1,
                    height=1,
                    format="PNG",
                    label=label,
                )
            )
            n += 1
    for _ in range(unlabeled):
        rows.append(
            Image(project=project, file=f"x/{n}.png", sha256=f"{n:064x}", width=1, height=1, format="PNG")
        )
        n += 1
    Image.objects.bulk_create(rows)


def test_it_says_which_labels_are_ready(client_for, project, viewer):
    _fill(project, {"ants": 40, "bees": 12, "wasps": 5, "moths": 1}, unlabeled=3)
    response = client_for(viewer).get(reverse("projects:detail", args=[project.pk]))
    health = response.context["health"]
    rows = {r["label"].name: (r["count"], r["status"]) for r in health["rows"]}
    # 40 ants are not "enough to adapt the network" while the smallest label has 1: training would
    # pick the linear head (the strategy rule decides, not the label alone).
    assert rows == {"ants": (40, "ok"), "bees": (12, "ok"), "wasps": (5, "warn"), "moths": (1, "bad")}
    assert health["ready_labels"] == 3 and health["can_train"] is True
    assert health["imbalance"] == 40.0
    body = response.content.decode()
    assert "needs 1 more to train" in body and "Unbalanced" in body and "40×" in body
    assert "3 images without a label" in body
    assert response.context["counts"] == {"total": 61, "unlabeled": 3}


def test_it_says_enough_to_adapt_only_when_training_would_adapt(client_for, project, viewer):
    _fill(project, {"ants": 70, "bees": 30})
    health = client_for(viewer).get(reverse("projects:detail", args=[project.pk])).context["health"]
    rows = {r["label"].name: r["status"] for r in health["rows"]}
    assert rows == {"ants": "great", "bees": "great"} and health["imbalance"] is None


def test_it_says_when_training_is_not_possible_yet(client_for, project, owner):
    _fill(project, {"ants": 3, "bees": 1})
    response = client_for(owner).get(reverse("projects:detail", args=[project.pk]))
    assert response.context["health"]["can_train"] is False
    assert response.context["health"]["imbalance"] is None  # 3:1 is not more than 3
    assert "not ready yet" in response.content.decode()


def test_it_shows_an_empty_project_a_way_to_start(client_for, project, owner):
    body = client_for(owner).get(reverse("projects:detail", args=[project.pk])).content.decode()
    assert "No pictures yet" in body and reverse("projects:upload", args=[project.pk]) in body


def test_it_reports_near_duplicates_and_unreadable_images(client_for, project, owner, make_version):
    from webui.jobs.models import JobStatus
    from webui.training.models import TrainingRun

    _fill(project, {"ants": 2, "bees": 2})
    a, b = (f"{0:064x}", f"{1:064x}")
    version = make_version(project, 1)
    version.metrics = {"accuracy": 0.75, "near_duplicates": [{"a": a, "b": b, "similarity": 0.991}]}
    version.save()
    version.promote(owner)
    TrainingRun.objects.create(
        project=project,
        status=JobStatus.SUCCEEDED,
        metrics={"skipped": [{"key": f"{3:064x}", "error": "image is incomplete"}]},
    )
    response = client_for(owner).get(reverse("projects:detail", args=[project.pk]))
    health = response.context["health"]
    found = health["findings"]
    assert found["duplicate_count"] == 1 and found["duplicates"][0]["a"].sha256 == a
    assert health["failed_count"] == 1 and health["failed"][0]["error"] == "image is incomplete"
    body = response.content.decode()
    assert "Copies of the same photo" in body and "99% alike" in body
    assert "Could not be read" in body and "image is incomplete" in body
    assert "75%" in body and "v1 serving" in body


def test_it_lists_what_the_serving_version_found_with_one_click_fixes(
    client_for, project, owner, viewer, make_version
):
    _fill(project, {"ants": 3, "bees": 3})
    wrong, odd = f"{0:064x}", f"{4:064x}"  # an "ants" image that looks like bees; a bee unlike the rest
    version = make_version(project, 1)
    version.metrics = {
        "accuracy": 0.9,
        "mislabeled": [{"key": wrong, "given": "ants", "predicted": "bees", "confidence": 0.93}],
        "outliers": [{"key": odd, "label": "bees", "score": 1.7}],
    }
    version.save()
    version.promote(owner)
    image = project.images.get(sha256=wrong)
    relabel = reverse("training:relabel", args=[project.pk, image.pk])
    delete = reverse("training:delete-image", args=[project.pk, project.images.get(sha256=odd).pk])

    response = client_for(owner).get(reverse("projects:detail", args=[project.pk]))
    found = response.context["health"]["findings"]
    assert (found["mislabeled_count"], found["duplicate_count"], found["outlier_count"]) == (1, 0, 1)
    body = response.content.decode()
    assert "What v1 noticed in the data" in body and "Photos that may be labelled wrong" in body
    assert "Labelled <strong>ants</strong>, looks like <strong>bees</strong> (93%)" in body
    assert "Label it bees" in body and relabel in body
    assert "Photos unlike the rest" in body and delete in body

    # Someone who may only look sees the findings but no forms.
    body = client_for(viewer).get(reverse("projects:detail", args=[project.pk])).content.decode()
    assert "Photos that may be labelled wrong" in body and relabel not in body

    # The fix works from the overview, comes back to it, and the finding is gone from both pages.
    bees = project.labels.get(name="bees")
    overview = reverse("projects:detail", args=[project.pk])
    answer = client_for(owner).post(relabel, {"label": bees.pk, "next": overview})
    assert answer.status_code == 302 and answer.url == overview
    image.refresh_from_db()
    assert image.label_id == bees.pk
    response = client_for(owner).get(overview)
    assert response.context["health"]["findings"]["mislabeled_count"] == 0
    assert "Photos that may be labelled wrong" not in response.content.decode()
    results = client_for(owner).get(reverse("training:version", args=[project.pk, 1])).content.decode()
    assert "Photos that may be labelled wrong" not in results and "Photos unlike the rest" in results
