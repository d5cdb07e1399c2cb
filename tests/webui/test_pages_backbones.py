"""The backbones page: every network with what it is, whether this server has it, and how to add it."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("PINHOLE_ALLOW_DOWNLOADS", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_it_lists_every_network_and_says_which_are_usable_here(client_for, owner, empty_hub):
    from classifier.backbones import BACKBONES

    body = client_for(owner).get(reverse("backbones")).content.decode()
    for name in BACKBONES:
        assert f'<h2 class="backbone-name">{name}' in body
    assert "can train with <strong>1 of 9</strong>" in body  # the packaged default only
    assert body.count("usable here") == 1 and body.count("not installed") == 8
    assert "Pictures 299 × 299 pixels" in body  # Inception-V3's own input size
    # Members are told whom to ask; the server's paths are for administrators.
    assert "ask your administrator" in body and str(empty_hub) not in body and "import-weights" not in body


def test_administrators_are_told_how_to_install_the_others(client_for, owner, empty_hub):
    owner.is_staff = True
    owner.save()
    body = client_for(owner).get(reverse("backbones")).content.decode()
    assert "python -m classifier import-weights vgg16-397923af.pth" in body
    assert 'href="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"' in body
    assert str(empty_hub) in body and "PINHOLE_ALLOW_DOWNLOADS=true" in body


def test_it_needs_an_account(client):
    response = client.get(reverse("backbones"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
