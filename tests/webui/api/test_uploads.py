"""Uploading images over the API: many at once, duplicates, bad bytes, limits, names, formats."""

from __future__ import annotations

import pytest

from webui.projects.models import Image

pytestmark = pytest.mark.django_db


def _url(project) -> str:
    return f"/api/v1/projects/{project.pk}/images/"


def _stored(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def test_it_takes_many_files_in_one_request(api_for, project, editor, media_root, image_bytes, upload):
    files = [upload(f"red{i}.png", image_bytes((200, 30, 30), seed=i)) for i in range(3)]
    response = api_for(editor).post(_url(project), {"files": files, "label": "Ants"}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rejected"] == []
    assert [image["duplicate"] for image in body["images"]] == [False, False, False]
    assert {image["original_name"] for image in body["images"]} == {"red0.png", "red1.png", "red2.png"}
    assert {image["label"] for image in body["images"]} == {"Ants"}
    first = body["images"][0]
    assert set(first) == {
        "id",
        "original_name",
        "sha256",
        "width",
        "height",
        "format",
        "size",
        "label",
        "label_id",
        "labels",
        "labelled",
        "split",
        "created",
        "duplicate",
    }
    assert (first["width"], first["height"], first["format"], first["split"]) == (32, 24, "PNG", "auto")
    assert project.images.count() == 3
    assert project.labels.get().name == "Ants"


def test_it_marks_the_same_bytes_as_a_duplicate(api_for, project, editor, media_root, image_bytes, upload):
    data = image_bytes()
    api = api_for(editor)
    first = api.post(_url(project), {"files": [upload("a.png", data)]}, format="multipart").json()
    again = api.post(_url(project), {"files": [upload("b.png", data)]}, format="multipart")
    assert again.status_code == 200
    image = again.json()["images"][0]
    assert image["duplicate"] is True
    assert image["id"] == first["images"][0]["id"]
    assert image["original_name"] == "a.png"  # nothing overwritten
    assert project.images.count() == 1


def test_it_rejects_garbage_bytes_with_a_readable_reason(
    api_for, project, editor, media_root, image_bytes, upload
):
    files = [upload("photo.jpg", b"\x00garbage" * 50), upload("ok.png", image_bytes())]
    response = api_for(editor).post(_url(project), {"files": files}, format="multipart")
    assert response.status_code == 201
    body = response.json()
    assert len(body["images"]) == 1
    assert (body["rejected"][0]["index"], body["rejected"][0]["name"]) == (0, "photo.jpg")
    assert "not an image" in body["rejected"][0]["error"]


def test_it_says_which_file_it_refused_by_position(api_for, project, editor, media_root, image_bytes, upload):
    # Names cannot tell files apart (two cameras both write IMG_0001.JPG); positions can.
    files = [upload("IMG_0001.JPG", image_bytes()), upload("IMG_0001.JPG", b"not a picture" * 10)]
    body = api_for(editor).post(_url(project), {"files": files}, format="multipart").json()
    assert [(r["index"], r["name"]) for r in body["rejected"]] == [(1, "IMG_0001.JPG")]


def test_it_answers_400_when_every_file_is_rejected(api_for, project, editor, media_root, upload):
    response = api_for(editor).post(_url(project), {"files": [upload("x.jpg", b"nope")]}, format="multipart")
    assert response.status_code == 400
    assert response.json()["images"] == []
    assert "not an image" in response.json()["rejected"][0]["error"]
    assert not Image.objects.exists()


def test_it_rejects_a_truncated_jpeg_and_stores_nothing(
    api_for, project, editor, media_root, image_bytes, upload
):
    data = image_bytes(fmt="JPEG", size=(128, 128))
    response = api_for(editor).post(
        _url(project), {"files": [upload("cut.jpg", data[: len(data) // 2])]}, format="multipart"
    )
    assert response.status_code == 400
    assert "incomplete" in response.json()["rejected"][0]["error"]
    assert not Image.objects.exists()
    assert _stored(media_root) == []


def test_it_refuses_more_files_than_the_limit(
    api_for, project, editor, media_root, settings, image_bytes, upload
):
    settings.PINHOLE_MAX_FILES_PER_REQUEST = 3
    files = [upload(f"{i}.png", image_bytes(seed=i)) for i in range(4)]
    response = api_for(editor).post(_url(project), {"files": files}, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"] == "at most 3 files per request"
    assert not Image.objects.exists()


def test_it_refuses_101_files_at_the_default_limit(api_for, project, editor, media_root, settings, upload):
    assert settings.PINHOLE_MAX_FILES_PER_REQUEST == 100
    files = [upload(f"{i}.png", b"x") for i in range(101)]
    response = api_for(editor).post(_url(project), {"files": files}, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"] == "at most 100 files per request"


def test_it_stores_a_png_named_jpg_under_its_real_extension(
    api_for, project, editor, media_root, image_bytes, upload
):
    response = api_for(editor).post(
        _url(project), {"files": [upload("holiday.jpg", image_bytes(fmt="PNG"))]}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json()["images"][0]["format"] == "PNG"
    image = Image.objects.get()
    assert image.file.name.endswith(".png")
    assert "holiday" not in image.file.name


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.jpg", "evil\u202egpj.exe", "a\x07b.jpg", "../" + "x" * 5000]
)
def test_it_keeps_hostile_names_as_bounded_inert_text(api_for, project, editor, media_root, upload, name):
    response = api_for(editor).post(_url(project), {"files": [upload(name, b"nope")]}, format="multipart")
    shown = response.json()["rejected"][0]["name"]
    assert "/" not in shown and len(shown) <= 255
    assert all(ch.isprintable() for ch in shown)


def test_it_escapes_control_characters_in_rejected_names():
    from webui.api.serializers import escaped_name

    assert escaped_name("evil\u202egpj.exe") == "evil\\u202egpj.exe"
    assert escaped_name("a\x00b") == "a\\x00b"
    assert len(escaped_name("y" * 5000)) == 255


def test_it_needs_at_least_one_file(api_for, project, editor, media_root):
    response = api_for(editor).post(_url(project), {"label": "ants"}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.json()["detail"]
