"""Owner / editor / viewer / stranger / anonymous against every page that takes a project."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_sign_in(client, project):
    for url in [
        reverse("projects:list"),
        reverse("projects:create"),
        reverse("projects:detail", args=[project.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_it_shows_the_project_to_its_members(request, client_for, project, who):
    user = request.getfixturevalue(who)
    response = client_for(user).get(reverse("projects:detail", args=[project.pk]))
    assert response.status_code == 200
    assert project.name in response.content.decode()
    listing = client_for(user).get(reverse("projects:list"))
    assert project.name in listing.content.decode()


def test_it_hides_the_project_from_strangers(client_for, project, stranger):
    c = client_for(stranger)
    assert c.get(reverse("projects:detail", args=[project.pk])).status_code == 404
    assert project.name not in c.get(reverse("projects:list")).content.decode()
    assert c.get(reverse("projects:detail", args=[project.pk + 999])).status_code == 404


def test_it_keeps_the_admin_closed_to_non_staff(client_for, owner):
    response = client_for(owner).get(reverse("admin:training_modelversion_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_creates_a_project_with_labels_for_its_owner(client_for, stranger):
    c = client_for(stranger)
    response = c.post(reverse("projects:create"), {"name": "Solar cells", "labels": "ok, cracked , ok"})
    assert response.status_code == 200
    assert "listed twice" in response.content.decode()
    response = c.post(reverse("projects:create"), {"name": "Solar cells", "labels": "ok, cracked"})
    from webui.projects.models import Project

    created = Project.objects.get(name="Solar cells")
    assert response.status_code == 302 and response["Location"] == created.get_absolute_url()
    assert created.owner == stranger
    assert list(created.labels.values_list("name", flat=True)) == ["ok", "cracked"]


def test_it_escapes_hostile_project_names(client_for, owner):
    from webui.projects.models import Project

    project = Project.objects.create(name="<script>alert(1)</script>", owner=owner)
    body = client_for(owner).get(reverse("projects:detail", args=[project.pk])).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body


def test_it_requires_csrf_tokens_on_state_changes(owner):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    assert c.post(reverse("projects:create"), {"name": "x"}).status_code == 403
    assert c.post(reverse("logout")).status_code == 403


def test_it_refuses_to_be_framed(client_for, owner):
    response = client_for(owner).get(reverse("projects:list"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
