"""Multi-label projects through the site and the API: label sets (with "none of these"), training a
version with a head per label, answers per label, per-label thresholds."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.helpers import photo, shapes

pytestmark = pytest.mark.django_db

KINDS = [(False, False), (True, False), (False, True), (True, True)]


def _names(red: bool, blue: bool) -> list[str]:
    return [name for name, on in (("red", red), ("blue", blue)) if on]


@pytest.fixture
def multi_project(owner, editor, viewer):
    from webui.projects.models import Membership, Project, Role, TaskType

    project = Project.objects.create(name="Shapes", owner=owner, task_type=TaskType.MULTI_LABEL)
    Membership.objects.create(project=project, user=editor, role=Role.EDITOR)
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    return project


def _upload_all(api, project, n_each: int = 5):
    url = f"/api/v1/projects/{project.pk}/images/"
    for i in range(n_each):
        for red, blue in KINDS:
            data = shapes(red, blue, seed=100 * i + 2 * red + blue)
            body = {"files": [photo(data, f"s{i}{int(red)}{int(blue)}.jpg")]}
            names = _names(red, blue)
            if names:
                body["labels"] = names
            response = api.post(url, body, format="multipart")
            assert response.status_code == 201, response.json()
            if not names:  # none of them, said by a person
                image_id = response.json()["images"][0]["id"]
                assert (
                    api.patch(f"/api/v1/images/{image_id}/", {"labels": []}, format="json").status_code == 200
                )


def test_a_multi_label_project_is_created_over_the_api(api_for, owner):
    response = api_for(owner).post(
        "/api/v1/projects/",
        {"name": "Shelf", "labels": ["cola", "chips"], "task_type": "multi_label"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["task_type"] == "multi_label"
    bad = api_for(owner).post("/api/v1/projects/", {"name": "X", "task_type": "several"}, format="json")
    assert bad.status_code == 400


def test_label_sets_none_of_these_and_unlabelled_differ(api_for, multi_project, editor):
    api = api_for(editor)
    url = f"/api/v1/projects/{multi_project.pk}/images/"
    sent = api.post(
        url, {"files": [photo(shapes(True, True, 1), "a.jpg")], "labels": ["red", "blue"]}, format="multipart"
    )
    image = sent.json()["images"][0]
    assert image["labels"] == ["red", "blue"] and image["labelled"] is True
    plain = api.post(url, {"files": [photo(shapes(False, False, 2), "b.jpg")]}, format="multipart").json()[
        "images"
    ][0]
    assert plain["labels"] is None and plain["labelled"] is False

    detail = f"/api/v1/images/{plain['id']}/"
    assert api.patch(detail, {"labels": []}, format="json").json()["labels"] == []
    assert api.patch(detail, {"labels": ["blue"]}, format="json").json()["labels"] == ["blue"]
    assert api.patch(detail, {"labels": None}, format="json").json()["labelled"] is False
    assert api.patch(detail, {"label": "red"}, format="json").json()["labels"] == ["red"]
    both = api.patch(detail, {"label": "red", "labels": ["blue"]}, format="json")
    assert both.status_code == 400

    assert api.get(url, {"label": "blue"}).json()["count"] == 1
    assert api.get(url, {"unlabeled": "true"}).json()["count"] == 0


def test_a_single_label_project_refuses_label_sets(api_for, project, editor):
    api = api_for(editor)
    url = f"/api/v1/projects/{project.pk}/images/"
    refused = api.post(
        url,
        {"files": [photo(shapes(True, False, 3), "a.jpg")], "labels": ["red", "blue"]},
        format="multipart",
    )
    assert refused.status_code == 400 and "one label per picture" in refused.json()["detail"]


def test_deleting_a_label_keeps_the_pictures_other_labels(api_for, multi_project, editor):
    api = api_for(editor)
    url = f"/api/v1/projects/{multi_project.pk}/images/"
    image = api.post(
        url, {"files": [photo(shapes(True, True, 4), "a.jpg")], "labels": ["red", "blue"]}, format="multipart"
    )
    red = multi_project.labels.get(name="red")
    assert api.delete(f"/api/v1/labels/{red.pk}/").status_code == 204
    after = api.get(f"/api/v1/images/{image.json()['images'][0]['id']}/").json()
    assert after["labels"] == ["blue"]


def test_a_single_label_pictures_label_deleted_is_unlabelled_again(api_for, project, editor):
    api = api_for(editor)
    url = f"/api/v1/projects/{project.pk}/images/"
    api.post(url, {"files": [photo(shapes(True, False, 5), "a.jpg")], "label": "red"}, format="multipart")
    assert api.get(url, {"unlabeled": "true"}).json()["count"] == 0
    api.delete(f"/api/v1/labels/{project.labels.get(name='red').pk}/")
    assert api.get(url, {"unlabeled": "true"}).json()["count"] == 1


def test_training_refuses_a_label_without_enough_pictures_on_both_sides(multi_project, editor):
    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label
    from webui.training.services import TrainingRefused, start_training

    red = get_or_create_label(multi_project, "red")
    for i in range(3):
        ingest_image(multi_project, editor, photo(shapes(True, False, i), f"{i}.jpg"), labels=[red])
    with pytest.raises(TrainingRefused, match="'red' has 0 without it"):
        start_training(multi_project, editor, {"strategy": "linear"})


@pytest.fixture
def trained_multi(multi_project, editor, api_for, media_root, django_capture_on_commit_callbacks):
    pytest.importorskip("classifier.multilabel_train")
    from webui.training.services import run_training, start_training

    _upload_all(api_for(editor), multi_project)
    with django_capture_on_commit_callbacks(execute=False):
        run = start_training(multi_project, editor, {"strategy": "linear"})
    run_training(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    multi_project.refresh_from_db()
    return multi_project


def test_a_trained_version_answers_each_label_and_serves_set_thresholds(
    trained_multi, api_for, editor, viewer
):
    version = trained_multi.serving_version
    assert version.metrics["task_type"] == "multi_label"
    assert version.metrics["mean_average_precision"] >= 0.8
    assert [row["label"] for row in version.metrics["per_label"]] == ["red", "blue"]
    assert len(version.learned) == 20 and any(entry[1] == [] for entry in version.learned)

    api = api_for(viewer)
    url = f"/api/v1/projects/{trained_multi.pk}/predict/"
    answer = api.post(url, {"file": photo(shapes(True, True, 999), "q.jpg")}, format="multipart").json()
    assert [row["label"] for row in answer["labels"]] == ["red", "blue"]
    assert all(row["present"] for row in answer["labels"]) and answer["threshold"] is None
    assert {"unknown", "sure", "model_version"} <= set(answer)

    set_url = f"/api/v1/versions/{version.pk}/threshold/"
    assert api_for(editor).post(set_url, {"threshold": 0.5}, format="json").status_code == 400
    assert api_for(editor).post(set_url, {"thresholds": {"green": 0.5}}, format="json").status_code == 400
    saved = api_for(editor).post(set_url, {"thresholds": {"red": 0.99}}, format="json")
    assert saved.status_code == 200 and saved.json()["label_thresholds"] == {"red": 0.99}
    again = api.post(url, {"file": photo(shapes(True, True, 999), "q.jpg")}, format="multipart").json()
    present = {row["label"]: row["present"] for row in again["labels"]}
    assert present["blue"] and (not present["red"] or again["labels"][0]["probability"] >= 0.99)
    assert trained_multi.serving_events.filter(action="threshold", version=version).exists()


def test_the_label_page_toggles_labels_on_pictures(trained_multi, client_for, editor):
    client = client_for(editor)
    page = client.get(reverse("projects:label", args=[trained_multi.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "None of these" in html and "data-toggle-label" in html and "Accept suggestions" not in html
    red = trained_multi.labels.get(name="red")
    image = trained_multi.images.filter(labels__isnull=True).labelled().first()
    apply = reverse("projects:label-apply", args=[trained_multi.pk])
    json_headers = {"HTTP_ACCEPT": "application/json"}
    body = client.post(
        apply, {"images": str(image.pk), "label": red.pk, "present": "1"}, **json_headers
    ).json()
    assert body["images"] == {str(image.pk): [red.pk]}
    body = client.post(
        apply, {"images": str(image.pk), "label": red.pk, "present": "0"}, **json_headers
    ).json()
    assert body["images"] == {str(image.pk): []}
    body = client.post(apply, {"images": str(image.pk), "label": "unlabel"}, **json_headers).json()
    assert body["images"] == {str(image.pk): None}
    none = client.get(reverse("projects:label", args=[trained_multi.pk]), {"show": "none"})
    assert none.context["counts"]["none"] == 4 and len(none.context["tiles"]) == 4


def test_the_create_page_offers_both_kinds(client_for, owner):
    client = client_for(owner)
    page = client.get(reverse("projects:create"))
    assert "multi_label" in page.content.decode()
    client.post(reverse("projects:create"), {"name": "Shelf", "task_type": "multi_label", "labels": "a, b"})
    from webui.projects.models import Project

    assert Project.objects.get(name="Shelf").multi_label


def _label_sets(project) -> dict[str, list[str] | None]:
    return {
        image.sha256: [lab.name for lab in image.labels.all()] if image.is_labelled else None
        for image in project.images.prefetch_related("labels")
    }


def test_a_multi_label_dataset_goes_out_with_manifests_and_comes_back(api_for, multi_project, editor, owner):
    import csv
    import io
    import json
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.imports import run_zip_import, start_zip_import
    from webui.projects.models import Project, TaskType

    api = api_for(editor)
    _upload_all(api, multi_project, n_each=2)
    api.post(
        f"/api/v1/projects/{multi_project.pk}/images/",
        {"files": [photo(shapes(True, False, 77), "unlabelled.jpg")]},
        format="multipart",
    )
    response = api.get(f"/api/v1/projects/{multi_project.pk}/dataset/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    lines = [json.loads(line) for line in archive.read("labels.jsonl").decode().splitlines()]
    assert len(rows) == len(lines) == 8  # the unlabelled photo is not part of the dataset
    assert all(row["file"].startswith("images/") for row in rows)
    assert sorted(row["labels"] for row in rows) == sorted(["", "red", "blue", "red;blue"] * 2)
    assert [line["labels"] for line in lines] == [
        row["labels"].split(";") if row["labels"] else [] for row in rows
    ]

    copy = Project.objects.create(name="Copy", owner=owner, task_type=TaskType.MULTI_LABEL)
    job = start_zip_import(copy, owner, SimpleUploadedFile("d.zip", archive.fp.getvalue()))
    run_zip_import(job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and not job.rejected, (job.message, job.rejected)
    original = {k: v for k, v in _label_sets(multi_project).items() if v is not None}
    assert _label_sets(copy) == original


def test_a_broken_manifest_is_reported_and_the_folders_label_instead(owner):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.imports import run_zip_import, start_zip_import
    from webui.projects.models import Project, TaskType

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("red/a.jpg", shapes(True, False, 1))
        archive.writestr("labels.jsonl", "{not json\n")
    project = Project.objects.create(name="P", owner=owner, task_type=TaskType.MULTI_LABEL)
    job = start_zip_import(project, owner, SimpleUploadedFile("d.zip", buffer.getvalue()))
    run_zip_import(job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert job.rejected == [
        {"name": "labels manifest", "error": "labels.jsonl line 1 is not JSON; folders give the labels"}
    ]
    assert list(_label_sets(project).values()) == [["red"]]


def test_the_results_page_shows_each_labels_scores_and_saves_its_threshold(trained_multi, client_for, editor):
    version = trained_multi.serving_version
    url = reverse("training:version", args=[trained_multi.pk, version.number])
    page = client_for(editor).get(url)
    html = page.content.decode()
    ml = page.context["report"]["multi_label"]
    assert "Mean average precision" in html and f"{ml['map']}%" in html
    assert [row["name"] for row in ml["labels"]] == ["red", "blue"]
    assert ml["scored"] == version.images_scored
    saved = client_for(editor).post(
        reverse("training:threshold", args=[trained_multi.pk, version.number]),
        {"t0": "80", "t1": str(ml["labels"][1]["trained"])},
    )
    assert saved.status_code == 302
    version.refresh_from_db()
    assert version.label_thresholds == {"red": 0.8}  # blue left at its trained value
    again = client_for(editor).get(url).context["report"]["multi_label"]["labels"][0]
    assert again["threshold"] == 80 and again["changed"]


def test_a_share_page_answers_each_label_and_offers_no_single_label_correction(trained_multi, owner, client):
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(trained_multi, owner)
    response = client.post(
        reverse("serving:public_predict", args=[token]),
        {"file": photo(shapes(False, True, 500), "q.jpg")},
    )
    body = response.json()
    assert [row["label"] for row in body["labels"]] == ["red", "blue"] and "feedback" not in body


def test_the_admin_edits_a_pictures_label_set(multi_project, admin_client, editor):
    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label

    red, blue = get_or_create_label(multi_project, "red"), get_or_create_label(multi_project, "blue")
    image = ingest_image(multi_project, editor, photo(shapes(True, False, 8), "a.jpg"), labels=[red]).image
    url = reverse("admin:projects_image_change", args=[image.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="labels"' in page and 'name="label"' not in page
    response = admin_client.post(url, {"original_name": "a.jpg", "labels": [blue.pk], "split": "auto"})
    assert response.status_code == 302
    assert _label_sets(multi_project) == {image.sha256: ["blue"]}
    listing = admin_client.get(reverse("admin:projects_image_changelist")).content.decode()
    assert "blue" in listing


def test_a_batch_prediction_answers_each_label(trained_multi, editor, django_capture_on_commit_callbacks):
    from webui.serving.batch import run_batch, start_batch

    with django_capture_on_commit_callbacks(execute=False):
        batch = start_batch(trained_multi, editor, scope="all")
    run_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.status == "succeeded" and len(batch.results) == 20
    answer = batch.results[0]
    assert [row["label"] for row in answer["labels"]] == ["red", "blue"] and isinstance(answer["sure"], bool)
    right = sum(
        {row["label"] for row in result["labels"] if row["present"]} == set(truth)
        for result, truth in zip(
            batch.results,
            [
                [lab.name for lab in trained_multi.images.get(pk=r["image_id"]).labels.all()]
                for r in batch.results
            ],
            strict=True,
        )
    )
    assert right >= 16  # the pictures it learned from


def test_label_next_orders_unlabelled_pictures_for_a_multi_label_version(
    trained_multi, api_for, editor, django_capture_on_commit_callbacks
):
    from webui.serving.models import Suggestion
    from webui.serving.suggestions import request_refresh, run_refresh

    api = api_for(editor)
    url = f"/api/v1/projects/{trained_multi.pk}/images/"
    for i, (red, blue) in enumerate(KINDS):
        api.post(url, {"files": [photo(shapes(red, blue, 700 + i), f"new{i}.jpg")]}, format="multipart")
    version = trained_multi.serving_version
    with django_capture_on_commit_callbacks(execute=False):
        job = request_refresh(version, editor)
    run_refresh(job.pk)
    ranked = Suggestion.objects.filter(version=version).exclude(next_rank=None)
    assert ranked.count() == 4
    assert all(0 <= s.uncertainty <= 1 for s in ranked)
    listed = api.get(url, {"unlabeled": "true", "order": "next"}).json()["results"]
    assert len(listed) == 4
    page = api_for(editor).get(reverse("projects:label", args=[trained_multi.pk]), {"show": "next"})
    assert len(page.context["tiles"]) == 4


def test_the_versions_overview_and_compare_pages_speak_of_mean_average_precision(
    trained_multi, api_for, client_for, editor, django_capture_on_commit_callbacks
):
    from webui.training.services import run_training, start_training

    image = trained_multi.images.labelled().filter(labels__isnull=True).first()
    api_for(editor).patch(f"/api/v1/images/{image.pk}/", {"labels": ["red"]}, format="json")
    with django_capture_on_commit_callbacks(execute=False):
        run = start_training(trained_multi, editor, {"strategy": "linear"})
    run_training(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    client = client_for(editor)
    versions = client.get(reverse("training:versions", args=[trained_multi.pk])).content.decode()
    assert "Mean average precision" in versions and "Every label right" in versions
    overview = client.get(reverse("projects:detail", args=[trained_multi.pk])).content.decode()
    assert "mean average precision of v" in overview
    compare = client.get(reverse("training:compare", args=[trained_multi.pk]), {"a": 1, "b": 2})
    assert [row["name"] for row in compare.context["overall"]][0] == "Mean average precision"
    assert compare.context["overall"][0]["b"] is not None
    assert [row["label"] for row in compare.context["per_label"]] == ["red", "blue"]


def test_the_same_label_twice_in_a_set_is_one_label(api_for, multi_project, editor):
    api = api_for(editor)
    url = f"/api/v1/projects/{multi_project.pk}/images/"
    sent = api.post(
        url, {"files": [photo(shapes(True, False, 9), "a.jpg")], "labels": ["red", "RED"]}, format="multipart"
    )
    assert sent.status_code == 201 and sent.json()["images"][0]["labels"] == ["red"]
    detail = f"/api/v1/images/{sent.json()['images'][0]['id']}/"
    again = api.patch(detail, {"labels": ["blue", "Blue", "red"]}, format="json")
    assert again.status_code == 200 and sorted(again.json()["labels"]) == ["blue", "red"]
    for bad in ({"labels": "red"}, {"labels": [""]}, {"labels": ["x" * 101]}, {"labels": [1, {"a": 2}]}):
        response = api.patch(detail, bad, format="json")
        assert response.status_code == 400, (bad, response.content)


def test_data_health_counts_pictures_with_and_without_each_label(api_for, client_for, multi_project, editor):
    api = api_for(editor)
    url = f"/api/v1/projects/{multi_project.pk}/images/"
    for i in range(3):
        api.post(
            url,
            {"files": [photo(shapes(True, False, 40 + i), "r.jpg")], "labels": ["red"]},
            format="multipart",
        )
    api.post(
        url, {"files": [photo(shapes(False, True, 50), "b.jpg")], "labels": ["blue"]}, format="multipart"
    )
    page = client_for(editor).get(reverse("projects:detail", args=[multi_project.pk]))
    rows = {row["label"].name: row for row in page.context["health"]["rows"]}
    assert (rows["red"]["count"], rows["red"]["status"]) == (3, "bad")  # only 1 without it
    assert rows["red"]["note"] == "needs 1 more without it to train"
    assert rows["blue"]["note"] == "needs 1 more with it to train"
    assert not page.context["health"]["can_train"]
    assert "2 without it" in page.content.decode()


def test_suggested_label_sets_are_shown_and_taken_when_sure_of_every_label(
    trained_multi, api_for, client_for, editor, django_capture_on_commit_callbacks
):
    from webui.serving.models import Suggestion
    from webui.serving.suggestions import request_refresh, run_refresh

    api = api_for(editor)
    url = f"/api/v1/projects/{trained_multi.pk}/images/"
    for i, (red, blue) in enumerate(KINDS * 2):
        api.post(url, {"files": [photo(shapes(red, blue, 800 + i), f"new{i}.jpg")]}, format="multipart")
    version = trained_multi.serving_version
    with django_capture_on_commit_callbacks(execute=False):
        job = request_refresh(version, editor)
    run_refresh(job.pk)
    rows = {row.sha256: row for row in Suggestion.objects.filter(version=version)}
    assert all(set(row.probabilities) == {"red", "blue"} for row in rows.values())

    client = client_for(editor)
    page = client.get(reverse("projects:label", args=[trained_multi.pk]), {"show": "suggested"})
    tiles = page.context["tiles"]
    assert tiles and all("text" in tile.suggestion for tile in tiles)
    sureness = [tile.suggestion["sureness"] for tile in tiles]
    assert sureness == sorted(sureness, reverse=True)

    # Taking one suggestion from the page: exactly its set.
    first = tiles[0]
    apply = reverse("projects:label-apply", args=[trained_multi.pk])
    ids = "" if first.suggestion["ids"] == "none" else first.suggestion["ids"]
    body = client.post(
        apply, {"images": str(first.pk), "label": "set", "labels": ids}, HTTP_ACCEPT="application/json"
    ).json()
    assert body["images"][str(first.pk)] == [int(i) for i in ids.split(",") if i]

    # Accepting in bulk: only where every label is at least that sure, either way.
    bar = 0.55
    client.post(reverse("projects:accept-suggestions", args=[trained_multi.pk]), {"threshold": "55"})
    for image in trained_multi.images.filter(original_name__startswith="new").prefetch_related("labels"):
        row = rows[image.sha256]
        if image.pk == first.pk:
            continue
        if row.sureness() >= bar and not row.unknown:
            assert sorted(lab.name for lab in image.labels.all()) == sorted(row.present), image
        else:
            assert not image.is_labelled


def test_an_unsure_multi_label_answer_is_reviewed_into_a_label_set(trained_multi, client_for, editor):
    from webui.serving import records
    from webui.serving.models import PredictionRecord

    version = trained_multi.serving_version
    rows = []
    for seed in (901, 902):
        result = {
            "label": "red",
            "probability": 0.55,
            "top": [{"label": "red", "probability": 0.55}, {"label": "blue", "probability": 0.2}],
            "labels": [
                {"label": "red", "probability": 0.55, "present": True},
                {"label": "blue", "probability": 0.2, "present": False},
            ],
            "unknown": False,
            "sure": False,
            "threshold": None,
            "model_version": version.number,
            "model_version_id": version.pk,
        }
        rows.append(
            records.record(trained_multi, result, PredictionRecord.Source.TRY, shapes(True, True, seed))
        )
    assert all(row.review == "queued" and row.label == "red" for row in rows)
    client = client_for(editor)
    page = client.get(reverse("serving:review", args=[trained_multi.pk])).content.decode()
    assert 'type="checkbox" name="labels" value="red" checked' in page
    decide = reverse("serving:review-decide", args=[trained_multi.pk, rows[0].pk])
    response = client.post(decide, {"labels": ["red", "blue"]}, follow=True)
    assert "Added to the project as “red, blue”" in response.content.decode()
    rows[0].refresh_from_db()
    assert rows[0].review == "relabelled"
    assert sorted(lab.name for lab in rows[0].image.labels.all()) == ["blue", "red"]
    client.post(reverse("serving:review-decide", args=[trained_multi.pk, rows[1].pk]), {"none": "1"})
    rows[1].refresh_from_db()
    assert rows[1].image.is_labelled and not rows[1].image.labels.exists()


def test_the_train_page_counts_pictures_with_each_label_and_offers_only_linear(
    api_for, client_for, multi_project, editor
):
    from webui.training.services import TrainingRefused, start_training

    api = api_for(editor)
    url = f"/api/v1/projects/{multi_project.pk}/images/"
    for i in range(3):
        api.post(
            url,
            {"files": [photo(shapes(True, True, 60 + i), "rb.jpg")], "labels": ["red", "blue"]},
            format="multipart",
        )
    page = client_for(editor).get(reverse("training:train", args=[multi_project.pk]))
    counts = {label.name: label.n for label in page.context["labels"]}
    assert counts == {"red": 3, "blue": 3}
    html = page.content.decode()
    assert re.search(r'value="full"\s+disabled', html) and "needs more" in html  # none without either label
    with pytest.raises(TrainingRefused, match="train linear heads"):
        start_training(multi_project, editor, {"strategy": "partial"})
