"""Exporting one model version to one format: convert, describe, check, then put it in place.

    export_version(MODEL_DIR, "tflite", OUT_DIR, check=[photo paths])

The export is built in a hidden sibling of OUT_DIR and renamed into place only after its parity check
passed, so a failed or refused export leaves nothing behind that looks usable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import ONNX_FILE, verify_artifact
from ..errors import ExportError, ImageError
from . import bundle, parity
from .convert import convert
from .formats import get

# The pictures a check decodes at most (held-out pictures of a large project are plenty at this count).
MAX_CHECK_PICTURES = 200


@dataclass(frozen=True)
class ExportResult:
    """A finished export.

    Attributes:
        directory: where it is.
        format: the format's name.
        files: every file in it, relative (a Core ML package counts as one).
        parity: how its answers compare with the version's.
        info: its pinhole.json.
    """

    directory: Path
    format: str
    files: list[str]
    parity: parity.Parity
    info: dict

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "directory": str(self.directory),
            "files": self.files,
            "parity": self.parity.to_dict(),
        }


def check_batch(sources: Sequence | None, info: dict) -> np.ndarray:
    """The prepared pictures a check compares answers on.

    Args:
        sources: pictures (paths, bytes or files); unreadable ones are skipped. None or empty: fixed
            natural photos (crops of scikit-learn's two samples), the same on every host.
        info: the export's description (its preprocessing).
    Returns:
        float32 [N, 3, crop, crop].
    """
    from ..preprocessing import Preprocessing, load_rgb, preprocess

    prep = Preprocessing.from_dict(info["preprocessing"])
    rows = []
    for source in list(sources or [])[:MAX_CHECK_PICTURES]:
        try:
            rows.append(preprocess(load_rgb(source, target_size=prep.resize), prep))
        except ImageError:
            continue
    if rows:
        return np.stack(rows)
    from ..engines import calibration_batch

    return calibration_batch(prep.crop, prep.mean, prep.std)


def export_version(
    model_dir: str | os.PathLike,
    format_name: str,
    out: str | os.PathLike,
    *,
    check: Sequence | None = None,
    version: str = "",
    progress: Callable[[float, str], None] | None = None,
) -> ExportResult:
    """Export a model version.

    Args:
        model_dir: the version's directory (verified against its manifest first).
        format_name: a formats.FORMATS name.
        out: the export directory to create (must not exist).
        check: pictures to compare answers on (the site passes the version's held-out pictures).
        version: how the version is named where it came from ("Version 3 of Bees"), for pinhole.json.
        progress: called with (fraction, message) between steps.
    Returns:
        The export.
    Raises:
        ValueError: an unknown format.
        ArtifactError: the version is missing or corrupt.
        ExportError: a converter is not installed, a conversion failed, or the export's answers are
            not the version's (nothing is left at `out`).
    """
    fmt = get(format_name)
    report = progress or (lambda fraction, message: None)
    missing = fmt.missing()
    if missing:
        raise ExportError(
            f"{fmt.title} export needs {', '.join(missing)} on this host (pip install 'pinhole[export]')"
        )
    model_dir, out = Path(model_dir), Path(out)
    if out.exists():
        raise ExportError(f"{out} already exists")
    manifest = verify_artifact(model_dir)
    source = model_dir / ONNX_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        report(0.05, f"converting to {fmt.title}")
        try:
            files = convert(fmt, source, work, {**manifest})
        except Exception as exc:  # each converter raises its own types for a graph it cannot take
            raise ExportError(f"converting to {fmt.title} failed: {type(exc).__name__}: {exc}") from exc
        info = bundle.describe(manifest, fmt, files, version)
        bundle.write_info(work, info)
        report(0.6, "checking its answers against the version's")
        batch = check_batch(check, info)
        expected = parity.reference(source, batch)
        labels = info["labels"] if info["task_type"] == "single_label" else None
        try:
            result = parity.check(fmt, work, source, batch, expected, labels)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
        if not result.passed:
            raise ExportError(
                f"the {fmt.title} export does not answer as the version does: {result.summary()}"
            )
        info["parity"] = result.to_dict()
        bundle.write_info(work, info)
        companions = bundle.write_companions(work, info, fmt)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report(1.0, f"{fmt.title}: {result.summary()}")
    return ExportResult(out, fmt.name, [*files, bundle.INFO_FILE, *companions], result, info)
