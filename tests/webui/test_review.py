"""Answers kept per version, the review queue, and a share visitor's "Not right? Pick the right one"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.helpers import BLUE, png
from webui.serving import records, review
from webui.serving.models import PredictionRecord, ShareLink

pytestmark = pytest.mark.django_db

PURPLE = (125, 40, 125)  # halfway between red and blue: the red-vs-blue model is unsure


@pytest.fixture
def served(project, make_version, owner):
    from webui.projects.labels import get_or_create_label

    get_or_create_label(project, "ants")
    get_or_create_label(project, "bees")
    version = make_version(project, 1)
    version.promote(owner)
    project.refresh_from_db()
    return project


def _result(project, probability=0.55, **extra):
    version = project.serving_version
    top = [{"label": "ants", "probability": probability}, {"label": "bees", "probability": 1 - probability}]
    return {
        "label": "ants", "probability": probability, "top": top, "unknown": False, "sure": True,
        "threshold": version.answer_threshold, "model_version": version.number,
        "model_version_id": version.pk, **extra,
    }  # fmt: skip


def test_an_unsure_answer_waits_for_review_with_its_photo_and_a_sure_one_is_only_counted(served, media_root):
    unsure = records.record(served, _result(served, 0.55), "try", png(PURPLE, 1))
    assert unsure.review == "queued" and unsure.reason == "unsure" and unsure.photo
    assert default_storage.exists(unsure.photo.name)
    sure = records.record(served, _result(served, 0.97), "api", png(BLUE, 2))
    assert sure.review == "" and not sure.photo and sure.sha256  # counted, photo not kept
    odd = records.record(served, _result(served, 0.9, unknown=True), "api", png((9, 200, 9), 3))
    assert odd.reason == "unknown" and odd.review == "queued"
    below = records.record(served, _result(served, 0.9, sure=False, threshold=0.95), "try", png(PURPLE, 4))
    assert below.reason == "unsure"  # below the version's own threshold
    # Share visitors' photos are not kept unless the owners say so: counted, not queued.
    visitor = records.record(served, _result(served, 0.55), "share", png(PURPLE, 5))
    assert visitor.review == "" and not visitor.photo and visitor.reason == "unsure"
    served.keep_share_photos = True
    kept = records.record(served, _result(served, 0.55), "share", png(PURPLE, 6))
    assert kept.review == "queued" and kept.photo
    assert list(review.queue(served)) == [kept, below, odd, unsure]


def test_a_member_labels_a_queued_photo_and_it_joins_the_project(served, editor, media_root):
    row = records.record(served, _result(served, 0.55), "try", png(PURPLE, 1))
    photo = row.photo.name
    done = review.resolve(row, "bees", editor)
    assert done.review == "relabelled" and done.reviewed_by == editor and done.image.label.name == "bees"
    assert not done.photo and not default_storage.exists(photo)  # the image has its own copy
    assert served.images.filter(label__name="bees").count() == 1
    with pytest.raises(review.CannotReview, match="labelled differently already"):
        review.resolve(done, "ants", editor)
    other = records.record(served, _result(served, 0.55), "try", png(PURPLE, 2))
    assert review.resolve(other, "ants", editor).review == "accepted"  # what the model said
    third = records.record(served, _result(served, 0.55), "try", png(PURPLE, 3))
    with pytest.raises(review.CannotReview, match="not a label"):
        review.resolve(third, "wasps", editor)
    thrown = review.discard(third, editor)
    assert thrown.review == "discarded" and not thrown.photo
    assert list(review.queue(served)) == []


def test_photos_nobody_reviews_are_removed_after_the_projects_days(served, media_root):
    old = records.record(served, _result(served, 0.55), "try", png(PURPLE, 1))
    PredictionRecord.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=31))
    name = old.photo.name
    records.record(served, _result(served, 0.55), "try", png(PURPLE, 2))  # recording sweeps
    old.refresh_from_db()
    assert not old.photo and not default_storage.exists(name)
    assert PredictionRecord.objects.count() == 2  # the answers stay in the counts


def test_a_versions_answers_per_day_show_confidence_and_unknowns(served):
    for probability, unknown in ((0.9, False), (0.7, False), (0.5, True)):
        records.record(served, _result(served, probability, unknown=unknown), "api", None)
    [today] = records.daily(served.serving_version)
    assert today["answers"] == 3 and today["confidence"] == pytest.approx(0.7)
    assert today["unknown"] == pytest.approx(1 / 3)


def test_the_queue_page_lists_what_waits_and_only_editors_decide(
    client_for, served, viewer, editor, media_root
):
    row = records.record(served, _result(served, 0.55), "try", png(PURPLE, 1))
    url = reverse("serving:review", args=[served.pk])
    page = client_for(viewer).get(url)
    assert page.status_code == 200 and [r.pk for r in page.context["rows"]] == [row.pk]
    assert "The model said <strong>ants</strong>, 55% sure." in page.content.decode()
    assert "It shows:" not in page.content.decode()  # viewers decide nothing
    decide = reverse("serving:review-decide", args=[served.pk, row.pk])
    assert client_for(viewer).post(decide, {"label": "bees"}).status_code == 403
    photo = client_for(viewer).get(reverse("serving:review-photo", args=[served.pk, row.pk]))
    assert photo.status_code == 200 and photo["Content-Type"] == "image/jpeg"
    response = client_for(editor).post(decide, {"label": "bees"}, follow=True)
    assert "Added to the project as “bees”" in response.content.decode()
    assert "Nothing to review" in response.content.decode()


@pytest.mark.slow
def test_a_share_visitor_corrects_an_answer_and_a_member_accepts_it(
    trained_project, owner, editor, client_for
):
    pytest.importorskip("classifier.pipeline")
    from django.core.files.uploadedfile import SimpleUploadedFile

    _link, token = ShareLink.create_for(trained_project, owner)
    visitor = Client(REMOTE_ADDR="10.1.2.3")
    data = png(PURPLE, 42)

    def upload(content=data):
        return SimpleUploadedFile("mine.png", content, content_type="image/png")

    answer = visitor.post(reverse("serving:public_predict", args=[token]), {"file": upload()}).json()
    assert answer["feedback"] and "model_version_id" not in answer
    row = PredictionRecord.objects.get(source="share")
    assert not row.photo  # share photos are not kept by default
    feedback = reverse("serving:public_feedback", args=[token])
    wrong = answer["label"] == "red" and "blue" or "red"
    refused = visitor.post(
        feedback, {"feedback": answer["feedback"], "label": wrong, "file": upload(png(BLUE, 1))}
    )
    assert refused.status_code == 400 and "not the photo that was answered" in refused.json()["detail"]
    forged = visitor.post(feedback, {"feedback": "1:forged", "label": wrong, "file": upload()})
    assert forged.status_code == 400
    unknown_label = visitor.post(
        feedback, {"feedback": answer["feedback"], "label": "wasps", "file": upload()}
    )
    assert (
        unknown_label.status_code == 400
        and "not one of this model's labels" in unknown_label.json()["detail"]
    )
    sent = visitor.post(feedback, {"feedback": answer["feedback"], "label": wrong, "file": upload()})
    assert sent.status_code == 200 and "owners will look" in sent.json()["detail"]
    row.refresh_from_db()
    assert (row.review, row.reason, row.visitor_label) == ("queued", "visitor", wrong) and row.photo
    assert not trained_project.images.filter(sha256=row.sha256).exists()  # no label without a member

    page = client_for(editor).get(reverse("serving:review", args=[trained_project.pk]))
    assert f"The visitor says: <strong>{wrong}</strong>" in page.content.decode()
    client_for(editor).post(
        reverse("serving:review-decide", args=[trained_project.pk, row.pk]), {"label": wrong}
    )
    row.refresh_from_db()
    assert row.review == "relabelled" and row.image.label.name == wrong


def test_corrections_are_limited_per_visitor(served, owner, settings, monkeypatch, media_root):
    from webui.serving import views

    answer = _result(served, 0.55)
    monkeypatch.setattr(views, "predict", lambda *a, **k: dict(answer))
    settings.PINHOLE_SHARE_FEEDBACK_PER_HOUR = 2
    _link, token = ShareLink.create_for(served, owner)
    visitor = Client(REMOTE_ADDR="10.5.5.5")
    statuses = []
    for seed in range(3):
        data = png(PURPLE, seed)
        body = visitor.post(reverse("serving:public_predict", args=[token]), {"file": _file(data)}).json()
        sent = visitor.post(
            reverse("serving:public_feedback", args=[token]),
            {"feedback": body["feedback"], "label": "bees", "file": _file(data)},
        )
        statuses.append(sent.status_code)
    assert statuses == [200, 200, 429]
    assert review.queue(served).count() == 2


def _file(data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("q.png", data, content_type="image/png")


def test_the_admin_lists_recorded_answers_read_only(admin_client, served):
    row = records.record(served, _result(served, 0.9), "api", None)
    assert admin_client.get(reverse("admin:serving_predictionrecord_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:serving_predictionrecord_change", args=[row.pk]))
    assert page.status_code == 200 and not page.context["adminform"].form.fields
    assert admin_client.get(reverse("admin:serving_predictionrecord_add")).status_code == 403


def test_the_results_page_shows_what_the_version_answered_per_day(client_for, served, viewer):
    for probability, unknown in ((0.9, False), (0.6, True)):
        records.record(served, _result(served, probability, unknown=unknown), "api", None)
    page = client_for(viewer).get(reverse("training:version", args=[served.pk, 1]))
    [day] = page.context["report"]["daily"]
    assert day["answers"] == 2 and day["width"] == 100
    text = page.content.decode()
    assert "What it answered" in text and ">75%<" in text and ">50%<" in text  # mean confidence, unknown


def test_an_answer_that_cannot_be_recorded_is_still_given(
    client_for, served, editor, monkeypatch, media_root
):
    from webui.serving import views

    monkeypatch.setattr(views, "predict", lambda *a, **k: _result(served, 0.55))

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(records, "store_photo", full_disk)
    response = client_for(editor).post(
        reverse("serving:predict", args=[served.pk]), {"file": _file(png(PURPLE, 9))}
    )
    assert response.status_code == 200 and response.json()["label"] == "ants"
    assert PredictionRecord.objects.count() == 0
