"""A project's labelled photos as a dataset: a zip anyone can train on, and that Pinhole imports back.

ImageFolder layout (one folder per label, as torchvision, Keras and Pinhole's own zip import read it),
plus `labels.csv` (file, label, sha256, split) and a short README.txt; the importer skips those two.
The zip is streamed as it is written (photos are already compressed, so they are stored, not deflated):
nothing is built in memory or on disk first, whatever the project's size.

    rows = dataset(project)                      # every labelled photo, with its label now
    rows = dataset(project, version=v3)          # exactly what v3 learned from, labels as they were then
    response = StreamingHttpResponse(zip_stream(project, rows))
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

from webui.projects import manifest as multi
from webui.projects.models import Image, Project

MANIFEST = "labels.csv"
README = "README.txt"
# What the zip importer skips at the top of an archive: this module's own extra files.
EXTRA_FILES = frozenset({MANIFEST.lower(), README.lower(), multi.JSONL})


@dataclass(frozen=True)
class Row:
    image: Image
    label: str
    labels: tuple[str, ...] | None = None  # multi-label projects: the labels in it (empty: none)


@dataclass(frozen=True)
class Dataset:
    rows: list[Row]
    missing: int  # images the version learned from that have been deleted since


def dataset(project: Project, version=None) -> Dataset:
    """The labelled photos to export: every one with its label now, or exactly those `version`
    learned from, with the labels they had then."""
    if project.multi_label:
        return _multi_label_dataset(project, version)
    if version is None:
        images = project.images.labelled().select_related("label").order_by("label__name", "sha256")
        return Dataset([Row(image, image.label.name) for image in images], 0)
    learned = {sha: label for sha, label in version.learned}
    images = project.images.filter(sha256__in=list(learned)).order_by("sha256")
    rows = sorted(
        (Row(image, learned[image.sha256]) for image in images), key=lambda r: (r.label, r.image.sha256)
    )
    return Dataset(rows, len(learned) - len(rows))


def _multi_label_dataset(project: Project, version) -> Dataset:
    if version is None:
        images = project.images.labelled().prefetch_related("labels").order_by("sha256")
        return Dataset([Row(i, "", tuple(lab.name for lab in i.labels.all())) for i in images], 0)
    learned = {sha: tuple(labels) for sha, labels in version.learned}
    images = project.images.filter(sha256__in=list(learned)).order_by("sha256")
    rows = [Row(image, "", learned[image.sha256]) for image in images]
    return Dataset(rows, len(learned) - len(rows))


def folder_name(label: str) -> str:
    """A label as a folder name that unpacks safely everywhere and reads back as the same label
    wherever it can (spaces and accents stay; path separators and control characters do not)."""
    name = re.sub(r"[\x00-\x1f\x7f/\\:*?\"<>|]", "_", label).strip().rstrip(".")
    return name if name and not name.startswith(".") else f"_{name}"


def entry_name(row: Row) -> str:
    stem = get_valid_filename(PurePosixPath(row.image.original_name or "photo").stem)[:60] or "photo"
    suffix = PurePosixPath(row.image.file.name).suffix.lower() or ".jpg"
    folder = "images" if row.labels is not None else folder_name(row.label)
    return f"{folder}/{row.image.sha256[:12]}-{stem}{suffix}"


def _readme(project: Project, data: Dataset, version) -> str:
    what = f"what version {version.number} learned from" if version else "every labelled photo"
    labels = sorted({row.label for row in data.rows})
    missing = f"\n{data.missing} photos it learned from have been deleted since and are not here.\n"
    if project.multi_label:
        names = sorted({name for row in data.rows for name in row.labels or ()})
        return (
            f"{project.name}: {len(data.rows)} photos, {what}. Each may have any of the labels\n"
            f"({', '.join(names)}), or none of them.\n\n"
            "The photos are in images/. labels.csv lists each file with its labels (separated by ';',\n"
            "empty for none of them), its SHA-256 and whether Pinhole kept it aside as a test photo;\n"
            "labels.jsonl says the same, one JSON object per line. Pinhole imports this zip back as it is\n"
            "(Upload, zip) into a project whose photos may have several labels.\n"
            + (missing if data.missing else "")
        )
    return (
        f"{project.name}: {len(data.rows)} photos, {what}.\n\n"
        f"One folder per label ({', '.join(labels)}). labels.csv lists each file with its label, its\n"
        "SHA-256 and whether Pinhole kept it aside as a test photo. Most training tools read the folders\n"
        "as they are (torchvision's ImageFolder, Keras' image_dataset_from_directory); Pinhole imports\n"
        "this zip back as it is (Upload, zip).\n"
        + (
            f"\n{data.missing} photos it learned from have been deleted since and are not here.\n"
            if data.missing
            else ""
        )
    )


class _Sink(io.RawIOBase):
    """Where zipfile writes: collects bytes until the generator hands them on."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


def zip_stream(project: Project, data: Dataset, version=None) -> Iterator[bytes]:
    """The dataset as zip bytes, a photo at a time. Photos whose file has gone are left out."""
    sink = _Sink()
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    lines: list[str] = []  # labels.jsonl, for a multi-label project
    writer.writerow(multi.CSV_HEADER if project.multi_label else ["file", "label", "sha256", "split"])
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for row in data.rows:
            name = entry_name(row)
            try:
                with (
                    default_storage.open(row.image.file.name, "rb") as handle,
                    archive.open(name, "w") as out,
                ):
                    while chunk := handle.read(1 << 20):
                        out.write(chunk)
                        yield sink.drain()
            except FileNotFoundError:
                continue
            split = "test" if row.image.is_test else "train"
            if row.labels is not None:
                writer.writerow(multi.csv_row(name, list(row.labels), row.image.sha256, split))
                lines.append(multi.jsonl_line(name, list(row.labels), row.image.sha256, split))
            else:
                writer.writerow([name, row.label, row.image.sha256, split])
            yield sink.drain()
        archive.writestr(MANIFEST, manifest.getvalue())
        if project.multi_label:
            archive.writestr(multi.JSONL, "".join(line + "\n" for line in lines))
        archive.writestr(README, _readme(project, data, version))
    yield sink.drain()


def download(project: Project, version=None):
    """The dataset as a streamed attachment, named after the project (and the version)."""
    from django.http import StreamingHttpResponse
    from django.utils.text import slugify

    name = (slugify(project.name)[:40] or "project") + (
        f"-v{version.number}-training-set" if version else "-dataset"
    )
    response = StreamingHttpResponse(
        zip_stream(project, dataset(project, version), version), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
