"""SMIRK's encoder: three MobileNetV3 feature nets, each followed by global average pooling and one Linear.

Module names match the official ``smirk_encoder.*`` state dict (with the ``smirk_encoder.`` prefix
removed): ``pose_encoder.encoder.*`` + ``pose_encoder.pose_cam_layers.0``,
``shape_encoder.encoder.*`` + ``shape_encoder.shape_layers.0``,
``expression_encoder.encoder.*`` + ``expression_encoder.expression_layers.0``.

The official encoders take the last map of a timm ``features_only`` net, average-pool it to
(N, C) and apply the Linear; the only post-processing is on the expression head (eyelids clamped to
[0, 1]; jaw = [relu(p0), clamp(p1:3, -0.2, 0.2)]). Pose and camera are returned raw.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mobilenetv3 import tf_mobilenetv3_large_minimal_100, tf_mobilenetv3_small_minimal_100


def _pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pool (N, C, h, w) -> (N, C)."""
    return x.mean(dim=(2, 3))


class PoseEncoder(nn.Module):
    """images -> global_pose (N, 3) axis-angle radians, camera (N, 3) = (s, tx, ty)."""

    def __init__(self):
        super().__init__()
        self.encoder = tf_mobilenetv3_small_minimal_100()
        self.pose_cam_layers = nn.Sequential(nn.Linear(self.encoder.out_channels, 6))

    def forward(self, images: torch.Tensor) -> dict:
        p = self.pose_cam_layers(_pool(self.encoder(images)))
        return {"global_pose": p[:, :3], "camera": p[:, 3:6]}


class ShapeEncoder(nn.Module):
    """images -> FLAME identity coefficients (N, n_shape)."""

    def __init__(self, n_shape: int = 300):
        super().__init__()
        self.encoder = tf_mobilenetv3_large_minimal_100()
        self.shape_layers = nn.Sequential(nn.Linear(self.encoder.out_channels, n_shape))

    def forward(self, images: torch.Tensor) -> dict:
        return {"shape": self.shape_layers(_pool(self.encoder(images)))}


class ExpressionEncoder(nn.Module):
    """images -> expression (N, n_exp), eyelids (N, 2) in [0, 1] (0 left, 1 right), jaw_pose (N, 3)."""

    def __init__(self, n_exp: int = 50):
        super().__init__()
        self.n_exp = int(n_exp)
        self.encoder = tf_mobilenetv3_large_minimal_100()
        self.expression_layers = nn.Sequential(nn.Linear(self.encoder.out_channels, self.n_exp + 2 + 3))

    def forward(self, images: torch.Tensor) -> dict:
        p = self.expression_layers(_pool(self.encoder(images)))
        n = self.n_exp
        jaw = torch.cat([F.relu(p[:, n + 2:n + 3]), torch.clamp(p[:, n + 3:n + 5], -0.2, 0.2)], dim=1)
        return {"expression": p[:, :n], "eyelids": torch.clamp(p[:, n:n + 2], 0.0, 1.0), "jaw_pose": jaw}


class SmirkEncoder(nn.Module):
    """images (N, 3, 224, 224) RGB in [0, 1] -> dict of ``global_pose`` (N, 3), ``camera`` (N, 3),
    ``shape`` (N, n_shape), ``expression`` (N, n_exp), ``eyelids`` (N, 2), ``jaw_pose`` (N, 3)."""

    def __init__(self, n_shape: int = 300, n_exp: int = 50):
        super().__init__()
        self.pose_encoder = PoseEncoder()
        self.shape_encoder = ShapeEncoder(n_shape)
        self.expression_encoder = ExpressionEncoder(n_exp)

    def forward(self, images: torch.Tensor) -> dict:
        out = {}
        out.update(self.pose_encoder(images))
        out.update(self.shape_encoder(images))
        out.update(self.expression_encoder(images))
        return out
