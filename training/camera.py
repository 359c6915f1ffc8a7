"""Weak-perspective camera of DECA / EMOCA / SMIRK (PyTorch). NumPy twin: ``emoca_edge.camera``.

Camera (N, 3) = (s, tx, ty). From FLAME model space (metres, +x subject's left = image right,
+y up, +z towards the camera) to the normalised device coordinates of the 224x224 crop
(+x right, +y down, [-1, 1] across the crop, smaller z = nearer):

    ndc_x = s * (x + tx),   ndc_y = -s * (y + ty),   ndc_z = -s * z

Crop pixels (pixel edges; pixel (i, j) has its centre at x = j + 0.5, y = i + 0.5):

    px = (ndc + 1) * size / 2      for x and y;   pz = ndc_z * size / 2  (same scale as x, y)
"""
from __future__ import annotations

import torch

__all__ = ["weak_perspective", "ndc_to_pixels"]


def weak_perspective(points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """Project model-space points (N, P, 3) with camera (N, 3) = (s, tx, ty) -> NDC (N, P, 3)."""
    s = camera[:, 0:1].unsqueeze(-1)           # (N,1,1)
    t = camera[:, 1:3].unsqueeze(1)            # (N,1,2)
    xy = s * (points[..., 0:2] + t)
    sign = torch.tensor([1.0, -1.0], dtype=points.dtype, device=points.device)
    return torch.cat([xy * sign, -s * points[..., 2:3]], dim=-1)


def ndc_to_pixels(ndc: torch.Tensor, size: int = 224) -> torch.Tensor:
    """NDC (..., 2) or (..., 3) -> crop pixels: x, y = (ndc + 1) * size / 2; z (if present) =
    ndc_z * size / 2 (depth in pixel units, smaller = nearer)."""
    half = size / 2.0
    xy = (ndc[..., 0:2] + 1.0) * half
    if ndc.shape[-1] == 2:
        return xy
    return torch.cat([xy, ndc[..., 2:3] * half], dim=-1)
