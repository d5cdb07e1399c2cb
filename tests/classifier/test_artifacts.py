"""The model version format: round trip, every kind of damage, atomic writes, no overwrite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from classifier import artifacts
from classifier.artifacts import (
    FORMAT_VERSION,
    UNKNOWN_PREFIX,
    head_arrays,
    load_arrays,
    new_manifest,
    read_manifest,
    split_prefixed,
    verify_artifact,
    write_artifact,
)
from classifier.errors import ArtifactError
from classifier.heads import LinearHead
from classifier.unknown import UnknownDetector

LABELS = ["ants", "bees"]


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = np.abs(rng.normal(0, 1, (40, 12)) + np.outer(y, np.full(12, 1.5)))
    return X, LinearHead().fit(X, np.array(LABELS)[y]), UnknownDetector().fit(X)


def manifest():
    return new_manifest(
        backbone={"name": "efficientnet_lite0", "weights_id": "lite0@1", "feature_dim": 12},
        preprocessing={"resize": 256, "crop": 224},
        labels=LABELS,
        strategy="linear",
        metrics={"accuracy": 0.95, "top_k_accuracy": {1: 0.95}},
        fingerprint="abc123",
    )


def write(tmp_path, fitted, **kwargs) -> Path:
    _, head, det = fitted
    kwargs.setdefault("files", {"model.onnx": b"not really onnx"})
    return write_artifact(tmp_path / "v1", manifest=manifest(), arrays=head_arrays(head, det), **kwargs)


def test_it_round_trips_a_version(tmp_path, fitted):
    X, head, det = fitted
    path = write(
        tmp_path, fitted, extra_arrays={"tail.safetensors": {"0.weight": np.ones((2, 3), np.float32)}}
    )
    m = verify_artifact(path)
    assert m["format_version"] == FORMAT_VERSION
    assert m["labels"] == LABELS and m["strategy"] == "linear" and m["fingerprint"] == "abc123"
    assert m["backbone"]["feature_dim"] == 12
    assert set(m["files"]) == {"head.safetensors", "tail.safetensors", "model.onnx"}
    assert {"python", "numpy", "classifier"} <= set(m["library_versions"])
    assert m["created"] and m["extra"] == {}
    onnx = (path / "model.onnx").read_bytes()
    assert m["files"]["model.onnx"] == {"sha256": hashlib.sha256(onnx).hexdigest(), "size": len(onnx)}
    arrays = load_arrays(path)
    again = LinearHead.from_arrays(arrays)
    np.testing.assert_array_equal(again.predict_proba(X), head.predict_proba(X))
    det2 = UnknownDetector.from_arrays(split_prefixed(arrays, UNKNOWN_PREFIX))
    np.testing.assert_allclose(det2.score(X), det.score(X))
    assert load_arrays(path, "tail.safetensors")["0.weight"].shape == (2, 3)
    assert read_manifest(path) == m


def test_it_copies_files_given_as_paths(tmp_path, fitted):
    src = tmp_path / "exported.onnx"
    src.write_bytes(b"\x00" * 3_000_000)
    path = write(tmp_path, fitted, files={"model.onnx": src})
    assert verify_artifact(path)["files"]["model.onnx"]["size"] == 3_000_000


def test_it_refuses_to_overwrite(tmp_path, fitted):
    path = write(tmp_path, fitted)
    with pytest.raises(ArtifactError, match="already exists"):
        write(tmp_path, fitted)
    verify_artifact(path)


def test_it_replaces_only_when_asked(tmp_path, fitted):
    path = write(tmp_path, fitted)
    write(tmp_path, fitted, files={"model.onnx": b"second"}, overwrite=True)
    assert (path / "model.onnx").read_bytes() == b"second"
    verify_artifact(path)
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_a_failed_write_leaves_nothing_visible(tmp_path, fitted):
    with pytest.raises(ArtifactError, match="could not write"):
        write(tmp_path, fitted, files={"model.onnx": b"fine", "labels.txt": tmp_path / "vanished.bin"})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_replace_keeps_the_old_version(tmp_path, fitted, monkeypatch):
    path = write(tmp_path, fitted)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts, "_write_bytes", broken)
    with pytest.raises(ArtifactError, match="No space left"):
        write(tmp_path, fitted, overwrite=True)
    verify_artifact(path)
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_it_reports_a_missing_version_or_manifest(tmp_path, fitted):
    with pytest.raises(ArtifactError, match="does not exist"):
        verify_artifact(tmp_path / "nope")
    path = write(tmp_path, fitted)
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        verify_artifact(path)


def test_it_reports_an_unparseable_manifest(tmp_path, fitted):
    path = write(tmp_path, fitted)
    (path / "manifest.json").write_text("{ not json")
    with pytest.raises(ArtifactError, match="cannot be parsed"):
        verify_artifact(path)


def _edit_manifest(path: Path, change) -> None:
    m = json.loads((path / "manifest.json").read_text())
    change(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_it_reports_an_unsupported_format_version(tmp_path, fitted):
    path = write(tmp_path, fitted)
    _edit_manifest(path, lambda m: m.update(format_version=2))
    with pytest.raises(ArtifactError, match="format_version 2 .*this build reads format_version 1"):
        verify_artifact(path)


def test_it_reports_an_edited_manifest(tmp_path, fitted):
    path = write(tmp_path, fitted)
    _edit_manifest(path, lambda m: m.update(labels=["bees", "ants"]))
    with pytest.raises(ArtifactError, match="manifest was edited"):
        verify_artifact(path)


def test_it_reports_a_missing_file(tmp_path, fitted):
    path = write(tmp_path, fitted)
    (path / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match="model.onnx is missing"):
        verify_artifact(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[:-10]),  # truncated
        lambda p: p.write_bytes(bytes([p.read_bytes()[0] ^ 1]) + p.read_bytes()[1:]),  # one bit flipped
    ],
    ids=["truncated", "bit-flip"],
)
def test_it_reports_a_corrupt_file(tmp_path, fitted, damage):
    path = write(tmp_path, fitted)
    damage(path / "head.safetensors")
    with pytest.raises(
        ArtifactError, match="head.safetensors fails its checksum: the artifact was modified or truncated"
    ):
        verify_artifact(path)
    with pytest.raises(ArtifactError):
        load_arrays(path)


def test_it_reports_a_tampered_file_whose_hash_was_updated_without_the_manifest_checksum(tmp_path, fitted):
    path = write(tmp_path, fitted)
    (path / "model.onnx").write_bytes(b"evil")

    def rehash(m):
        m["files"]["model.onnx"] = {"sha256": hashlib.sha256(b"evil").hexdigest(), "size": 4}

    _edit_manifest(path, rehash)
    with pytest.raises(ArtifactError, match="manifest was edited"):
        verify_artifact(path)


def test_it_refuses_unsafe_names_and_incomplete_manifests(tmp_path, fitted):
    _, head, _ = fitted
    with pytest.raises(ArtifactError, match="cannot be a file name"):
        write_artifact(tmp_path / "v", manifest=manifest(), arrays=head.to_arrays(), files={"../x": b"1"})
    with pytest.raises(ArtifactError, match="lacks labels"):
        write_artifact(tmp_path / "v", manifest={"backbone": {}}, arrays=head.to_arrays())
    assert list(tmp_path.iterdir()) == []


def test_load_arrays_refuses_an_unlisted_file(tmp_path, fitted):
    path = write(tmp_path, fitted)
    with pytest.raises(ArtifactError, match="has no tail.safetensors"):
        load_arrays(path, "tail.safetensors")


def test_loading_a_version_imports_neither_torch_nor_django(tmp_path, fitted):
    import subprocess
    import sys

    path = write(tmp_path, fitted)
    code = (
        "import sys\n"
        "from classifier import artifacts, evaluation, fit, heads, pipeline, strategies, unknown\n"
        f"arrays = artifacts.load_arrays({str(path)!r})\n"
        "heads.LinearHead.from_arrays(arrays)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'django' not in sys.modules, 'django was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_it_adds_a_file_to_a_version_atomically(tmp_path, fitted):
    X, head, _ = fitted
    path = write(tmp_path, fitted, files={})
    created = read_manifest(path)["created"]
    artifacts.add_files(path, {"model.onnx": b"exported later"})
    m = verify_artifact(path)
    assert set(m["files"]) == {"head.safetensors", "model.onnx"} and m["created"] == created
    np.testing.assert_array_equal(
        LinearHead.from_arrays(load_arrays(path)).predict_proba(X), head.predict_proba(X)
    )
