"""Train, results, versions and comparison pages: access, starting and cancelling, promotion, relabelling."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.helpers import png

pytestmark = pytest.mark.django_db

METRICS = {
    "accuracy": 0.95,
    "balanced_accuracy": 0.9,
    "top_k_accuracy": {"1": 0.95},
    "ece": 0.04,
    "labels": ["ants", "bees"],
    "per_class": {
        "ants": {"precision": 0.9, "recall": 1.0, "f1": 0.947, "support": 9},
        "bees": {"precision": 1.0, "recall": 0.8, "f1": 0.889, "support": 5},
    },
    "confusion_matrix": [[9, 0], [1, 4]],
    "evaluation": "frozen test split of 14 images",
    "strategy": "linear",
    "strategy_reason": "few images per label (7 on average)",
    "n_train": 56,
    "n_val": 14,
    "mislabeled": [],
    "near_duplicates": [],
    "leakage": [],
    "skipped": [],
    "promotion": {"promoted": True, "reason": "the first version of this project"},
}


@pytest.fixture
def labelled(project, owner, media_root):
    """Two labels with three images each; every image pinned to the test split."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label

    images = []
    for index, (name, colour) in enumerate([("ants", (200, 40, 40)), ("bees", (40, 40, 200))]):
        label = get_or_create_label(project, name)
        for seed in range(3):
            data = png(colour, seed=index * 10 + seed)
            upload = SimpleUploadedFile(f"{name}{seed}.png", data)
            images.append(ingest_image(project, owner, upload, label=label).image)
    project.images.update(split="test")
    return project


@pytest.fixture
def version(labelled, make_version, owner):
    from webui.training.models import ModelVersion

    v = make_version(labelled, 1)
    ModelVersion.objects.filter(pk=v.pk).update(metrics=METRICS, strategy="linear")
    v.refresh_from_db()
    v.promote(owner)
    return v


def page_urls(project, number=1, run_id=1):
    return [
        reverse("training:train", args=[project.pk]),
        reverse("training:run_status", args=[project.pk, run_id]),
        reverse("training:versions", args=[project.pk]),
        reverse("training:version", args=[project.pk, number]),
        reverse("training:compare", args=[project.pk]),
    ]


def post_urls(project, number=1, run_id=1, image_id=1):
    return [
        reverse("training:train", args=[project.pk]),
        reverse("training:cancel", args=[project.pk, run_id]),
        reverse("training:promote", args=[project.pk, number]),
        reverse("training:delete", args=[project.pk, number]),
        reverse("training:rollback", args=[project.pk]),
        reverse("training:relabel", args=[project.pk, image_id]),
    ]


@pytest.fixture
def run(labelled):
    from webui.jobs.models import JobStatus
    from webui.training.models import TrainingRun

    return TrainingRun.objects.create(
        project=labelled, status=JobStatus.RUNNING, progress=0.49, message="extracting 120/245"
    )


def test_it_sends_anonymous_visitors_to_sign_in(client, version, run):
    image = version.project.images.first()
    urls = page_urls(version.project, run_id=run.pk)
    urls += post_urls(version.project, run_id=run.pk, image_id=image.pk)
    for url in urls:
        response = (
            client.post(url) if url in post_urls(version.project, 1, run.pk, image.pk) else client.get(url)
        )
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_it_hides_every_page_from_strangers(client_for, version, run, stranger):
    c = client_for(stranger)
    image = version.project.images.first()
    for url in page_urls(version.project, run_id=run.pk):
        assert c.get(url).status_code == 404, url
    for url in post_urls(version.project, run_id=run.pk, image_id=image.pk):
        assert c.post(url).status_code == 404, url


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_it_shows_every_page_to_members(request, client_for, version, run, who):
    c = client_for(request.getfixturevalue(who))
    for url in page_urls(version.project, run_id=run.pk):
        assert c.get(url).status_code == 200, url


def test_it_hides_controls_from_viewers_and_refuses_their_changes(client_for, version, run, viewer, editor):
    project = version.project
    image = project.images.first()
    c = client_for(viewer)
    body = c.get(reverse("training:train", args=[project.pk])).content.decode()
    assert 'name="strategy"' not in body and "Cancel</button>" not in body
    assert (
        "only the project&#x27;s owner and editors" in body or "only the project's owner and editors" in body
    )
    versions = c.get(reverse("training:versions", args=[project.pk])).content.decode()
    assert "Delete</button>" not in versions and "Roll back" not in versions
    for url in post_urls(project, run_id=run.pk, image_id=image.pk):
        assert c.post(url, {"label": ""}).status_code == 403, url
    edit = client_for(editor).get(reverse("training:train", args=[project.pk])).content.decode()
    assert "Cancel</button>" in edit


def test_it_starts_a_training_run(client_for, labelled, editor, django_capture_on_commit_callbacks):
    from webui.training.models import TrainingRun

    c = client_for(editor)
    url = reverse("training:train", args=[labelled.pk])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = c.post(url, {"strategy": "linear", "backbone": "efficientnet_lite0"})
    assert response.status_code == 302 and response["Location"] == url
    run = TrainingRun.objects.get(project=labelled)
    assert run.params["strategy"] == "linear" and run.created_by == editor
    assert len(callbacks) == 1
    body = c.get(url).content.decode()
    assert reverse("training:run_status", args=[labelled.pk, run.pk]) in body
    assert 'hx-trigger="every 1s"' in body and "waiting for a worker" in body


def test_it_shows_why_training_was_refused(client_for, project, owner, media_root):
    from webui.training.models import TrainingRun

    c = client_for(owner)
    response = c.post(reverse("training:train", args=[project.pk]), {"strategy": "bogus"}, follow=True)
    assert "Training could not start: unknown strategy" in response.content.decode()
    response = c.post(reverse("training:train", args=[project.pk]), follow=True)
    body = response.content.decode()
    assert "Training could not start: a model needs at least two labels with images" in body
    assert not TrainingRun.objects.exists()


def test_the_train_button_is_disabled_until_training_can_start(client_for, labelled, owner):
    import re

    from webui.projects.models import Project

    empty = Project.objects.create(name="Empty", owner=owner)

    def button(project_id):
        body = client_for(owner).get(reverse("training:train", args=[project_id])).content.decode()
        return re.search(r'<button type="submit" class="btn btn-primary btn-lg[^>]*>', body).group(0)

    assert "disabled" in button(empty.pk) and 'aria-describedby="not-ready"' in button(empty.pk)
    assert "disabled" not in button(labelled.pk)


def test_it_shows_unusable_backbones_disabled_with_the_reason(client_for, project, owner, monkeypatch):
    import classifier.backbones

    reason = (
        "weights file resnet50-11ad3fa6.pth not found; put it in /root/.cache/torch/hub/checkpoints "
        "(from https://download.pytorch.org/models/resnet50-11ad3fa6.pth) or set PINHOLE_ALLOW_DOWNLOADS=true "
        "on a host that is online"
    )
    rows = [
        {"name": "efficientnet_lite0", "usable": True, "reason": "", "notes": "fast", "default": True},
        {"name": "resnet50", "usable": False, "reason": reason, "notes": "big", "default": False},
    ]
    monkeypatch.setattr(classifier.backbones, "list_backbones", lambda: rows)
    body = client_for(owner).get(reverse("training:train", args=[project.pk])).content.decode()
    assert 'value="resnet50" disabled' in body and 'value="efficientnet_lite0" checked' in body
    # People are told what it means for them; server paths and settings are for administrators.
    assert "Unavailable on this server: its weights are not installed" in body
    assert "/root/.cache" not in body and "PINHOLE_" not in body
    owner.is_staff = True
    owner.save()
    body = client_for(owner).get(reverse("training:train", args=[project.pk])).content.decode()
    assert "/root/.cache/torch/hub/checkpoints" in body and "PINHOLE_ALLOW_DOWNLOADS" in body


def test_it_reports_progress_in_the_polled_partial(client_for, run, viewer):
    c = client_for(viewer)
    url = reverse("training:run_status", args=[run.project_id, run.pk])
    body = c.get(url).content.decode()
    assert "extracting 120/245" in body and "49%" in body and 'hx-trigger="every 1s"' in body
    assert "Running" in body


def test_it_stops_polling_and_links_the_results_when_done(client_for, version, viewer):
    from webui.jobs.models import JobStatus
    from webui.training.models import ModelVersion, TrainingRun

    run = TrainingRun.objects.create(
        project=version.project, status=JobStatus.SUCCEEDED, progress=1.0, message="done: v1"
    )
    ModelVersion.objects.filter(pk=version.pk).update(run=run)
    body = (
        client_for(viewer).get(reverse("training:run_status", args=[run.project_id, run.pk])).content.decode()
    )
    assert "hx-trigger" not in body
    assert reverse("training:version", args=[version.project_id, 1]) in body
    polled = client_for(viewer).get(
        reverse("training:run_status", args=[run.project_id, run.pk]), headers={"HX-Request": "true"}
    )
    assert polled["HX-Refresh"] == "true"  # the whole page catches up (Train button, data summary)


def test_it_shows_a_failed_runs_reason(client_for, labelled, owner):
    from webui.jobs.models import JobStatus
    from webui.training.models import TrainingRun

    TrainingRun.objects.create(project=labelled, status=JobStatus.FAILED, error="each label needs 2 images")
    body = client_for(owner).get(reverse("training:train", args=[labelled.pk])).content.decode()
    assert "each label needs 2 images" in body


def test_it_cancels_a_run(client_for, labelled, editor):
    from webui.jobs.models import JobStatus
    from webui.training.models import TrainingRun

    queued = TrainingRun.objects.create(project=labelled)
    c = client_for(editor)
    response = c.post(reverse("training:cancel", args=[labelled.pk, queued.pk]), follow=True)
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED and "Cancelled." in response.content.decode()
    running = TrainingRun.objects.create(
        project=labelled, status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    c.post(reverse("training:cancel", args=[labelled.pk, running.pk]))
    running.refresh_from_db()
    assert running.cancel_requested
    response = c.post(reverse("training:cancel", args=[labelled.pk, queued.pk]), follow=True)
    assert "cannot be cancelled" in response.content.decode()


def test_it_explains_a_versions_results(client_for, version, viewer):
    body = client_for(viewer).get(reverse("training:version", args=[version.project_id, 1])).content.decode()
    assert "Out of 100 test photos, about <strong>95</strong> would be labelled correctly" in body
    assert "Balanced accuracy" in body and "90%" in body
    assert "frozen test split of 14 images" in body
    assert "Precision" in body and "Recall" in body
    assert "Why: few images per label (7 on average)" in body
    assert "the first version of this project" in body
    assert body.count('class="cell-count"') == 4
    assert "?true=1&amp;pred=0" in body


def record_answers(version, predicted: dict[str, tuple[str, float]], field="test_predictions"):
    """What the scored model answered for each image, as the engine records it when it trains."""
    from webui.training.models import ModelVersion

    rows = [
        {
            "key": image.sha256,
            "label": image.label.name,
            "predicted": predicted.get(image.sha256, (image.label.name, 0.9))[0],
            "confidence": predicted.get(image.sha256, (image.label.name, 0.9))[1],
        }
        for image in version.project.images.select_related("label")
    ]
    ModelVersion.objects.filter(pk=version.pk).update(metrics={**version.metrics, field: rows})
    version.refresh_from_db()


def test_it_shows_the_images_in_a_confusion_cell(client_for, version, owner):
    project = version.project
    bee = project.images.filter(label__name="bees").order_by("sha256").first()
    record_answers(version, {bee.sha256: ("ants", 0.81)})
    c = client_for(owner)
    url = reverse("training:cell", args=[project.pk, 1]) + "?true=1&pred=0"
    body = c.get(url, headers={"HX-Request": "true"}).content.decode()
    assert f'id="fix-{bee.pk}"' in body and body.count('class="fix-item"') == 1
    assert "81%" in body and "the model said <strong>ants</strong>" in body
    full = c.get(url)
    assert full.status_code == 302 and "?true=1&pred=0" in full["Location"]
    page = c.get(full["Location"]).content.decode()
    assert f'id="fix-{bee.pk}"' in page
    assert c.get(reverse("training:cell", args=[project.pk, 1]) + "?true=7&pred=0").status_code == 404


def test_it_fixes_a_label_in_place(client_for, version, editor):
    project = version.project
    bee = project.images.filter(label__name="bees").first()
    ants = project.labels.get(name="ants")
    c = client_for(editor)
    url = reverse("training:relabel", args=[project.pk, bee.pk])
    response = c.post(url, {"label": ants.pk}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Now labelled <strong>ants</strong>" in response.content.decode()
    bee.refresh_from_db()
    assert bee.label == ants
    response = c.post(url, {"label": "", "next": "https://evil.example/"})
    bee.refresh_from_db()
    assert bee.label is None and response["Location"] == reverse("training:versions", args=[project.pk])


def test_it_refuses_a_label_from_another_project(client_for, version, editor, owner):
    from webui.projects.models import Label, Project

    other = Project.objects.create(name="Other", owner=owner)
    foreign = Label.objects.create(project=other, name="cats")
    image = version.project.images.first()
    response = client_for(editor).post(
        reverse("training:relabel", args=[version.project_id, image.pk]), {"label": foreign.pk}
    )
    assert response.status_code == 404


def test_it_promotes_rolls_back_and_deletes_from_the_versions_page(client_for, version, make_version, editor):
    project = version.project
    v2 = make_version(project, 2)
    c = client_for(editor)
    listing = c.get(reverse("training:versions", args=[project.pk])).content.decode()
    assert "v1" in listing and "v2" in listing and "serving" in listing
    assert f"/api/v1/versions/{v2.pk}/download/" in listing

    response = c.post(reverse("training:promote", args=[project.pk, 2]), follow=True)
    project.refresh_from_db()
    assert project.serving_version == v2 and "v2 now answers every prediction" in response.content.decode()

    response = c.post(reverse("training:delete", args=[project.pk, 2]), follow=True)
    assert "Not deleted" in response.content.decode()

    response = c.post(reverse("training:rollback", args=[project.pk]), follow=True)
    project.refresh_from_db()
    assert project.serving_version == version and "v1 serves again" in response.content.decode()

    response = c.post(reverse("training:delete", args=[project.pk, 2]), follow=True)
    assert "Deleted v2" in response.content.decode()
    assert not project.versions.filter(number=2).exists()
    assert c.post(reverse("training:promote", args=[project.pk, 9])).status_code == 404


def test_it_refuses_to_promote_a_broken_artifact(client_for, version, make_version, owner):
    from django.core.files.storage import default_storage

    project = version.project
    v2 = make_version(project, 2)
    default_storage.delete(f"{v2.artifact}/model.onnx")
    with default_storage.open(f"{v2.artifact}/model.onnx", "wb") as handle:
        handle.write(b"truncated")
    response = client_for(owner).post(reverse("training:promote", args=[project.pk, 2]), follow=True)
    project.refresh_from_db()
    assert project.serving_version == version and "Not promoted" in response.content.decode()


def test_it_compares_two_versions(client_for, version, make_version, viewer):
    from webui.training.models import ModelVersion

    project = version.project
    v2 = make_version(project, 2)
    better = {
        **METRICS,
        "accuracy": 0.97,
        "per_class": {
            "ants": {"precision": 0.95, "recall": 1.0, "f1": 0.97, "support": 9},
            "bees": {"precision": 1.0, "recall": 0.9, "f1": 0.95, "support": 5},
        },
    }
    ModelVersion.objects.filter(pk=v2.pk).update(metrics=better)
    url = reverse("training:compare", args=[project.pk]) + "?a=1&b=2"
    body = client_for(viewer).get(url).content.decode()
    assert "▲ +2<" in body  # accuracy 95 -> 97
    assert "▲ +10<" in body  # bees recall 80 -> 90
    assert (
        client_for(viewer).get(reverse("training:compare", args=[project.pk]) + "?a=1&b=5").status_code == 404
    )


def test_it_requires_csrf_tokens_on_every_change(version, owner, run):
    project = version.project
    image = project.images.first()
    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    for url in post_urls(project, run_id=run.pk, image_id=image.pk):
        assert c.post(url).status_code == 403, url


def test_it_refuses_to_be_framed(client_for, version, owner):
    response = client_for(owner).get(reverse("training:version", args=[version.project_id, 1]))
    assert response["X-Frame-Options"] == "DENY"


def test_a_cross_validated_cell_lists_the_out_of_fold_answers_not_the_serving_models(
    client_for, version, owner
):
    """Each image counted in a cell is listed, from the answer of the fold's head that never saw it."""
    from webui.training.models import ModelVersion

    project = version.project
    ants = list(project.images.filter(label__name="ants").order_by("sha256"))
    ModelVersion.objects.filter(pk=version.pk).update(
        metrics={**METRICS, "evaluation_kind": "cross_validation", "n_val": 0, "n_train": 6}
    )
    version.refresh_from_db()
    record_answers(version, {ants[0].sha256: ("bees", 0.7), ants[1].sha256: ("bees", 0.6)}, "oof_predictions")
    c = client_for(owner)
    body = c.get(
        reverse("training:cell", args=[project.pk, 1]) + "?true=0&pred=1", headers={"HX-Request": "true"}
    ).content.decode()
    assert body.count('class="fix-item"') == 2 and "cross-validation" in body
    assert f'id="fix-{ants[0].pk}"' in body and f'id="fix-{ants[1].pk}"' in body
    # A photo deleted since is counted, not silently dropped.
    ants[0].delete()
    body = c.get(
        reverse("training:cell", args=[project.pk, 1]) + "?true=0&pred=1", headers={"HX-Request": "true"}
    ).content.decode()
    assert body.count('class="fix-item"') == 1 and "1 photo of this cell has been deleted since" in body
    page = c.get(reverse("training:version", args=[project.pk, 1])).content.decode()
    assert "each of the 6 was scored by a model trained without it" in page


def test_a_version_without_recorded_answers_says_so_instead_of_asking_the_serving_model(
    client_for, version, owner
):
    body = (
        client_for(owner)
        .get(
            reverse("training:cell", args=[version.project_id, 1]) + "?true=1&pred=0",
            headers={"HX-Request": "true"},
        )
        .content.decode()
    )
    assert "trained before Pinhole kept each photo's answer" in body and "fix-item" not in body


def test_the_image_counts_of_a_version_agree_everywhere(client_for, version, viewer):
    project = version.project
    versions = client_for(viewer).get(reverse("training:versions", args=[project.pk])).content.decode()
    # The served model learned from all 56 (test images included); 14 of them were the test photos.
    assert '<td data-label="Images">56</td>' in versions and ">70<" not in versions
    page = client_for(viewer).get(reverse("training:version", args=[project.pk, 1])).content.decode()
    assert "Scored on 14 test photos by a model trained on the other 42, never on these" in page
    assert "The model you use then learned from all 56." in page
    # 9 ants and 5 bees in the test set is not "quite different numbers" (the data-health rule: over 3x).
    assert "so it is close to plain accuracy" in page


def test_compare_from_a_version_page_compares_it_with_the_one_before(
    client_for, version, make_version, viewer
):
    from webui.training.models import ModelVersion

    project = version.project
    images = list(project.images.select_related("label").order_by("sha256"))
    bee = next(i for i in images if i.label.name == "bees")
    ant = next(i for i in images if i.label.name == "ants")
    record_answers(version, {bee.sha256: ("ants", 0.8)})
    v2 = make_version(project, 2)
    ModelVersion.objects.filter(pk=v2.pk).update(metrics=METRICS)
    v2.refresh_from_db()
    record_answers(v2, {ant.sha256: ("bees", 0.55)})
    c = client_for(viewer)
    body = c.get(reverse("training:compare", args=[project.pk]) + "?b=2").content.decode()
    assert '<option value="1" selected>' in body and '<option value="2" selected>' in body
    assert "2 of the 6 photos both were scored on got a different answer" in body
    assert "v2 put right 1 that v1 got wrong, and got wrong 1 that v1 got right" in body
    assert "now right" in body and "now wrong" in body and "v1: ants" in body and "v2: bees" in body
    # From the first version's page the other one is the next.
    first = c.get(reverse("training:compare", args=[project.pk]) + "?a=1").content.decode()
    assert "2 of the 6 photos" in first
    same = c.get(reverse("training:compare", args=[project.pk]) + "?a=2&b=2").content.decode()
    assert "Pick two different versions to compare." in same


@pytest.mark.slow
def test_every_confusion_cell_of_a_real_version_lists_the_images_that_make_its_count(
    client_for, trained_project, viewer
):
    project = trained_project
    version = project.serving_version
    matrix = version.metrics["confusion_matrix"]
    c = client_for(viewer)
    listed_in_all = 0
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            url = reverse("training:cell", args=[project.pk, version.number]) + f"?true={i}&pred={j}"
            body = c.get(url, headers={"HX-Request": "true"}).content.decode()
            assert body.count('class="fix-item"') == count, (i, j, body)
            listed_in_all += count
    assert listed_in_all == version.images_scored == project.images.count()
