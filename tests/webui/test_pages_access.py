"""Every project page added for upload / label / images: who may see it, who may change through it."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _png(colour=(200, 40, 40)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def data(project, owner, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.services import get_or_create_label, ingest_image

    label = get_or_create_label(project, "ants")
    image = ingest_image(project, owner, SimpleUploadedFile("a.png", _png()), label=label).image
    return {"label": label, "image": image}


def _reads(project, data):
    p, i = project.pk, data["image"].pk
    return [
        reverse("projects:detail", args=[p]),
        reverse("projects:upload", args=[p]),
        reverse("projects:label", args=[p]),
        reverse("projects:label", args=[p]) + "?show=unlabeled",
        reverse("projects:image-thumb", args=[p, i]),
        reverse("projects:image-full", args=[p, i]),
    ]


def _writes(project, data):
    p, lab, i = project.pk, data["label"].pk, data["image"].pk
    return [
        (reverse("projects:label-apply", args=[p]), {"images": str(i), "label": "none"}),
        (reverse("projects:accept-suggestions", args=[p]), {"threshold": "90"}),
        (reverse("projects:label-create", args=[p]), {"name": "wasps"}),
        (reverse("projects:label-update", args=[p, lab]), {"name": "ants", "colour": "#000000"}),
        (reverse("projects:label-delete", args=[p, lab]), {}),
        (reverse("projects:upload-zip", args=[p]), {}),
        (reverse("projects:delete", args=[p]), {"confirm_name": "nope"}),
    ]


def test_it_sends_anonymous_visitors_to_sign_in(project, data):
    anonymous = Client()
    for url in _reads(project, data):
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    for url, body in _writes(project, data):
        response = anonymous.post(url, body)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_it_shows_every_page_to_members(request, client_for, project, data, who):
    c = client_for(request.getfixturevalue(who))
    for url in _reads(project, data):
        assert c.get(url).status_code == 200, url


def test_it_answers_404_to_strangers_everywhere(client_for, project, data, stranger):
    c = client_for(stranger)
    for url in _reads(project, data):
        assert c.get(url).status_code == 404, url
    for url, body in _writes(project, data):
        assert c.post(url, body).status_code == 404, url
    data["image"].refresh_from_db()
    assert data["image"].label_id == data["label"].pk


def test_it_answers_404_for_an_image_of_another_project(client_for, project, data, stranger, media_root):
    from webui.projects.models import Project

    theirs = Project.objects.create(name="Theirs", owner=stranger)
    c = client_for(stranger)
    assert c.get(reverse("projects:image-thumb", args=[theirs.pk, data["image"].pk])).status_code == 404


def test_it_refuses_changes_from_viewers(client_for, project, data, viewer):
    c = client_for(viewer)
    for url, body in _writes(project, data):
        assert c.post(url, body).status_code == 403, url
    data["image"].refresh_from_db()
    assert data["image"].label_id == data["label"].pk
    assert project.labels.count() == 1


def test_it_hides_controls_from_viewers(client_for, project, data, viewer, editor):
    label_page = client_for(viewer).get(reverse("projects:label", args=[project.pk])).content.decode()
    assert 'id="actionbar"' not in label_page and "Add label" not in label_page
    upload_page = client_for(viewer).get(reverse("projects:upload", args=[project.pk])).content.decode()
    assert "View only" in upload_page and "upload.js" not in upload_page
    editor_page = client_for(editor).get(reverse("projects:label", args=[project.pk])).content.decode()
    assert 'id="actionbar"' in editor_page and "Add label" in editor_page


def test_it_lets_only_the_owner_delete_the_project(client_for, project, data, editor, owner):
    from webui.projects.models import Project

    url = reverse("projects:delete", args=[project.pk])
    assert client_for(editor).post(url, {"confirm_name": project.name}).status_code == 403
    assert client_for(owner).post(url, {"confirm_name": "wrong"}).status_code == 302
    assert Project.objects.filter(pk=project.pk).exists()
    response = client_for(owner).post(url, {"confirm_name": project.name})
    assert response.status_code == 302 and not Project.objects.filter(pk=project.pk).exists()


def test_it_requires_csrf_tokens_on_every_change(project, data, owner):
    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    for url, body in _writes(project, data):
        assert c.post(url, body).status_code == 403, url


def test_it_refuses_to_be_framed(client_for, project, data, owner):
    c = client_for(owner)
    for url in _reads(project, data):
        assert c.get(url)["X-Frame-Options"] == "DENY", url


def test_it_renders_the_tabs_with_links_to_every_project_page(client_for, project, data, owner):
    body = client_for(owner).get(reverse("projects:detail", args=[project.pk])).content.decode()
    for name in ("projects:upload", "projects:label"):
        assert reverse(name, args=[project.pk]) in body
    assert 'class="tabs"' in body


def test_it_lists_projects_with_a_cover_and_counts(client_for, project, data, owner, make_version):
    version = make_version(project, 1, accuracy=0.875)
    version.promote(owner)
    body = client_for(owner).get(reverse("projects:list")).content.decode()
    assert reverse("projects:image-thumb", args=[project.pk, data["image"].pk]) in body
    assert "1 image " in body or "1 image\n" in body or "1 image ·" in body
    assert "1 label" in body
    assert "88%" in body  # 0.875 rounded
