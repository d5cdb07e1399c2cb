""" "Label next": a worker orders the unlabeled pictures by what a label would teach the serving model,
and the label page and the API list them in that order."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytest.importorskip("classifier.pipeline")

from tests.helpers import BLUE, RED, photo, png

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PURPLE = (125, 40, 125)  # halfway between the two labels: the model cannot be sure


@pytest.fixture
def ordered(trained_project, editor, django_capture_on_commit_callbacks):
    """The trained red-vs-blue project with six new unlabeled pictures (four near-copies of one red
    photo, a blue, a purple) once a worker has looked at them: {name: image}."""
    from webui.projects.ingest import ingest_image
    from webui.serving import suggestions

    near_copies = {f"red{i}": png((RED[0] - 2 * i, RED[1], RED[2]), seed=700) for i in range(4)}
    others = {"blue": png(BLUE, seed=701), "purple": png(PURPLE, seed=702)}
    images = {
        name: ingest_image(trained_project, editor, photo(data, f"{name}.png")).image
        for name, data in {**near_copies, **others}.items()
    }
    with django_capture_on_commit_callbacks(execute=False):
        job = suggestions.request_refresh(trained_project.serving_version)
    suggestions.run_refresh(job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return trained_project, images


def _api(user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(user)
    return api


def test_the_worker_ranks_every_unlabeled_picture_once_and_spreads_the_first_ones(ordered):
    from webui.serving.models import Suggestion

    project, images = ordered
    ranks = dict(
        Suggestion.objects.filter(version=project.serving_version).values_list("sha256", "next_rank")
    )
    by_name = {name: ranks[image.sha256] for name, image in images.items()}
    assert sorted(by_name.values()) == list(range(6))
    order = sorted(by_name, key=by_name.get)
    # One of the near-copies is worth a label; once it is chosen, the others teach nothing new.
    assert [name.startswith("red") for name in order].count(True) == 4
    assert all(name.startswith("red") for name in order[3:]), order
    assert {"blue", "purple"} <= set(order[:3]), order
    uncertainty = dict(
        Suggestion.objects.filter(version=project.serving_version).values_list("sha256", "uncertainty")
    )
    assert uncertainty[images["purple"].sha256] > uncertainty[images["blue"].sha256]


def test_the_api_and_the_label_page_list_them_in_that_order(ordered, editor, client_for):
    from webui.serving.models import Suggestion

    project, images = ordered
    ranks = dict(
        Suggestion.objects.filter(version=project.serving_version).values_list("sha256", "next_rank")
    )
    expected = [i.pk for i in sorted(images.values(), key=lambda i: ranks[i.sha256])]
    url = f"/api/v1/projects/{project.pk}/images/"
    body = _api(editor).get(url, {"unlabeled": "true", "order": "next"}).json()
    assert [row["id"] for row in body["results"]] == expected
    page = client_for(editor).get(reverse("projects:label", args=[project.pk]), {"show": "next"})
    assert [tile.pk for tile in page.context["tiles"]] == expected
    assert "Label a few dozen from the top" in page.content.decode()
    # Labelled pictures leave the order; the rest keep theirs.
    from webui.projects.labels import set_label

    set_label(project.images.filter(pk=expected[0]), project.labels.get(name="red"))
    body = _api(editor).get(url, {"unlabeled": "true", "order": "next"}).json()
    assert [row["id"] for row in body["results"]] == expected[1:]


def test_pictures_not_ordered_yet_come_last_and_a_worker_is_asked(
    ordered, editor, django_capture_on_commit_callbacks
):
    from webui.projects.ingest import ingest_image

    project, images = ordered
    late = ingest_image(project, editor, photo(png(BLUE, 900), "late.png")).image
    with django_capture_on_commit_callbacks(execute=False) as queued:
        body = _api(editor).get(f"/api/v1/projects/{project.pk}/images/", {"order": "next", "unlabeled": "1"})
    ids = [row["id"] for row in body.json()["results"]]
    assert ids[-1] == late.pk and len(ids) == 7
    assert len(queued) == 1 and project.suggestion_refreshes.filter(status="queued").count() == 1


def test_order_next_needs_a_model_and_order_takes_two_values(project, editor):
    url = f"/api/v1/projects/{project.pk}/images/"
    response = _api(editor).get(url, {"order": "next"})
    assert response.status_code == 400 and "train one first" in response.json()["detail"]
    response = _api(editor).get(url, {"order": "sideways"})
    assert response.status_code == 400 and "newest or next" in response.json()["detail"]
    assert _api(editor).get(url, {"order": "newest"}).status_code == 200
