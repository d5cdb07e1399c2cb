"""When a version answers: the figures at each threshold from its recorded answers, saving one (page and
API), and predictions below it coming back "not sure"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from webui.training import thresholds
from webui.training.models import ServingEvent

pytestmark = pytest.mark.django_db

# Eight recorded answers: (label, predicted, confidence).
ANSWERS = [
    ("ants", "ants", 0.99),
    ("ants", "ants", 0.95),
    ("ants", "bees", 0.55),
    ("ants", "ants", 0.62),
    ("bees", "bees", 0.97),
    ("bees", "bees", 0.91),
    ("bees", "ants", 0.81),
    ("bees", "bees", 0.58),
]


@pytest.fixture
def scored(project, make_version):
    version = make_version(project, 1)
    version.metrics = {
        "accuracy": 0.75,
        "test_predictions": [
            {"key": f"{i:064x}", "label": label, "predicted": predicted, "confidence": confidence}
            for i, (label, predicted, confidence) in enumerate(ANSWERS)
        ],
    }
    version.save()
    return version


def test_the_figures_at_a_threshold_count_what_it_would_have_answered(scored):
    rows = thresholds.table(scored)
    always = thresholds.at(rows, None)
    assert (always.scored, always.answered, always.right) == (8, 8, 6)
    assert always.accuracy == 0.75 and always.coverage == 1.0
    at_80 = thresholds.at(rows, 0.8)
    assert (at_80.answered, at_80.right) == (5, 4)  # 0.55, 0.62 and 0.58 become "not sure"
    assert at_80.coverage == 5 / 8 and at_80.accuracy == 4 / 5
    assert at_80.per_label["ants"] == {"precision": 2 / 3, "recall": 2 / 4, "answered": 3, "support": 4}
    assert at_80.per_label["bees"] == {"precision": 1.0, "recall": 2 / 4, "answered": 2, "support": 4}
    nothing = thresholds.at(rows, 0.995)
    assert nothing.answered == 0 and nothing.accuracy is None
    assert nothing.per_label["ants"]["precision"] is None


@pytest.mark.parametrize(
    "given, expected",
    [("0.8", 0.8), ("80", 0.8), ("80 %", 0.8), (0.9, 0.9), (75, 0.75), ("", None), (None, None), ("0", None)],
)
def test_a_threshold_reads_as_a_fraction_or_a_percentage(given, expected):
    assert thresholds.parse(given) == expected


@pytest.mark.parametrize("given", ["lots", "-1", "100", "99.5%", "nan", True])
def test_a_threshold_outside_0_to_99_percent_is_refused_with_a_message(given):
    with pytest.raises(thresholds.BadThreshold, match="threshold"):
        thresholds.parse(given)


def test_the_results_page_shows_the_figures_and_an_editor_saves_a_threshold(
    client_for, scored, editor, viewer
):
    project = scored.project
    page = client_for(viewer).get(reverse("training:version", args=[project.pk, 1]))
    text = page.content.decode()
    assert "When it answers" in text and "threshold-rows" in text and "Only editors can change it" in text
    assert page.context["report"]["threshold"]["outcome"].answered == 8
    url = reverse("training:threshold", args=[project.pk, 1])
    assert client_for(viewer).post(url, {"threshold": "80"}).status_code == 403
    response = client_for(editor).post(url, {"threshold": "80"}, follow=True)
    scored.refresh_from_db()
    assert scored.answer_threshold == 0.8
    assert "v1 will answer only when at least 80 % sure" in response.content.decode()
    report = response.context["report"]["threshold"]
    assert (report["outcome"].answered, report["unsure"], report["value"]) == (5, 3, 80)
    text = response.content.decode()
    assert "data-coverage>62%<" in text and "data-accuracy>80%<" in text  # 5 of 8 (62.5, to even), 4 of 5
    event = ServingEvent.objects.get(action="threshold")
    assert event.version == scored and event.user == editor and "80 %" in event.detail
    client_for(editor).post(url, {"threshold": "80"})
    assert ServingEvent.objects.filter(action="threshold").count() == 1  # no change, nothing recorded
    response = client_for(editor).post(url, {"threshold": "150"}, follow=True)
    assert "Not saved: the threshold must be at most 99 %" in response.content.decode()
    scored.refresh_from_db()
    assert scored.answer_threshold == 0.8


def test_the_api_sets_and_clears_a_threshold(scored, editor, viewer):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(editor)
    url = f"/api/v1/versions/{scored.pk}/threshold/"
    response = api.post(url, {"threshold": 0.7}, format="json")
    assert response.status_code == 200 and response.json()["answer_threshold"] == 0.7
    assert api.post(url, {"threshold": None}, format="json").json()["answer_threshold"] is None
    assert api.post(url, {"threshold": 1.5}, format="json").status_code == 400
    assert api.post(url, {}, format="json").status_code == 400
    other = APIClient()
    other.force_login(viewer)
    assert other.post(url, {"threshold": 0.7}, format="json").status_code == 403
    assert ServingEvent.objects.filter(action="threshold").count() == 2


@pytest.mark.slow
def test_a_prediction_below_the_threshold_comes_back_not_sure_at_once(trained_project, editor):
    pytest.importorskip("classifier.pipeline")
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from tests.helpers import png

    api = APIClient()
    api.force_login(editor)
    version = trained_project.serving_version

    def ask():
        # Halfway between red and blue: the model is far from sure.
        picture = SimpleUploadedFile("q.png", png((125, 40, 125), 4321), content_type="image/png")
        response = api.post(
            f"/api/v1/projects/{trained_project.pk}/predict/", {"file": picture}, format="multipart"
        )
        assert response.status_code == 200, response.content
        return response.json()

    first = ask()
    assert first["sure"] is True and first["threshold"] is None and first["probability"] < 0.95
    thresholds.set_threshold(version, round(first["probability"] + 0.04, 4), editor)
    second = ask()
    assert second["sure"] is False and second["label"] == first["label"]  # the best guess is still given
    assert second["threshold"] > second["probability"]
    thresholds.set_threshold(version, None, editor)
    assert ask()["sure"] is True
