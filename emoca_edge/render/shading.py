"""Per-vertex / per-pixel attributes and the shading models of DECA, EMOCA and SMIRK.

Normal spaces
- *pixel space*: the rasterizer's frame (x right, y down, z depth away from the viewer).
- *view space*: x right, y up, z towards the viewer. For the weak-perspective camera of the three
  systems (x, y, z scaled alike, y and z negated) view space has the orientation of FLAME model
  space, so normals computed from pixel-space vertices and mapped with :func:`pixel_to_view`
  equal the model-space normals DECA's spherical-harmonics lighting expects.
"""
from __future__ import annotations

import math

import numpy as np

from .raster import _raster, as_faces, as_vertices

__all__ = ["SH_CONSTANTS", "PREVIEW_LIGHT_DIRECTIONS", "PREVIEW_INTENSITY", "PREVIEW_ALBEDO", "vertex_normals",
           "interpolate", "pixel_to_view", "sh_basis", "shade_sh", "shade_preview", "sample_texture"]

#: Order-2 spherical-harmonics constants (official-formats.md), one per basis function
#: [1, nx, ny, nz, nx*ny, nx*nz, ny*nz, nx^2 - ny^2, 3*nz^2 - 1].
SH_CONSTANTS = np.array([
    1 / math.sqrt(4 * math.pi),
    (2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi)),
    (2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi)),
    (2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi)),
    (math.pi / 4) * 3 * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * 3 * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * 3 * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * (3 / 2) * math.sqrt(5 / (12 * math.pi)),
    (math.pi / 4) * (1 / 2) * math.sqrt(5 / (4 * math.pi)),
], np.float64)

#: Shape preview: five directional lights (view space, unit length), intensity 1.7, grey albedo.
PREVIEW_LIGHT_DIRECTIONS = np.array([[-1, 1, 1], [1, 1, 1], [-1, -1, 1], [1, -1, 1], [0, 0, 1]], np.float64)
PREVIEW_LIGHT_DIRECTIONS /= np.linalg.norm(PREVIEW_LIGHT_DIRECTIONS, axis=1, keepdims=True)
PREVIEW_INTENSITY = 1.7
PREVIEW_ALBEDO = 180.0 / 255.0


def vertex_normals(vertices, faces) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32 in the frame of ``vertices``.

    Face normal = (v1 - v0) x (v2 - v0), so counter-clockwise triangles (seen from outside, in a
    right-handed frame) give outward normals. Vertices used by no non-degenerate triangle get 0.
    """
    v = as_vertices(vertices)
    f = as_faces(faces, v.shape[0])
    return _raster().vertex_normals(v, f)


def interpolate(attributes, faces, triangle_id, bary, *, threads: int = 0) -> np.ndarray:
    """Barycentric interpolation of per-vertex attributes: (V, C) -> (H, W, C) float32.

    ``triangle_id`` (H, W) int32 and ``bary`` (H, W, 3) float32 come from :func:`rasterize`; pixels
    with triangle_id -1 get 0. ``faces`` may differ from the rasterized faces (e.g. UV faces), as
    long as it has one row per rasterized triangle.
    """
    a = np.asarray(attributes)
    if a.ndim == 1:
        a = a[:, None]
    if a.dtype.kind not in "fiu" or a.ndim != 2:
        raise ValueError(f"attributes: expected a real (V, C) array, got {a.dtype} {a.shape}")
    a = np.ascontiguousarray(a, np.float32)
    f = as_faces(faces, a.shape[0])
    t = np.asarray(triangle_id)
    b = np.asarray(bary)
    if t.dtype != np.int32 or t.ndim != 2:
        raise ValueError(f"triangle_id: expected (H, W) int32, got {t.dtype} {t.shape}")
    if b.shape != t.shape + (3,):
        raise ValueError(f"bary: expected shape {t.shape + (3,)}, got {b.shape}")
    if t.size and t.max() >= f.shape[0]:
        raise IndexError(f"triangle_id: value {int(t.max())} is out of range for {f.shape[0]} faces")
    t = np.ascontiguousarray(t)
    b = np.ascontiguousarray(b, np.float32)
    out = np.empty(t.shape + (a.shape[1],), np.float32)
    _raster().interpolate_into(a, f, t, b, out, 0, 0, t.shape[1], t.shape[0], int(threads))
    return out


def pixel_to_view(normals) -> np.ndarray:
    """Pixel-space directions (..., 3) -> view space (x right, y up, z towards the viewer)."""
    n = np.asarray(normals, np.float32)
    return n * np.array([1.0, -1.0, -1.0], np.float32)


def sh_basis(normals) -> np.ndarray:
    """(..., 3) normals -> (..., 9) float32 spherical-harmonics basis, constants included."""
    n = np.asarray(normals, np.float32)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    basis = np.stack([np.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], -1)
    return basis * SH_CONSTANTS.astype(np.float32)


def shade_sh(normals, albedo, light) -> np.ndarray:
    """Order-2 spherical-harmonics shading (DECA/EMOCA): albedo * sum_k basis_k(n) * light[k].

    normals (..., 3) in view / FLAME model space (not renormalised, as in DECA); albedo (..., 3) or
    broadcastable, linear [0, 1]; light (9, 3) coefficients per RGB channel. Returns (..., 3) float32,
    not clipped.
    """
    lt = np.asarray(light, np.float32)
    if lt.shape != (9, 3):
        raise ValueError(f"light: expected shape (9, 3), got {lt.shape}")
    shading = sh_basis(normals) @ lt
    return np.asarray(albedo, np.float32) * shading


def shade_preview(normals) -> np.ndarray:
    """Shape-preview shading factor (...,) float32: PREVIEW_INTENSITY * mean over the five lights of
    clamp(n . l, 0, 1), normals in view space."""
    n = np.asarray(normals, np.float32)
    dots = n @ PREVIEW_LIGHT_DIRECTIONS.T.astype(np.float32)
    return np.clip(dots, 0.0, 1.0).mean(-1) * np.float32(PREVIEW_INTENSITY)


def sample_texture(texture, uv) -> np.ndarray:
    """Bilinear texture lookup. texture (Ht, Wt, C) uint8 (-> [0, 1]) or float; uv (..., 2) with u
    left-to-right and v bottom-to-top in [0, 1] (OpenGL / FLAME convention); texel (r, c) has its
    centre at u = (c + 0.5) / Wt, v = 1 - (r + 0.5) / Ht; coordinates outside clamp to the border.
    Returns (..., C) float32."""
    tex = np.asarray(texture)
    if tex.ndim != 3:
        raise ValueError(f"texture: expected (Ht, Wt, C), got {tex.shape}")
    scale = 1.0 / 255.0 if tex.dtype == np.uint8 else 1.0
    tex = tex.astype(np.float32) * np.float32(scale)
    ht, wt = tex.shape[:2]
    uv = np.asarray(uv, np.float32)
    x = np.clip(uv[..., 0] * wt - 0.5, 0, wt - 1)
    y = np.clip((1.0 - uv[..., 1]) * ht - 0.5, 0, ht - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, wt - 1)
    y1 = np.minimum(y0 + 1, ht - 1)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
