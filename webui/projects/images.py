"""Stored images: what a browser is shown of them (fresh JPEGs, never the stored bytes), and removing
images and whole projects with their files."""

from __future__ import annotations

import io
import logging
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image as PILImage

from webui.lib.decoding import slot
from webui.projects.models import Image, Project

log = logging.getLogger(__name__)


def delete_image(image: Image) -> None:
    """Remove the row, then its file once the deletion has committed."""
    name = image.file.name
    image.delete()
    transaction.on_commit(lambda: default_storage.delete(name))


def delete_project(project: Project) -> None:
    """Remove a project, its rows and, once that commits, its stored images, artifacts and exports."""
    files = list(project.images.values_list("file", flat=True))
    for version in project.versions.all():
        files.extend(version.artifact_files())
        files.extend(version.exports.exclude(file="").values_list("file", flat=True))  # exported zips
    files.extend(project.zip_imports.values_list("archive", flat=True))  # imports not finished yet
    with transaction.atomic():
        # The serving pointer PROTECTs its version; release it so the cascade can remove versions.
        Project.objects.filter(pk=project.pk).update(serving_version=None)
        project.delete()
        transaction.on_commit(lambda: _remove_files(files))


def _remove_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("could not remove %s of a deleted project", name, exc_info=True)


DERIVATIVES = {"thumb": 256, "full": 1600}


def derivative(image: Image, kind: str, file=None) -> bytes:
    """A freshly encoded JPEG of the image's decoded pixels, never the stored bytes
    (bytes hidden in a comment or an appended page never reach a browser).

    `file`: the stored file, for another row with a `sha256` (a kept prediction photo); default
    `image.file`.

    Cached on disk by content hash under PINHOLE_MODEL_CACHE/thumbs, so each image is decoded once.
    """
    from classifier.preprocessing import decoded_pixels, load_rgb, read_header

    box = DERIVATIVES[kind]
    # "derived": a cache before comments were stripped was kept under "thumbs" and is not read.
    path = Path(settings.PINHOLE_MODEL_CACHE) / "derived" / kind / image.sha256[:2] / f"{image.sha256}.jpg"
    try:
        return path.read_bytes()
    except OSError:
        pass
    with default_storage.open((file or image.file).name, "rb") as handle:
        data = handle.read()
    with slot(decoded_pixels(read_header(data), box)):
        picture = load_rgb(data, target_size=box)
        picture.thumbnail((box, box), PILImage.Resampling.LANCZOS)
        # Pillow writes what it read along with the pixels (a JPEG or GIF comment, PNG text): none of it.
        picture.info.clear()
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=82 if kind == "thumb" else 88, optimize=True)
        encoded = buffer.getvalue()
        del picture
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(encoded)
        os.replace(temporary, path)  # atomic: a concurrent reader sees the old state or the whole file
    except OSError:
        log.warning("could not cache the %s of image %s", kind, image.pk, exc_info=True)
    return encoded


def derivative_response(request, row, kind: str, file=None):
    """An HTTP answer with `derivative(row, kind, file)`: a JPEG with an ETag (304 when the browser has
    it), private caching, never sniffed; a plain 404 when the picture cannot be shown."""
    from django.http import HttpResponse, HttpResponseNotModified

    from classifier.errors import ClassifierError

    etag = f'"{row.sha256[:32]}-{kind}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponseNotModified()
    else:
        try:
            data = derivative(row, kind, file)
        except (ClassifierError, OSError):
            log.warning("%s %s cannot be shown", type(row).__name__, row.pk, exc_info=True)
            response = HttpResponse("This image cannot be shown.", status=404, content_type="text/plain")
            response["X-Content-Type-Options"] = "nosniff"
            return response
        response = HttpResponse(data, content_type="image/jpeg")
        response["Content-Disposition"] = "inline"
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
