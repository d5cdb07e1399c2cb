"""`python -m classifier import-weights FILE`: a weights file copied from a machine with internet is
matched to its backbone by hash and installed where an offline host reads it; then that backbone
trains and answers end to end (random weights stand in for the download: no network)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from classifier import backbones, weights
from classifier.errors import BackboneUnavailable

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def squeezenet_download(tmp_path, monkeypatch):
    """A SqueezeNet checkpoint (random weights) and a registry whose published name carries its hash,
    as torchvision's names carry the real file's."""
    import torchvision.models as tvm

    torch.manual_seed(3)
    path = tmp_path / "Downloads" / "renamed-by-the-browser.pth"
    path.parent.mkdir()
    torch.save(tvm.squeezenet1_1(weights=None).state_dict(), path)
    digest = weights.sha256_of(path)
    entry = dataclasses.replace(
        backbones.BACKBONES["squeezenet1_1"], weights_file=f"squeezenet1_1-{digest[:8]}.pth"
    )
    monkeypatch.setitem(backbones.BACKBONES, "squeezenet1_1", entry)
    return path


def test_the_published_names_carry_the_hash_prefix_the_import_checks():
    for backbone in backbones.BACKBONES.values():
        if backbone.source == "torchvision":
            assert len(weights.published_prefix(backbone)) == 8, backbone.weights_file
    assert weights.published_prefix(backbones.BACKBONES["efficientnet_lite0"]) == ""


def test_a_file_that_is_no_backbones_weights_is_refused_naming_what_is_expected(hub_dir, tmp_path):
    stray = tmp_path / "vgg16-397923af.pth"  # the right name does not make the right file
    stray.write_bytes(b"not the weights")
    with pytest.raises(
        BackboneUnavailable, match=r"not the published weights of any backbone.*vgg16-397923af\.pth"
    ):
        weights.import_weights(stray)
    assert not (hub_dir / "checkpoints").exists()
    with pytest.raises(BackboneUnavailable, match="is not a file"):
        weights.import_weights(tmp_path / "missing.pth")


def test_imported_weights_make_the_backbone_usable_and_it_trains_end_to_end(
    hub_dir, squeezenet_download, toy_data, samples_of, model_cache, tmp_path
):
    from classifier.cache import MemoryCache
    from classifier.pipeline import train_model
    from classifier.predict import Predictor

    assert not {r["name"]: r for r in backbones.list_backbones()}["squeezenet1_1"]["usable"]
    answer = weights.import_weights(squeezenet_download)
    installed = Path(answer["installed"])
    assert answer["backbone"] == "squeezenet1_1" and not answer["already"]
    assert installed.parent == hub_dir / "checkpoints" and installed.name.startswith("squeezenet1_1-")
    assert weights.import_weights(squeezenet_download)["already"]
    assert {r["name"]: r for r in backbones.list_backbones()}["squeezenet1_1"]["usable"]

    outcome = train_model(
        samples_of(toy_data),
        tmp_path / "v1",
        backbone="squeezenet1_1",
        strategy="linear",
        cache=MemoryCache(),
    )
    manifest = json.loads((outcome.path / "manifest.json").read_text())
    assert manifest["backbone"]["name"] == "squeezenet1_1"
    pictures = sorted(toy_data.glob("*/*.jpg"))
    answers = Predictor(outcome.path, precision="fp32").predict(pictures)
    assert [a.label for a in answers] == [p.parent.name for p in pictures]


def test_the_cli_imports_and_says_what_it_did(hub_dir, tmp_path):
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"nope")
    out = subprocess.run(
        [sys.executable, "-m", "classifier", "import-weights", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 1 and "not the published weights" in out.stderr
