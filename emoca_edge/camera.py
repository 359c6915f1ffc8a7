"""Weak-perspective camera of DECA / EMOCA / SMIRK (NumPy, runtime; no torch).

Same formulas as ``emoca_edge.training.camera`` (parity-tested). Camera (N, 3) = (s, tx, ty).
From FLAME model space (metres, +x subject's left = image right, +y up, +z towards the camera)
to the normalised device coordinates of the 224x224 crop (+x right, +y down, [-1, 1] across the
crop, smaller z = nearer):

    ndc_x = s * (x + tx),   ndc_y = -s * (y + ty),   ndc_z = -s * z

Crop pixels (pixel edges; pixel (i, j) has its centre at x = j + 0.5, y = i + 0.5):

    px = (ndc + 1) * size / 2      for x and y;   pz = ndc_z * size / 2  (same scale as x, y)
"""
from __future__ import annotations

import numpy as np

__all__ = ["weak_perspective", "ndc_to_pixels", "project_to_pixels"]


def weak_perspective(points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Project model-space points (N, P, 3) with camera (N, 3) = (s, tx, ty) -> NDC (N, P, 3).

    Output dtype follows the inputs (float32 stays float32).
    """
    points = np.asarray(points)
    camera = np.asarray(camera)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (N, P, 3), got {points.shape}")
    if camera.ndim != 2 or camera.shape != (points.shape[0], 3):
        raise ValueError(f"camera must be (N, 3) with N = {points.shape[0]}, got {camera.shape}")
    s = camera[:, 0, None]
    out = np.empty(np.broadcast_shapes(points.shape), dtype=np.result_type(points, camera))
    out[..., 0] = s * (points[..., 0] + camera[:, 1, None])
    out[..., 1] = -(s * (points[..., 1] + camera[:, 2, None]))
    out[..., 2] = -(s * points[..., 2])
    return out


def ndc_to_pixels(ndc: np.ndarray, size: int = 224) -> np.ndarray:
    """NDC (..., 2) or (..., 3) -> crop pixels: x, y = (ndc + 1) * size / 2; z (if present) =
    ndc_z * size / 2 (depth in pixel units, smaller = nearer)."""
    ndc = np.asarray(ndc)
    if ndc.shape[-1] not in (2, 3):
        raise ValueError(f"ndc must end in 2 or 3 coordinates, got {ndc.shape}")
    half = np.asarray(size / 2.0, dtype=ndc.dtype if ndc.dtype.kind == "f" else np.float64)
    out = ndc * half
    out[..., 0:2] = (ndc[..., 0:2] + 1) * half  # same operation order as the torch version
    return out


def project_to_pixels(points: np.ndarray, camera: np.ndarray, size: int = 224) -> np.ndarray:
    """``ndc_to_pixels(weak_perspective(points, camera), size)``: (N, P, 3) crop pixel space."""
    return ndc_to_pixels(weak_perspective(points, camera), size)
