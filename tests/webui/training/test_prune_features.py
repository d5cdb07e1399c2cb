"""prune_features: deletes vectors no training reads again, keeps the rest."""

import io

import pytest
from django.core.management import call_command

from classifier.features import DEPTHS_LAYOUT, is_current_cache_key
from webui.projects.models import Image
from webui.training.models import FeatureVector

pytestmark = pytest.mark.django_db

BACKBONE = "efficientnet_lite0@imagenet-pypi-0.1.0"


def _vector(key: str, sha: str) -> FeatureVector:
    return FeatureVector.objects.create(backbone_id=key, sha256=sha, vector=b"\0" * 16)


def test_it_knows_todays_layout_from_earlier_ones():
    assert is_current_cache_key(BACKBONE + DEPTHS_LAYOUT)
    assert is_current_cache_key(BACKBONE + DEPTHS_LAYOUT + "+full+mirrored")
    assert is_current_cache_key(BACKBONE + DEPTHS_LAYOUT + "+full+mirrored+bf16")  # another engine
    assert not is_current_cache_key(BACKBONE + "+depths1+full")
    assert not is_current_cache_key(BACKBONE)  # vectors cached before several depths were
    assert not is_current_cache_key(BACKBONE + DEPTHS_LAYOUT + "0")


def test_it_deletes_old_layouts_and_orphans_and_keeps_what_a_retrain_reads(project):
    held = "a" * 64
    Image.objects.create(project=project, file="x.png", sha256=held, width=1, height=1, format="PNG")
    kept = [_vector(BACKBONE + DEPTHS_LAYOUT, held), _vector(BACKBONE + DEPTHS_LAYOUT + "+mirrored", held)]
    _vector(BACKBONE + "+depths1", held)  # an earlier layout
    _vector(BACKBONE, held)
    _vector(BACKBONE + DEPTHS_LAYOUT, "b" * 64)  # its image was deleted

    out = io.StringIO()
    call_command("prune_features", "--dry-run", stdout=out)
    assert (
        "would delete 2 vectors in an earlier layout (2 keys) and 1 of images no project holds"
        in out.getvalue()
    )
    assert FeatureVector.objects.count() == 5

    call_command("prune_features", stdout=out)
    assert sorted(FeatureVector.objects.values_list("pk", flat=True)) == sorted(v.pk for v in kept)
    assert "2 remain" in out.getvalue()
