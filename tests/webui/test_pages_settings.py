"""Project settings: editors change details, only the owner shares; error pages look like the site."""

import pytest
from django.test import Client
from django.urls import reverse

from webui.projects.models import Membership, Role

pytestmark = pytest.mark.django_db


def test_it_lets_editors_change_the_details_and_auto_promote(client_for, project, editor):
    url = reverse("projects:settings", args=[project.pk])
    response = client_for(editor).post(
        url, {"name": "Hive survey 2", "description": "", "backbone": "efficientnet_lite0"}
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Hive survey 2" and project.auto_promote is False  # unchecked box


def test_it_refuses_a_backbone_whose_weights_are_missing(client_for, project, editor, monkeypatch):
    from classifier import backbones

    monkeypatch.setattr(backbones, "list_backbones", lambda: [
        {"name": "efficientnet_lite0", "usable": True, "notes": "default"},
        {"name": "resnet50", "usable": False, "notes": "not cached"},
    ])  # fmt: skip
    response = client_for(editor).post(
        reverse("projects:settings", args=[project.pk]), {"name": "x", "backbone": "resnet50"}
    )
    assert response.status_code == 200 and b"resnet50 is not one of the available choices" in response.content


def test_it_shows_viewers_the_settings_without_a_form_and_refuses_their_changes(client_for, project, viewer):
    url = reverse("projects:settings", args=[project.pk])
    page = client_for(viewer).get(url)
    assert page.status_code == 200 and b'name="backbone"' not in page.content
    assert client_for(viewer).post(url, {"name": "mine"}).status_code == 403
    project.refresh_from_db()
    assert project.name == "Hive survey"


def test_it_lets_only_the_owner_share_and_unshare(client_for, project, owner, editor, make_user):
    newcomer = make_user("nina")
    add = reverse("projects:member-add", args=[project.pk])
    assert client_for(editor).post(add, {"username": "nina", "role": "viewer"}).status_code == 403
    client_for(owner).post(add, {"username": "nina", "role": "viewer"})
    membership = Membership.objects.get(project=project, user=newcomer)
    assert membership.role == Role.VIEWER
    page = client_for(owner).post(add, {"username": "ghost", "role": "viewer"}, follow=True)
    assert b"there is no user called" in page.content
    remove = reverse("projects:member-remove", args=[project.pk, membership.pk])
    client_for(owner).post(remove)
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_it_hides_settings_from_strangers(client_for, project, stranger):
    assert client_for(stranger).get(reverse("projects:settings", args=[project.pk])).status_code == 404


def test_it_answers_missing_pages_with_the_sites_own_page(client_for, owner, settings):
    settings.DEBUG = False
    response = client_for(owner).get("/projects/999999/")
    assert response.status_code == 404 and b"Nothing here" in response.content
    assert Client().get("/api/v1/nothing-here/").json() == {"detail": "Not found."}
