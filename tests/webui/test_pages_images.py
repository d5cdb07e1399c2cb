"""Images are only ever shown as freshly encoded JPEGs of their decoded pixels."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from PIL import Image

pytestmark = pytest.mark.django_db


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _ingest(project, owner, data: bytes, name="x.png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import ingest_image

    return ingest_image(project, owner, SimpleUploadedFile(name, data)).image


def test_it_serves_a_reencoded_jpeg_without_appended_html(client_for, project, owner, viewer, media_root):
    hostile = _encode(Image.new("RGB", (64, 48), (10, 200, 30)), "PNG") + b"<script>alert(1)</script><html>"
    image = _ingest(project, owner, hostile, "evil.png")
    for name in ("projects:image-thumb", "projects:image-full"):
        response = client_for(viewer).get(reverse(name, args=[project.pk, image.pk]))
        assert response.status_code == 200
        body = response.content
        assert b"<script" not in body and b"<html" not in body
        assert body.startswith(b"\xff\xd8") and response["Content-Type"] == "image/jpeg"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Cache-Control"].startswith("private")
        decoded = Image.open(io.BytesIO(body))
        assert decoded.format == "JPEG" and decoded.size == (64, 48)


def test_it_bounds_the_size_of_thumbnails_and_full_views(client_for, project, owner, media_root):
    image = _ingest(project, owner, _encode(Image.new("RGB", (2400, 1200), (90, 90, 90)), "JPEG"), "big.jpg")
    c = client_for(owner)
    thumb = Image.open(
        io.BytesIO(c.get(reverse("projects:image-thumb", args=[project.pk, image.pk])).content)
    )
    full = Image.open(io.BytesIO(c.get(reverse("projects:image-full", args=[project.pk, image.pk])).content))
    assert thumb.size == (256, 128)
    assert full.size == (1600, 800)


def test_it_shows_exif_rotated_photos_upright(client_for, project, owner, media_root):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = _encode(Image.new("RGB", (80, 40), (200, 0, 0)), "JPEG", exif=exif.tobytes())
    image = _ingest(project, owner, data, "phone.jpg")
    body = client_for(owner).get(reverse("projects:image-thumb", args=[project.pk, image.pk])).content
    assert Image.open(io.BytesIO(body)).size == (40, 80)


def test_it_answers_304_for_a_known_etag_and_caches_on_disk(client_for, project, owner, media_root, settings):
    from pathlib import Path

    image = _ingest(project, owner, _encode(Image.new("RGB", (30, 30), (1, 2, 3)), "PNG"))
    url = reverse("projects:image-thumb", args=[project.pk, image.pk])
    c = client_for(owner)
    first = c.get(url)
    assert first.status_code == 200 and first["ETag"]
    cached = (
        Path(settings.PINHOLE_MODEL_CACHE) / "derived" / "thumb" / image.sha256[:2] / f"{image.sha256}.jpg"
    )
    assert cached.read_bytes() == first.content
    again = c.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert again["X-Content-Type-Options"] == "nosniff"


def test_it_checks_access_before_answering_304(client_for, project, owner, stranger, media_root):
    image = _ingest(project, owner, _encode(Image.new("RGB", (30, 30), (1, 2, 3)), "PNG"))
    url = reverse("projects:image-thumb", args=[project.pk, image.pk])
    etag = client_for(owner).get(url)["ETag"]
    assert client_for(stranger).get(url, HTTP_IF_NONE_MATCH=etag).status_code == 404


def test_it_answers_404_when_the_stored_file_is_gone(client_for, project, owner, media_root):
    from django.core.files.storage import default_storage

    image = _ingest(project, owner, _encode(Image.new("RGB", (30, 30), (1, 2, 3)), "PNG"))
    default_storage.delete(image.file.name)
    response = client_for(owner).get(reverse("projects:image-full", args=[project.pk, image.pk]))
    assert response.status_code == 404


def test_an_iphone_photo_is_kept_as_a_jpeg_once(client_for, project, owner, media_root):
    pytest.importorskip("pillow_heif")
    from django.core.files.storage import default_storage

    data = _encode(Image.new("RGB", (96, 64), (20, 160, 60)), "HEIF", quality=95)
    image = _ingest(project, owner, data, "IMG_0001.HEIC")
    assert (image.format, image.width, image.height) == ("JPEG", 96, 64)
    assert image.file.name.endswith(".jpg") and image.original_name == "IMG_0001.HEIC"
    with default_storage.open(image.file.name, "rb") as handle:
        assert handle.read(3) == b"\xff\xd8\xff"
    assert _ingest(project, owner, data, "again.heic").pk == image.pk  # the same photo is one image
    full = client_for(owner).get(reverse("projects:image-full", args=[project.pk, image.pk]))
    assert full.status_code == 200 and Image.open(io.BytesIO(full.content)).size == (96, 64)


def test_a_tracking_pixel_is_refused_with_a_reason(project, owner, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import UploadRejected, ingest_image

    pixel = _encode(Image.new("RGB", (1, 1), (200, 0, 0)), "PNG")
    with pytest.raises(UploadRejected, match="1x1 pixels; a model needs at least 16 on each side"):
        ingest_image(project, owner, SimpleUploadedFile("pixel.png", pixel))
    assert not project.images.exists()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_metadata_hiding_a_script_never_comes_back(client_for, project, owner, fmt, media_root):
    from PIL import PngImagePlugin

    script = b"<script>alert(document.cookie)</script>"
    picture = Image.new("RGB", (64, 48), (10, 200, 30))
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", script.decode())
        data = _encode(picture, fmt, pnginfo=text)
    else:
        data = _encode(picture, fmt, comment=script)
    assert script in data  # the upload carries it
    image = _ingest(project, owner, data, f"x.{fmt.lower()}")
    for name in ("projects:image-thumb", "projects:image-full"):
        body = client_for(owner).get(reverse(name, args=[project.pk, image.pk])).content
        assert b"<script" not in body and Image.open(io.BytesIO(body)).size == (64, 48)
