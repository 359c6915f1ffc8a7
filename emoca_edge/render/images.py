"""User-facing images: shaded meshes at crop size, overlays on full-resolution frames, depth and
normal maps. Vertices are in pixel space (x right, y down, z depth, smaller = nearer), e.g. the
crop pixels of ``emoca_edge.camera.project_to_pixels``; any triangle mesh works.

Colours: images are RGB uint8; albedo / colours are linear floats in [0, 1]; shaded values are
clipped to [0, 1] and rounded to uint8.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .raster import _raster, as_faces, as_vertices, rasterize, rasterize_region
from .shading import (PREVIEW_ALBEDO, PREVIEW_INTENSITY, PREVIEW_LIGHT_DIRECTIONS, interpolate, pixel_to_view,
                      sample_texture, vertex_normals)

__all__ = ["render_shape_preview", "render_sh", "depth_map", "normal_map", "normal_map_to_rgb", "overlay_mesh",
           "transform_vertices"]


def _to_uint8(rgb) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _background(background, height: int, width: int) -> np.ndarray:
    if background is None:
        return np.zeros((height, width, 3), np.uint8)
    bg = np.asarray(background)
    if bg.shape != (height, width, 3) or bg.dtype != np.uint8:
        raise ValueError(f"background: expected ({height}, {width}, 3) uint8, got {bg.dtype} {bg.shape}")
    return bg.copy()


def _view_normals(v: np.ndarray, f: np.ndarray, normals) -> np.ndarray:
    """Per-vertex view-space normals: given ones (V, 3) or computed from pixel-space vertices."""
    if normals is None:
        return pixel_to_view(vertex_normals(v, f))
    n = as_vertices(normals, "normals")
    if n.shape[0] != v.shape[0]:
        raise ValueError(f"normals: expected {v.shape[0]} rows (one per vertex), got {n.shape[0]}")
    return n


def _albedo_source(albedo, tri, bary, f, num_vertices, uv=None, uv_faces=None, texture=None, threads=0):
    """(albedo_kind, float32 array) for the native compositor: 0 constant (3,), 1 per vertex (V, 3),
    2 per pixel (h, w, 3) (texture sampled at interpolated UV)."""
    if texture is not None:
        if uv is None:
            raise ValueError("texture: needs uv (T, 2) texture coordinates")
        uv = np.asarray(uv, np.float32)
        if uv.ndim != 2 or uv.shape[1] != 2:
            raise ValueError(f"uv: expected (T, 2), got {uv.shape}")
        uvf = f if uv_faces is None else as_faces(uv_faces, uv.shape[0], "uv_faces")
        if uvf.shape[0] != f.shape[0]:
            raise ValueError(f"uv_faces: expected {f.shape[0]} rows (one per triangle), got {uvf.shape[0]}")
        if uv_faces is None and uv.shape[0] != num_vertices:
            raise ValueError(f"uv: expected {num_vertices} rows (one per vertex) without uv_faces, got {uv.shape[0]}")
        mask = tri >= 0
        img = np.zeros(tri.shape + (3,), np.float32)
        uv_img = interpolate(uv, uvf, tri, bary, threads=threads)
        img[mask] = sample_texture(texture, uv_img[mask])[..., :3]
        return 2, img
    if albedo is None:
        return 0, np.full(3, PREVIEW_ALBEDO, np.float32)
    a = np.asarray(albedo, np.float32)
    if a.shape == (3,):
        return 0, np.ascontiguousarray(a)
    if a.shape == (num_vertices, 3):
        return 1, np.ascontiguousarray(a)
    raise ValueError(f"albedo: expected (3,) or ({num_vertices}, 3) colours in [0, 1], got {a.shape}")


_PREVIEW_LIGHTS32 = np.ascontiguousarray(PREVIEW_LIGHT_DIRECTIONS, np.float32)


def _composite(dest, x0, y0, tri, bary, f, vnormals, albedo_kind, albedo, mode, light, alpha, threads):
    """Native shade + blend of the covered pixels of (tri, bary) into dest[y0:, x0:]."""
    if mode == "preview":
        lt, m, intensity = _PREVIEW_LIGHTS32, 0, PREVIEW_INTENSITY
    else:
        lt = np.ascontiguousarray(np.asarray(light, np.float32))
        if lt.shape != (9, 3):
            raise ValueError(f"light: expected shape (9, 3), got {lt.shape}")
        m, intensity = 1, 0.0
    _raster().composite_into(dest, int(x0), int(y0), tri, bary, f, np.ascontiguousarray(vnormals, np.float32),
                             albedo_kind, albedo, m, lt, float(intensity), float(alpha), int(threads))


def render_shape_preview(vertices, faces, height: int, width: int, *, colors=None, normals=None, background=None,
                         cull: str = "none", threads: int = 0, device: str = "cpu") -> np.ndarray:
    """The grey "shape preview" of DECA/EMOCA/SMIRK: albedo 180/255 (or per-vertex ``colors`` (V, 3)
    in [0, 1]) times 1.7 * mean over five directional lights of clamp(n . l, 0, 1), per pixel with
    interpolated vertex normals. Returns (H, W, 3) uint8 over ``background`` (black by default)."""
    v = as_vertices(vertices)
    f = as_faces(faces, v.shape[0])
    tri, _, bary = rasterize(v, f, height, width, cull=cull, threads=threads, device=device)
    kind, alb = _albedo_source(colors, tri, bary, f, v.shape[0])
    out = _background(background, height, width)
    _composite(out, 0, 0, tri, bary, f, _view_normals(v, f, normals), kind, alb, "preview", None, 1.0, threads)
    return out


def render_sh(vertices, faces, height: int, width: int, light, *, albedo=None, uv=None, uv_faces=None,
              texture=None, normals=None, background=None, cull: str = "none", threads: int = 0,
              device: str = "cpu") -> np.ndarray:
    """Spherical-harmonics shaded render (DECA/EMOCA): albedo * (SH basis(n) @ light (9, 3)).

    Albedo: ``texture`` (Ht, Wt, 3) sampled at interpolated ``uv`` (T, 2) (per-corner indices
    ``uv_faces`` (F, 3), default ``faces``), else per-vertex ``albedo`` (V, 3) or one colour (3,),
    else grey 180/255. ``normals`` (V, 3) in FLAME model / view space; by default computed from the
    pixel-space vertices (identical orientation for the weak-perspective camera). Returns (H, W, 3) uint8.
    """
    v = as_vertices(vertices)
    f = as_faces(faces, v.shape[0])
    tri, _, bary = rasterize(v, f, height, width, cull=cull, threads=threads, device=device)
    kind, alb = _albedo_source(albedo, tri, bary, f, v.shape[0], uv, uv_faces, texture, threads)
    out = _background(background, height, width)
    _composite(out, 0, 0, tri, bary, f, _view_normals(v, f, normals), kind, alb, "sh", light, 1.0, threads)
    return out


def depth_map(vertices, faces, height: int, width: int, *, background: float = np.nan, cull: str = "none",
              threads: int = 0, device: str = "cpu") -> np.ndarray:
    """(H, W) float32 depth of the nearest surface in the vertices' z units (pixel space: smaller
    = nearer), ``background`` (NaN by default) where no triangle covers the pixel."""
    tri, depth, _ = rasterize(vertices, faces, height, width, cull=cull, threads=threads, device=device)
    out = depth.copy()
    out[tri < 0] = background
    return out


def normal_map(vertices, faces, height: int, width: int, *, normals=None, cull: str = "none", threads: int = 0,
               device: str = "cpu") -> np.ndarray:
    """(H, W, 3) float32 unit view-space normals (x right, y up, z towards the viewer) of the
    visible surface, interpolated from vertex normals and renormalised; 0 where empty."""
    v = as_vertices(vertices)
    f = as_faces(faces, v.shape[0])
    tri, _, bary = rasterize(v, f, height, width, cull=cull, threads=threads, device=device)
    n = interpolate(_view_normals(v, f, normals), f, tri, bary, threads=threads)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(length > 0, n / np.maximum(length, 1e-12), 0.0).astype(np.float32)


def normal_map_to_rgb(normals) -> np.ndarray:
    """Normal map (H, W, 3) in [-1, 1] -> uint8 RGB (n + 1) / 2 * 255; black where the normal is 0."""
    n = np.asarray(normals, np.float32)
    rgb = _to_uint8((n + 1.0) * 0.5)
    rgb[~np.any(n != 0, axis=-1)] = 0
    return rgb


def transform_vertices(vertices, crop_to_frame) -> np.ndarray:
    """Crop-pixel vertices (V, 3) -> frame pixels through a (2, 3) affine (edge coordinates both
    sides): x, y by the affine, z scaled by sqrt(|det|) so that depth keeps the scale of x and y."""
    v = as_vertices(vertices)
    m = np.asarray(crop_to_frame, np.float64)
    if m.shape != (2, 3) or not np.isfinite(m).all():
        raise ValueError(f"crop_to_frame: expected a finite (2, 3) affine matrix, got shape {m.shape}")
    out = np.empty_like(v)
    out[:, :2] = v[:, :2].astype(np.float64) @ m[:, :2].T + m[:, 2]
    out[:, 2] = v[:, 2] * np.float32(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    return out


def overlay_mesh(frame, vertices_crop, faces, crop_to_frame, *, alpha: float = 0.6, shading: str = "preview",
                 colors=None, light=None, normals=None, cull: str = "back", out: Optional[np.ndarray] = None,
                 threads: int = 0, device: str = "cpu") -> np.ndarray:
    """Blend a shaded mesh onto a full-resolution frame.

    frame: (H, W, 3) uint8 RGB. vertices_crop: (V, 3) crop pixels (as rendered at crop size).
    crop_to_frame: (2, 3) affine crop -> frame pixels (``CropTransform.inverse``). Only the face's
    bounding box in the frame is rasterized and touched. shading: "preview" (grey five-light shape
    preview, or per-vertex ``colors``) or "sh" (needs ``light`` (9, 3); ``colors`` as albedo).
    alpha: opacity of the mesh in [0, 1]. cull: "back" by default (as OpenGL viewers do; for a
    closed mesh whose triangles are counter-clockwise seen from outside, like FLAME, the image is
    the same as without culling, at about half the rasterization cost), "none" or "front"; a
    mirroring ``crop_to_frame`` (negative determinant) is accounted for. out: destination (may be
    ``frame`` itself for in-place); default a copy. Returns the blended frame.
    """
    img = np.asarray(frame)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"frame: expected (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    if shading not in ("preview", "sh"):
        raise ValueError(f"shading: expected 'preview' or 'sh', got {shading!r}")
    if shading == "sh" and light is None:
        raise ValueError("shading='sh' needs light (9, 3)")
    if out is None:
        out = img.copy()
    elif out is not img:
        if out.shape != img.shape or out.dtype != np.uint8:
            raise ValueError(f"out: expected {img.shape} uint8, got {out.dtype} {out.shape}")
        out[...] = img
    h, w = img.shape[:2]
    v = transform_vertices(vertices_crop, crop_to_frame)
    f = as_faces(faces, v.shape[0])
    # Region of interest: box of the finite vertices (unreferenced vertices can only enlarge it).
    used = v[np.isfinite(v).all(axis=1)] if f.size else v[:0]
    if used.size == 0:
        return out
    x0 = max(0, int(np.floor(used[:, 0].min())))
    y0 = max(0, int(np.floor(used[:, 1].min())))
    x1 = min(w, int(np.ceil(used[:, 0].max())) + 1)
    y1 = min(h, int(np.ceil(used[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return out
    # A mirroring transform flips the screen orientation of every triangle and the sign of
    # normals computed from the transformed vertices.
    mirror = np.linalg.det(np.asarray(crop_to_frame, np.float64)[:, :2]) < 0
    if mirror:
        cull = {"back": "front", "front": "back"}.get(cull, cull)
    tri, _, bary = rasterize_region(v, f, (x0, y0, x1, y1), cull=cull, threads=threads, device=device)
    kind, alb = _albedo_source(colors, tri, bary, f, v.shape[0])
    if not out.flags.c_contiguous:
        raise ValueError("out: expected a C-contiguous array")
    vn = _view_normals(v, f, normals)
    if mirror and normals is None:
        vn = -vn
    _composite(out, x0, y0, tri, bary, f, vn, kind, alb, shading, light, alpha, threads)
    return out
