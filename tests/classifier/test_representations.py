"""Every representation a head can read ships as a graph that gives the trained head's answers."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.backbones import grid_pool
from classifier.heads import LinearHead
from classifier.steps import Representation, represent, taps_read, width


def test_grid_pool_is_torchs_adaptive_average_pooling_at_sizes_that_do_not_divide():
    import torch

    x = torch.randn(2, 5, 14, 7)
    for side in (1, 2, 3, 4):
        expected = torch.nn.functional.adaptive_avg_pool2d(x, side).flatten(1)
        torch.testing.assert_close(grid_pool(x, side), expected)


def test_each_representation_reads_a_longer_prefix_of_the_cached_vector():
    from classifier.backbones import get_backbone

    spec = get_backbone("efficientnet_lite0")
    widths = [width(r, spec) for r in (Representation.LAST, Representation.DEPTHS, Representation.LAYOUT)]
    assert widths == [1280, 2048, 5504] == [spec.feature_dim, spec.depth_dim, spec.vector_dim]
    X = np.arange(2 * 5504, dtype=np.float32).reshape(2, 5504)
    assert represent(X, "depths", spec).shape == (2, 2048) and represent(X, "depths", spec)[0, -1] == 2047


@pytest.mark.parametrize("representation", list(Representation))
def test_the_served_graph_gives_the_heads_answers(representation, model_cache, make_toy_image, tmp_path):
    import torch

    from classifier.export import (
        append_head_onnx,
        check_appended_head,
        check_serving_export,
        export_serving_onnx,
        serving_module,
    )
    from classifier.features import Extractor, sha256_of

    extractor = Extractor("efficientnet_lite0", precision="fp32")  # compared with torch's fp32 below
    spec = extractor.backbone
    images = [make_toy_image(colour, 64 + i) for i in range(4) for colour in ("red", "blue")]
    vectors = extractor.extract_items([(sha256_of(b), b) for b in images]).vectors
    X = represent(np.stack([vectors[sha256_of(b)] for b in images]), representation, spec)
    head = LinearHead(C=1.0).fit(X, np.array([0, 1] * 4))
    taps, layout_taps = taps_read(representation, spec)
    assert bool(taps) == (representation != Representation.LAST)
    assert bool(layout_taps) == (representation == Representation.LAYOUT)

    appended = append_head_onnx(extractor.onnx_path(), head, tmp_path / "appended.onnx", with_taps=bool(taps))
    check_appended_head(appended, head, images[:4], list(X[:4]), spec.preprocessing)  # raises on a mismatch

    traced = tmp_path / "traced.onnx"
    net = extractor.net
    export_serving_onnx(net, head, traced, spec.preprocessing.crop, taps=taps, layout_taps=layout_taps)
    check_serving_export(
        traced, net, head, images[:4], spec.preprocessing, taps=taps, layout_taps=layout_taps
    )
    from classifier.finetune import images_tensor

    with torch.inference_mode():
        _, features = serving_module(net, head, taps, layout_taps)(
            images_tensor(images[:4], spec.preprocessing)
        )
    np.testing.assert_allclose(features.numpy(), X[:4], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "mobilenet_v3_large", "convnext_tiny"])
def test_every_backbone_gives_vectors_as_wide_as_it_says(name):
    import torch

    from classifier.backbones import get_backbone

    spec = get_backbone(name)
    assert set(spec.layout_taps) <= set(spec.taps) and spec.layout_taps
    net = spec.build(pretrained=False).eval()
    with torch.inference_mode():
        features, rest = net.forward_with_taps(torch.zeros(1, 3, 96, 96), spec.taps, spec.layout_taps)
    assert features.shape[1] + rest.shape[1] == spec.vector_dim
