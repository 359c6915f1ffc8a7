"""Regularisers of DECA's detail stage (used unchanged by EMOCA).

uv_z: (N, 1, H, W) displacement map (model units along the normal); uv_shading: (N, 3, H, W).
"""
from __future__ import annotations

import torch


def z_regulariser(uv_z: torch.Tensor) -> torch.Tensor:
    """mean |uv_z| (DECA ``z_reg``: keeps displacements small)."""
    return uv_z.abs().mean()


def shading_smoothness(uv_shading: torch.Tensor) -> torch.Tensor:
    """mean squared horizontal + vertical finite differences of the UV shading (DECA ``z_diff``,
    after 'Lifting AutoEncoders'): details should not create high-frequency shading."""
    dx = uv_shading[:, :, 1:-1, 1:] - uv_shading[:, :, 1:-1, :-1]
    dy = uv_shading[:, :, 1:, 1:-1] - uv_shading[:, :, :-1, 1:-1]
    return (dx ** 2).mean() + (dy ** 2).mean()


def symmetry_loss(uv_z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """sum(mask * |uv_z - flip_lr(uv_z).detach()|) / N (DECA ``z_sym``): where the face was not seen
    (``mask`` = 1 - visibility), the displacement should mirror the other side."""
    d = (uv_z - torch.flip(uv_z, [-1]).detach()).abs()
    if mask is not None:
        d = d * mask
    return d.sum() / uv_z.shape[0]
