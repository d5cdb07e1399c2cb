"""Bulk import from a zip: refused at once from the central directory, or stored and imported by a job."""

from __future__ import annotations

import io
import stat
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

pytestmark = pytest.mark.django_db


def _png(colour, seed=0) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.integers(-30, 30, (24, 32, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype("uint8"), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _post(client, project, data: bytes, *, name="photos.zip", json=True):
    """POST an archive; a queued import stays queued (no worker runs in these tests)."""
    headers = {"HTTP_ACCEPT": "application/json"} if json else {}
    return client.post(
        reverse("projects:upload-zip", args=[project.pk]),
        {"archive": SimpleUploadedFile(name, data, content_type="application/zip")},
        **headers,
    )


def _imported(client, project, data: bytes) -> dict:
    """POST an archive, run the import it queued as a worker would, and answer the job's final status."""
    from webui.projects.imports import run_zip_import

    response = _post(client, project, data)
    assert response.status_code == 202, response.json()
    queued = response.json()
    assert queued["status"] == "queued" and queued["entries"] > 0
    run_zip_import(queued["id"])
    return client.get(queued["status_url"], HTTP_ACCEPT="application/json").json()


def test_it_imports_folders_as_labels(client_for, project, editor, media_root):
    entries = {f"ants/a{i}.png": _png((200, 40, 40), i) for i in range(3)}
    entries |= {f"bees/b{i}.png": _png((40, 40, 200), 10 + i) for i in range(2)}
    entries |= {
        "loose.png": _png((90, 90, 90), 99),
        "__MACOSX/ants/._a0.png": b"junk",
        "bees/.DS_Store": b"x",
    }
    body = _imported(client_for(editor), project, _zip(entries))
    assert body["status"] == "succeeded" and body["progress"] == 1.0 and body["processed"] == 6
    assert body["created"] == 6 and body["duplicates"] == 0 and body["rejected"] == []
    assert body["labels"] == ["ants", "bees"] and body["skipped"] == 2 and body["unlabeled"] == 1
    counts = {label.name: label.images.count() for label in project.labels.all()}
    assert counts == {"ants": 3, "bees": 2}
    assert project.images.filter(label__isnull=True).count() == 1


def test_it_strips_a_wrapping_folder_and_reports_duplicates_and_bad_files(
    client_for, project, editor, media_root
):
    first = _png((200, 40, 40), 1)
    entries = {
        "hymenoptera/ants/1.png": first,
        "hymenoptera/ants/copy.png": first,
        "hymenoptera/bees/notes.jpg": b"not an image at all",
        "hymenoptera/bees/2.png": _png((40, 40, 200), 2),
    }
    body = _imported(client_for(editor), project, _zip(entries))
    assert body["created"] == 2 and body["duplicates"] == 1
    assert [r["name"] for r in body["rejected"]] == ["hymenoptera/bees/notes.jpg"]
    assert "not an image" in body["rejected"][0]["error"]
    assert sorted(project.labels.values_list("name", flat=True)) == ["ants", "bees"]


def test_it_rejects_a_zip_bomb_quickly_from_the_central_directory(client_for, project, editor, media_root):
    bomb = _zip({"ants/zeros.png": bytes(200 * 1024 * 1024)})
    assert len(bomb) < 1024 * 1024
    started = time.monotonic()
    response = _post(client_for(editor), project, bomb)
    assert time.monotonic() - started < 2
    assert response.status_code == 400
    assert "MB" in response.json()["error"] or "compressed" in response.json()["error"]
    assert project.images.count() == 0 and project.labels.count() == 0


def test_it_rejects_many_small_entries_that_add_up(client_for, project, editor, media_root, settings):
    settings.PINHOLE_ZIP_MAX_UNCOMPRESSED_MB = 1
    entries = {f"ants/{i}.bin": bytes(300 * 1024) for i in range(4)}
    response = _post(client_for(editor), project, _zip(entries, compression=zipfile.ZIP_STORED))
    assert response.status_code == 400 and "more than 1 MB" in response.json()["error"]


def test_it_rejects_a_compression_ratio_only_a_bomb_has(client_for, project, editor, media_root, settings):
    settings.PINHOLE_MAX_IMAGE_MB = 50
    response = _post(client_for(editor), project, _zip({"ants/a.png": bytes(5 * 1024 * 1024)}))
    assert response.status_code == 400 and "compressed" in response.json()["error"]


def test_it_rejects_too_many_entries(client_for, project, editor, media_root, settings):
    settings.PINHOLE_ZIP_MAX_ENTRIES = 5
    response = _post(client_for(editor), project, _zip({f"ants/{i}.png": b"x" for i in range(6)}))
    assert response.status_code == 400 and "6 entries" in response.json()["error"]


@pytest.mark.parametrize(
    "name", ["../evil.png", "ants/../../evil.png", "/etc/evil.png", "C:/evil.png", "a\\..\\evil.png"]
)
def test_it_rejects_paths_that_escape(client_for, project, editor, media_root, name):
    data = _zip({"ants/fine.png": _png((1, 2, 3)), name: _png((4, 5, 6))})
    response = _post(client_for(editor), project, data)
    assert response.status_code == 400 and "unsafe path" in response.json()["error"]
    assert project.images.count() == 0


def test_it_rejects_symbolic_links(client_for, project, editor, media_root):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("ants/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    response = _post(client_for(editor), project, buffer.getvalue())
    assert response.status_code == 400 and "symbolic link" in response.json()["error"]


def test_it_rejects_what_is_not_a_zip(client_for, project, editor, media_root):
    response = _post(client_for(editor), project, b"PK\x03\x04 but then nothing useful")
    assert response.status_code == 400 and "not a zip" in response.json()["error"]


def test_it_redirects_with_a_message_without_javascript(client_for, project, editor, media_root):
    c = client_for(editor)
    response = _post(c, project, _zip({"ants/1.png": _png((1, 2, 3))}), json=False)
    assert response.status_code == 302 and response["Location"] == reverse(
        "projects:upload", args=[project.pk]
    )
    page = c.get(response["Location"]).content.decode()
    assert "photos.zip is being imported in the background (1 pictures)" in page
    response = _post(c, project, b"nope", json=False)
    assert "not a zip" in c.get(response["Location"]).content.decode()


def _stored_archives(media_root) -> list:
    """The archives in storage (kept under projects/<id>/imports/ until their import has ended)."""
    return sorted(p.name for p in media_root.rglob("*.zip"))


def test_a_refused_archive_stores_nothing(client_for, project, editor, media_root):
    from webui.projects.models import ZipImport

    for data in [b"nope", _zip({"../evil.png": _png((1, 2, 3))}), _zip({"notes.txt/": b""})]:
        assert _post(client_for(editor), project, data).status_code == 400
    assert _stored_archives(media_root) == [] and not ZipImport.objects.exists()


def test_the_archive_is_removed_once_imported(client_for, project, editor, media_root):
    body = _imported(client_for(editor), project, _zip({"ants/1.png": _png((1, 2, 3))}))
    assert body["created"] == 1 and _stored_archives(media_root) == []


def test_a_worker_taking_over_continues_where_the_dead_one_stopped(client_for, project, editor, media_root):
    from datetime import timedelta

    from django.utils import timezone

    from webui.projects.imports import run_zip_import
    from webui.projects.models import ZipImport

    entries = {f"ants/{i}.png": _png((200, 40, 40), i) for i in range(5)}
    job_id = _post(client_for(editor), project, _zip(entries)).json()["id"]
    # A worker claimed it, imported the first two pictures, saved that, and died.
    ZipImport.objects.filter(pk=job_id).update(
        status="running",
        attempts=1,
        processed=2,
        created_count=2,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    run_zip_import(job_id)
    job = ZipImport.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.processed) == ("succeeded", 2, 5)
    assert (job.created_count, job.duplicates) == (5, 0)
    assert (
        project.images.count() == 3
    )  # only the three it had not reached: the first two were never stored here


def test_cancelling_stops_the_import_and_keeps_what_came_in(
    client_for, project, editor, media_root, monkeypatch
):
    from webui.projects import imports
    from webui.projects.models import ZipImport

    monkeypatch.setattr(imports, "SAVE_EVERY_ENTRIES", 1)
    c = client_for(editor)
    queued = _post(c, project, _zip({f"ants/{i}.png": _png((200, 40, 40), i) for i in range(4)})).json()
    ZipImport.objects.filter(pk=queued["id"]).update(cancel_requested=True)  # asked while it runs
    imports.run_zip_import(queued["id"])
    body = c.get(queued["status_url"]).json()
    assert body["status"] == "cancelled" and body["created"] == 1
    assert body["message"] == "cancelled; imported 1 of 4 pictures (0 already in the project, 0 refused)"
    assert project.images.count() == 1 and _stored_archives(media_root) == []


def test_a_queued_import_is_cancelled_at_once_by_its_page(client_for, project, editor, viewer, media_root):
    c = client_for(editor)
    queued = _post(c, project, _zip({"ants/1.png": _png((1, 2, 3))})).json()
    assert client_for(viewer).post(queued["cancel_url"], HTTP_ACCEPT="application/json").status_code == 403
    assert len(_stored_archives(media_root)) == 1
    body = c.post(queued["cancel_url"], HTTP_ACCEPT="application/json").json()
    assert body["status"] == "cancelled" and _stored_archives(media_root) == []
    again = c.post(queued["cancel_url"], HTTP_ACCEPT="application/json")
    assert again.status_code == 409 and "cannot be cancelled" in again.json()["error"]
