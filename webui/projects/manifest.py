"""Multi-label dataset manifests: which labels each file of a dataset zip has.

A multi-label export (export.py) puts every photo under images/ and lists it in two manifests at the
top of the zip, which the zip import (imports.py) reads back:

    labels.csv     file,labels,sha256,split      labels separated by ";" (empty: none of the labels)
    labels.jsonl   {"file": ..., "labels": [...], "sha256": ..., "split": ...} one per line

Either one is enough to import; labels.jsonl is read first. A file the manifest does not list takes
its folder's name as its one label, as in a single-label zip.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

CSV = "labels.csv"
JSONL = "labels.jsonl"
SEPARATOR = ";"
# The most of a manifest read (a manifest for the largest zip allowed is far smaller).
MAX_BYTES = 32 * 1024 * 1024


class ManifestError(ValueError):
    """A manifest that cannot be read; the message says where."""


def csv_row(file: str, labels: list[str], sha256: str, split: str) -> list[str]:
    return [file, SEPARATOR.join(labels), sha256, split]


CSV_HEADER = ["file", "labels", "sha256", "split"]


def jsonl_line(file: str, labels: list[str], sha256: str, split: str) -> str:
    return json.dumps({"file": file, "labels": labels, "sha256": sha256, "split": split}, ensure_ascii=False)


def _top_level(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    for info in archive.infolist():
        if info.filename.lower() == name:
            return info
    return None


def _text(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    if info.file_size > MAX_BYTES:
        raise ManifestError(f"{info.filename} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    with archive.open(info) as handle:
        data = handle.read(MAX_BYTES + 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"{info.filename} is not UTF-8 text") from None


def read(archive: zipfile.ZipFile) -> dict[str, list[str]] | None:
    """{file path in the zip: its labels} from the archive's manifest, or None when it has none.

    Raises:
        ManifestError: a manifest that is not UTF-8, a line that is not a JSON object with "file" and a
            list of "labels", or a CSV without file and labels columns.
    """
    info = _top_level(archive, JSONL)
    if info is not None:
        found = {}
        for number, line in enumerate(_text(archive, info).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise ManifestError(f"{JSONL} line {number} is not JSON") from None
            if not (
                isinstance(row, dict)
                and isinstance(row.get("file"), str)
                and isinstance(row.get("labels"), list)
            ):
                raise ManifestError(f'{JSONL} line {number} needs "file" and a list of "labels"')
            found[row["file"]] = [str(name).strip()[:100] for name in row["labels"] if str(name).strip()]
        return found
    info = _top_level(archive, CSV)
    if info is None:
        return None
    reader = csv.DictReader(io.StringIO(_text(archive, info)))
    if not reader.fieldnames or not {"file", "labels"} <= set(reader.fieldnames):
        return None  # a single-label export's labels.csv (file,label,...): the folders say it all
    return {
        row["file"]: [name.strip()[:100] for name in (row["labels"] or "").split(SEPARATOR) if name.strip()]
        for row in reader
        if row.get("file")
    }
