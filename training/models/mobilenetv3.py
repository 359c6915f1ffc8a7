"""MobileNetV3 "minimal" feature extractors (TensorFlow-compatible variants) used by SMIRK.

Our own implementation of the architectures known in timm as ``tf_mobilenetv3_small_minimal_100``
and ``tf_mobilenetv3_large_minimal_100`` created with ``features_only=True``. Parameter names
follow that feature-net layout so SMIRK's state dict maps without renaming:

* ``conv_stem`` (3x3 stride 2, 3 -> 16, no bias), ``bn1``;
* ``blocks.i.j`` for stage i, block j:
  - depthwise-separable ("ds"): ``conv_dw``, ``bn1``, ``conv_pw``, ``bn2``;
  - inverted residual ("ir"): ``conv_pw``, ``bn1``, ``conv_dw``, ``bn2``, ``conv_pwl``, ``bn3``;
  - conv-bn-act ("cn", last stage): ``conv``, ``bn1``.
* no ``conv_head`` / classifier (absent in a feature net).

"Minimal" variants: ReLU everywhere, 3x3 depthwise kernels, no squeeze-excitation. TF variants:
BatchNorm eps 1e-3 (momentum 0.01) and TensorFlow "SAME" padding (asymmetric, extra pixel at
the bottom/right) wherever a symmetric padding cannot reproduce it (the stride-2 convs); the pad is
computed in Python from the static input size, so export at a fixed 224 input.

``forward(images)`` returns the last feature map: (N, 576, H/32, W/32) for small,
(N, 960, H/32, W/32) for large.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS_TF = 1e-3
BN_MOMENTUM_TF = 0.01


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never dropping below 90 %."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def tf_same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) along one axis of length ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input's static spatial size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            # Under ONNX tracing the pads become constants of the (fixed) export size, as intended.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            h, w = int(x.shape[-2]), int(x.shape[-1])
        ph = tf_same_pad(h, self.kernel_size[0], self.stride[0], self.dilation[0])
        pw = tf_same_pad(w, self.kernel_size[1], self.stride[1], self.dilation[1])
        if ph != (0, 0) or pw != (0, 0):
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_same(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """Bias-free conv with TF "SAME" padding: static symmetric padding when that is equivalent
    (stride 1, odd kernel), else :class:`Conv2dSame`."""
    if stride == 1 and (kernel - 1) % 2 == 0:
        return nn.Conv2d(cin, cout, kernel, stride=1, padding=(kernel - 1) // 2, groups=groups, bias=False)
    return Conv2dSame(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS_TF, momentum=BN_MOMENTUM_TF)


class DepthwiseSeparable(nn.Module):
    """dw kxk (stride) -> BN -> ReLU -> pw 1x1 -> BN, residual when stride 1 and in == out."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = conv_same(cin, cin, kernel, stride, groups=cin)
        self.bn1 = bn(cin)
        self.conv_pw = conv_same(cin, cout, 1)
        self.bn2 = bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(F.relu(self.bn1(self.conv_dw(x)))))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    """pw 1x1 expand -> BN -> ReLU -> dw kxk (stride) -> BN -> ReLU -> pw 1x1 -> BN (+ residual)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, exp_ratio: float):
        super().__init__()
        mid = make_divisible(cin * exp_ratio)
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = conv_same(cin, mid, 1)
        self.bn1 = bn(mid)
        self.conv_dw = conv_same(mid, mid, kernel, stride, groups=mid)
        self.bn2 = bn(mid)
        self.conv_pwl = conv_same(mid, cout, 1)
        self.bn3 = bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv_pw(x)))
        y = F.relu(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_skip else y


class ConvBnAct(nn.Module):
    """conv kxk -> BN -> ReLU (no residual)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv = conv_same(cin, cout, kernel, stride)
        self.bn1 = bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv(x)))


# Stage tables: (block type, repeats, kernel, first stride, expansion ratio, out channels).
SMALL_MINIMAL = (
    (("ds", 1, 3, 2, 1.0, 16),),
    (("ir", 1, 3, 2, 4.5, 24), ("ir", 1, 3, 1, 3.67, 24)),
    (("ir", 1, 3, 2, 4.0, 40), ("ir", 2, 3, 1, 6.0, 40)),
    (("ir", 2, 3, 1, 3.0, 48),),
    (("ir", 3, 3, 2, 6.0, 96),),
    (("cn", 1, 1, 1, 1.0, 576),),
)
LARGE_MINIMAL = (
    (("ds", 1, 3, 1, 1.0, 16),),
    (("ir", 1, 3, 2, 4.0, 24), ("ir", 1, 3, 1, 3.0, 24)),
    (("ir", 3, 3, 2, 3.0, 40),),
    (("ir", 1, 3, 2, 6.0, 80), ("ir", 1, 3, 1, 2.5, 80), ("ir", 2, 3, 1, 2.3, 80)),
    (("ir", 2, 3, 1, 6.0, 112),),
    (("ir", 3, 3, 2, 6.0, 160),),
    (("cn", 1, 1, 1, 1.0, 960),),
)


class MobileNetV3Features(nn.Module):
    """Stem + stages; ``forward`` returns the last feature map (N, out_channels, h, w)."""

    def __init__(self, stages, stem_size: int = 16):
        super().__init__()
        self.conv_stem = conv_same(3, stem_size, 3, stride=2)
        self.bn1 = bn(stem_size)
        cin = stem_size
        blocks = []
        for stage in stages:
            seq = []
            for kind, repeats, kernel, stride, exp, cout in stage:
                for r in range(repeats):
                    # Only the first block of a stage strides (timm's builder rule).
                    s = stride if not seq else 1
                    if kind == "ds":
                        seq.append(DepthwiseSeparable(cin, cout, kernel, s))
                    elif kind == "ir":
                        seq.append(InvertedResidual(cin, cout, kernel, s, exp))
                    elif kind == "cn":
                        seq.append(ConvBnAct(cin, cout, kernel, s))
                    else:  # pragma: no cover - tables are fixed above
                        raise ValueError(f"unknown block type {kind!r}")
                    cin = cout
            blocks.append(nn.Sequential(*seq))
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv_stem(x)))
        return self.blocks(x)


def tf_mobilenetv3_small_minimal_100() -> MobileNetV3Features:
    """Small minimal feature net, last map 576 channels at stride 32."""
    return MobileNetV3Features(SMALL_MINIMAL)


def tf_mobilenetv3_large_minimal_100() -> MobileNetV3Features:
    """Large minimal feature net, last map 960 channels at stride 32."""
    return MobileNetV3Features(LARGE_MINIMAL)
