"""The web process's predictor cache: bounded, least recently used out first, one entry per version."""

from __future__ import annotations

import pytest

from webui.serving import services as serving
from webui.training.models import ModelVersion

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def three_versions(trained_project):
    """Three versions of one project sharing the trained artifact (each loads its own Predictor)."""
    first = trained_project.serving_version
    others = [
        ModelVersion.objects.create(
            project=trained_project,
            number=first.number + n,
            artifact=first.artifact,
            backbone=first.backbone,
            labels=first.labels,
            metrics=first.metrics,
            size=first.size,
        )
        for n in (1, 2)
    ]
    serving.evict()
    yield [first, *others]
    serving.evict()


def _cached_ids() -> list[int]:
    return [version_id for version_id, _artifact in serving._cache]


def test_it_keeps_at_most_the_configured_number_of_predictors(three_versions, settings):
    settings.PINHOLE_PREDICTOR_CACHE_SIZE = 2
    v1, v2, v3 = three_versions
    p1 = serving.predictor_for(v1)
    assert serving.predictor_for(v1) is p1  # loaded once, then reused
    serving.predictor_for(v2)
    serving.predictor_for(v1)  # v1 is now the most recently used
    serving.predictor_for(v3)  # so v2 goes
    assert _cached_ids() == [v1.pk, v3.pk]
    assert serving.predictor_for(v1) is p1
    assert serving.predictor_for(v2) is not None  # loaded again on demand; v3 goes
    assert _cached_ids() == [v1.pk, v2.pk]


def test_it_answers_from_a_version_loaded_again_after_eviction(three_versions, settings, image_bytes):
    settings.PINHOLE_PREDICTOR_CACHE_SIZE = 1
    v1, v2, _v3 = three_versions
    before = serving.predictor_for(v1).predict([image_bytes((210, 40, 40))], top_k=1)[0]
    serving.predictor_for(v2)
    assert _cached_ids() == [v2.pk]
    after = serving.predictor_for(v1).predict([image_bytes((210, 40, 40))], top_k=1)[0]
    assert (after.label, round(after.probability, 5)) == (before.label, round(before.probability, 5))
