"""How each torchvision architecture is cut into Pinhole's one shape: stem -> blocks -> head -> features,
plus the network's own ImageNet classifier (backbones.BackboneNet).

"Features" are the input of the network's final linear layer, before its dropout, so a new head
trained on them replaces exactly that layer. SqueezeNet has no linear layer (its classifier is a 1x1
convolution, a ReLU and global pooling, whose order keeps it from being applied to pooled features):
its features are its 1000 pooled ImageNet class scores, the classifier is the identity, and a head
that reads several depths also sees the Fire modules before it.

Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from classifier.errors import BackboneUnavailable


def build_torchvision(name: str, state_dict: Mapping | None, net_class) -> Any:
    """A torchvision network as a BackboneNet.

    Args:
        name: the torchvision builder's name ("resnet50", "vgg16", ...).
        state_dict: its weights file's contents, or None for random weights.
        net_class: backbones.BackboneNet.
    Raises:
        BackboneUnavailable: no wrapper for that architecture.
    """
    import torchvision.models as tvm

    options = {}
    if name == "inception_v3":
        # As torchvision builds it for its ImageNet weights: the auxiliary classifier exists (its
        # weights are in the file) but is never run here; the input is re-normalised inside the network.
        options = {"aux_logits": True, "transform_input": True, "init_weights": False}
    model = getattr(tvm, name)(weights=None, **options)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    for prefix, wrap in _WRAPPERS:
        if name.startswith(prefix):
            return wrap(name, model, net_class)
    raise BackboneUnavailable(f"no wrapper for torchvision model {name!r}")


def _nn():
    import torch.nn as nn

    return nn


def _resnet(name, model, net_class):
    nn = _nn()
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    blocks = [*model.layer1, *model.layer2, *model.layer3, *model.layer4]
    head = nn.Sequential(model.avgpool, nn.Flatten(1))
    return net_class(name, stem, blocks, head, model.fc, model.fc.in_features)


def _mobilenet_v3(name, model, net_class):
    # The first Linear+Hardswish of torchvision's classifier is the paper's last 1x1 conv after
    # pooling; the features are its output, the input of the final Linear.
    nn = _nn()
    feats, cls = model.features, model.classifier
    head = nn.Sequential(feats[-1], model.avgpool, nn.Flatten(1), cls[0], cls[1])
    return net_class(
        name, feats[0], list(feats[1:-1]), head, nn.Sequential(cls[2], cls[3]), cls[3].in_features
    )


def _efficientnet(name, model, net_class):
    nn = _nn()
    feats = model.features
    blocks = [block for stage in feats[1:-1] for block in stage]
    head = nn.Sequential(feats[-1], model.avgpool, nn.Flatten(1))
    return net_class(name, feats[0], blocks, head, model.classifier, model.classifier[-1].in_features)


def _convnext(name, model, net_class):
    # features = [stem, stage, down, stage, down, stage, down, stage]; each downsampling layer
    # travels with the first block after it so every "block" is a residual unit.
    nn = _nn()
    feats = model.features
    blocks: list = []
    for i in range(1, len(feats), 2):
        stage = list(feats[i])
        if i > 1:
            stage[0] = nn.Sequential(feats[i - 1], stage[0])
        blocks.extend(stage)
    norm, flatten, linear = model.classifier
    head = nn.Sequential(model.avgpool, norm, flatten)
    return net_class(name, feats[0], blocks, head, linear, linear.in_features)


def _squeezenet(name, model, net_class):
    # features = [conv, relu, maxpool, fire x2, maxpool, fire x2, maxpool, fire x4]: each max-pool
    # travels with the Fire module after it; classifier = [dropout, conv 1x1 -> 1000, relu, pool].
    nn = _nn()
    feats = list(model.features)
    blocks, pending = [], []
    for layer in feats[3:]:
        if isinstance(layer, nn.MaxPool2d):
            pending.append(layer)
            continue
        blocks.append(nn.Sequential(*pending, layer) if pending else layer)
        pending = []
    head = nn.Sequential(*model.classifier, nn.Flatten(1))
    return net_class(name, nn.Sequential(*feats[:3]), blocks, head, nn.Identity(), 1000)


def _vgg(name, model, net_class):
    # features = (conv, relu) x 13 with a max-pool after each stage; a block is one conv and its ReLU
    # (the max-pool before it travels with it); the head is the last pool and fc6, fc7 with their ReLUs.
    nn = _nn()
    units, pending = [], []
    layers = list(model.features)
    for layer in layers[:-1]:
        if isinstance(layer, nn.Conv2d):
            units.append([*pending, layer])
            pending = []
        elif isinstance(layer, nn.MaxPool2d):
            pending.append(layer)
        else:
            units[-1].append(layer)
    fc6, relu6, drop6, fc7, relu7, drop7, fc8 = model.classifier
    head = nn.Sequential(layers[-1], model.avgpool, nn.Flatten(1), fc6, relu6, drop6, fc7, relu7)
    blocks = [nn.Sequential(*unit) for unit in units]
    return net_class(name, blocks[0], blocks[1:], head, nn.Sequential(drop7, fc8), fc8.in_features)


def _inception_v3(name, model, net_class):
    nn = _nn()

    class TransformInput(nn.Module):
        """Inception3._transform_input: ImageNet-normalised pixels to the (x - 0.5) / 0.5 the
        checkpoint was trained on (a test holds it to torchvision's own forward)."""

        def forward(self, x):
            import torch

            channels = [
                x[:, c : c + 1] * (std / 0.5) + (mean - 0.5) / 0.5
                for c, (mean, std) in enumerate(((0.485, 0.229), (0.456, 0.224), (0.406, 0.225)))
            ]
            return torch.cat(channels, 1)

    stem = nn.Sequential(
        TransformInput(), model.Conv2d_1a_3x3, model.Conv2d_2a_3x3, model.Conv2d_2b_3x3,
        model.maxpool1, model.Conv2d_3b_1x1, model.Conv2d_4a_3x3, model.maxpool2,
    )  # fmt: skip
    names = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")
    blocks = [getattr(model, n) for n in (*names, "Mixed_7a", "Mixed_7b", "Mixed_7c")]
    head = nn.Sequential(model.avgpool, nn.Flatten(1))
    return net_class(name, stem, blocks, head, nn.Sequential(model.dropout, model.fc), model.fc.in_features)


_WRAPPERS = (
    ("resnet", _resnet),
    ("mobilenet_v3", _mobilenet_v3),
    ("efficientnet", _efficientnet),
    ("convnext", _convnext),
    ("squeezenet", _squeezenet),
    ("vgg", _vgg),
    ("inception", _inception_v3),
)
