"""ResNet-50 trunk (Bottleneck [3, 4, 6, 3]) written for the official DECA/EMOCA state dicts.

Parameter names follow the usual layout (``conv1``, ``bn1``, ``layer1`` .. ``layer4``, each block
``conv1/bn1/conv2/bn2/conv3/bn3`` and ``downsample.0`` (1x1 conv) / ``downsample.1`` (BatchNorm)),
so an official ``encoder.*`` sub-dict loads without renaming. There is no ``fc`` layer: the
forward pass returns the (N, 2048) features after the fixed 7x7 average pool.

Two variants:

* ``"deca"`` (DECA / EMOCA encoders): stride on the 3x3 conv of each downsampling bottleneck,
  max-pool kernel 3, stride 2, padding 1.
* ``"vggface2"`` (the VGGFace2-style network of EMOCA's emotion loss): stride on the first 1x1 conv
  of each downsampling bottleneck, max-pool kernel 3, stride 2, padding 0, ``ceil_mode=True``.

Both need an input of exactly 224x224 (the 7x7 average pool is fixed); the check is done in Python
on the (static) shape, so the module stays ONNX-exportable with a dynamic batch axis.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 224
VARIANTS = ("deca", "vggface2")


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck with expansion 4 and an optional projection shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 stride_on_1x1: bool = False):
        super().__init__()
        s1, s3 = (stride, 1) if stride_on_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=s3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet50(nn.Module):
    """ResNet-50 feature trunk: images (N, 3, 224, 224) float32 -> pooled features (N, 2048).

    The input range is whatever the caller's checkpoint was trained on (DECA/EMOCA: RGB in [0, 1],
    no mean/std normalisation).
    """

    def __init__(self, variant: str = "deca"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"ResNet50: unknown variant {variant!r}; expected one of {VARIANTS}")
        self.variant = variant
        stride_on_1x1 = variant == "vggface2"
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        if variant == "vggface2":
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))):
            layers = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                down = None
                if b == 0 and (s != 1 or inplanes != planes * Bottleneck.expansion):
                    down = nn.Sequential(
                        nn.Conv2d(inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=s, bias=False),
                        nn.BatchNorm2d(planes * Bottleneck.expansion),
                    )
                layers.append(Bottleneck(inplanes, planes, s, down, stride_on_1x1=stride_on_1x1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.out_features = inplanes

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` is (N, 3, 224, 224) (Python check on static sizes)."""
        with warnings.catch_warnings():
            # Under ONNX tracing the sizes are the example's (static H, W): a constant is intended.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # only the per-image sizes become Python ints: the batch axis stays symbolic (dynamic) in
            # both ONNX exporters
            per_image = tuple(int(s) for s in x.shape[1:])
        if x.dim() != 4 or per_image != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"ResNet50 expects images of shape (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) (fixed 7x7 average pool), "
                f"got {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map (N, 2048, 7, 7)."""
        self.check_input(x)
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        return torch.flatten(F.avg_pool2d(x, kernel_size=7, stride=1), 1)
