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
    page = client_for(owner).post(remove, follow=True)
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert b"nina was removed from the project." in page.content
    assert client_for(owner).post(remove).status_code == 404  # gone: no false "removed"


def test_it_hides_settings_from_strangers(client_for, project, stranger):
    assert client_for(stranger).get(reverse("projects:settings", args=[project.pk])).status_code == 404


def test_it_answers_missing_pages_with_the_sites_own_page(client_for, owner, settings):
    settings.DEBUG = False
    response = client_for(owner).get("/projects/999999/")
    assert response.status_code == 404 and b"Nothing here" in response.content
    assert Client().get("/api/v1/nothing-here/").json() == {"detail": "Not found."}


def _memberships(project):
    return sorted(project.memberships.values_list("user__username", "role"))


@pytest.mark.parametrize("who", ["editor", "viewer"])
def test_it_keeps_sharing_to_the_owner(request, client_for, project, make_user, who):
    """Editors and viewers can neither add, re-role (themselves included) nor remove members."""
    make_user("nina")
    before = _memberships(project)
    c = client_for(request.getfixturevalue(who))
    add = reverse("projects:member-add", args=[project.pk])
    for body in ({"username": "nina", "role": "editor"}, {"username": "vera", "role": "editor"}):
        assert c.post(add, body).status_code == 403, body
    for membership in project.memberships.all():
        remove = reverse("projects:member-remove", args=[project.pk, membership.pk])
        assert c.post(remove).status_code == 403
    assert _memberships(project) == before


def test_it_hides_settings_and_members_from_strangers(client_for, project, stranger, make_user):
    make_user("nina")
    before = _memberships(project)
    c = client_for(stranger)
    membership = project.memberships.first()
    assert c.post(reverse("projects:settings", args=[project.pk]), {"name": "mine"}).status_code == 404
    add = reverse("projects:member-add", args=[project.pk])
    assert c.post(add, {"username": "sam", "role": "editor"}).status_code == 404
    remove = reverse("projects:member-remove", args=[project.pk, membership.pk])
    assert c.post(remove).status_code == 404
    project.refresh_from_db()
    assert project.name == "Hive survey" and _memberships(project) == before


def test_it_removes_only_members_of_the_project_in_the_address(client_for, project, stranger):
    """An owner of another project cannot remove this project's members through their own project."""
    from webui.projects.models import Project

    theirs = Project.objects.create(name="Theirs", owner=stranger)
    before = _memberships(project)
    for membership in project.memberships.all():
        response = client_for(stranger).post(
            reverse("projects:member-remove", args=[theirs.pk, membership.pk])
        )
        assert response.status_code == 404
    assert _memberships(project) == before


def test_it_never_makes_a_member_an_owner(client_for, project, owner, editor):
    add = reverse("projects:member-add", args=[project.pk])
    client_for(owner).post(add, {"username": "eddie", "role": "owner"})
    client_for(owner).post(add, {"username": "olive", "role": "viewer"})
    project.refresh_from_db()
    assert project.owner == owner
    assert _memberships(project) == [("eddie", "editor"), ("vera", "viewer")]


def test_it_requires_csrf_tokens_for_settings_and_members(project, owner, make_user):
    make_user("nina")
    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    url = reverse("projects:settings", args=[project.pk])
    details = {"name": "Forged", "description": "", "backbone": "efficientnet_lite0"}
    membership = project.memberships.first()
    before = _memberships(project)
    assert c.post(url, details).status_code == 403
    add = reverse("projects:member-add", args=[project.pk])
    assert c.post(add, {"username": "nina", "role": "editor"}).status_code == 403
    assert c.post(reverse("projects:member-remove", args=[project.pk, membership.pk])).status_code == 403
    project.refresh_from_db()
    assert project.name == "Hive survey" and _memberships(project) == before

    # The same requests with the page's token go through: the 403s above were the CSRF check.
    c.get(url)
    token = c.cookies["csrftoken"].value
    assert c.post(url, {**details, "csrfmiddlewaretoken": token}).status_code == 302
    assert (
        c.post(add, {"username": "nina", "role": "editor", "csrfmiddlewaretoken": token}).status_code == 302
    )
    project.refresh_from_db()
    assert project.name == "Forged" and ("nina", "editor") in _memberships(project)
