"""Triangle rasterization on the native extension (CPU, optionally CUDA).

Conventions (docs/design.md): vertices are in pixel space, x right, y down, z depth with smaller
values nearer; pixel (row i, column j) samples the point (j + 0.5, i + 0.5), so an image of
``height`` x ``width`` pixels spans [0, width] x [0, height].

Exactness: x and y are snapped to 1/256 pixel (round half to even) and coverage is decided with
exact 64-bit edge functions and a top-left fill rule, so a sample on an edge shared by two
triangles is covered exactly once and sub-1/512-pixel jitter cannot change the result. A
triangle is skipped when it has zero snapped area, a non-finite coordinate, or a vertex more
than 2**21 pixels from the buffer origin. Depth ties go to the lowest triangle index.
"""
from __future__ import annotations

import numbers
from typing import Optional, Tuple

import numpy as np

__all__ = ["RenderTarget", "rasterize", "cuda_available", "cuda_device_name", "CULL_MODES", "MAX_SIDE"]

CULL_MODES = {"none": 0, "back": 1, "front": 2}
MAX_SIDE = 32768

_native = None
_native_cuda = None
_cuda_checked = False


def _raster():
    """The CPU extension module, with a clear error when it was not built."""
    global _native
    if _native is None:
        try:
            from emoca_edge import _raster as mod
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(
                "emoca_edge._raster (the native rasterizer) is not built; reinstall with "
                "`pip install -e .` (needs a C++17 compiler)") from exc
        _native = mod
    return _native


def _raster_cuda():
    """The CUDA extension module, or None when it was not built."""
    global _native_cuda, _cuda_checked
    if not _cuda_checked:
        _cuda_checked = True
        try:
            from emoca_edge import _raster_cuda as mod
        except ImportError:
            mod = None
        _native_cuda = mod
    return _native_cuda


def cuda_available() -> bool:
    """True when the CUDA rasterizer was built and a CUDA device is present."""
    mod = _raster_cuda()
    if mod is None:
        return False
    try:
        return mod.device_count() > 0
    except Exception:  # pragma: no cover - broken driver
        return False


def cuda_device_name() -> Optional[str]:
    """Name of CUDA device 0, or None without one."""
    return _raster_cuda().device_name() if cuda_available() else None


class RenderTarget:
    """Reusable output buffers of one image size: ``tri_id`` (H,W) int32, ``depth`` (H,W) float32,
    ``bary`` (H,W,3) float32.

    Passing the same target to successive :func:`rasterize` calls avoids allocating full-frame
    buffers per call; with a region of interest only that region (and the previous call's region,
    to erase it) is written, so a 1080p target costs only the face region per frame.
    """

    def __init__(self, height: int, width: int, _cleared: bool = True):
        height, width = _check_size(height, width)
        self.height, self.width = height, width
        if _cleared:
            self.tri_id = np.full((height, width), -1, np.int32)
            self.depth = np.full((height, width), np.inf, np.float32)
            self.bary = np.zeros((height, width, 3), np.float32)
        else:  # only for a call that renders (and so clears) the whole image
            self.tri_id = np.empty((height, width), np.int32)
            self.depth = np.empty((height, width), np.float32)
            self.bary = np.empty((height, width, 3), np.float32)
        self._dirty: Optional[Tuple[int, int, int, int]] = None  # rectangle written by the last call

    def _prepare(self, rect: Tuple[int, int, int, int]) -> None:
        """Erase what the previous call wrote outside ``rect`` (the native call clears ``rect``)."""
        old = self._dirty
        if old is not None and not (rect[0] <= old[0] and rect[1] <= old[1] and old[2] <= rect[2] and old[3] <= rect[3]):
            x0, y0, x1, y1 = old
            self.tri_id[y0:y1, x0:x1] = -1
            self.depth[y0:y1, x0:x1] = np.inf
            self.bary[y0:y1, x0:x1] = 0.0
        self._dirty = rect

    def as_tuple(self):
        return self.tri_id, self.depth, self.bary


def _check_size(height, width) -> Tuple[int, int]:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"rasterize: {name} must be an integer, got {type(v).__name__}")
        if not 1 <= int(v) <= MAX_SIDE:
            raise ValueError(f"rasterize: {name} must be within 1..{MAX_SIDE}, got {int(v)}")
    return int(height), int(width)


def as_vertices(vertices, name: str = "vertices") -> np.ndarray:
    """(V,3) C-contiguous float32 copy/view of a real-valued array; clear errors otherwise."""
    v = np.asarray(vertices)
    if v.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real floating array of shape (V, 3), got dtype {v.dtype}")
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (V, 3), got {v.shape}")
    return np.ascontiguousarray(v, dtype=np.float32)


def as_faces(faces, num_vertices: int, name: str = "faces", check_range_natively: bool = False) -> np.ndarray:
    """(F,3) C-contiguous int32 triangle array with every index in [0, num_vertices).

    With ``check_range_natively`` an int32 array is passed through unchecked because the native
    call it is meant for validates every index itself (IndexError naming the triangle)."""
    f = np.asarray(faces)
    if f.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of shape (F, 3), got dtype {f.dtype}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (F, 3), got {f.shape}")
    if f.dtype == np.int32 and check_range_natively:
        return np.ascontiguousarray(f)  # the extension checks every index before use
    if f.size:
        lo, hi = int(f.min()), int(f.max())
        if lo < 0 or hi >= num_vertices:
            bad = int(np.argwhere((f < 0) | (f >= num_vertices))[0, 0])
            raise IndexError(f"{name}: triangle {bad} has index {f[bad].tolist()} out of range "
                             f"for {num_vertices} vertices")
    return np.ascontiguousarray(f, dtype=np.int32)


def _check_roi(roi, height: int, width: int) -> Tuple[int, int, int, int]:
    """Integer pixel rectangle (x0, y0, x1, y1), end-exclusive, clipped to the image."""
    if roi is None:
        return 0, 0, width, height
    try:
        vals = [float(v) for v in roi]
    except (TypeError, ValueError):
        raise TypeError(f"roi: expected (x0, y0, x1, y1) numbers, got {roi!r}") from None
    if len(vals) != 4 or not all(np.isfinite(vals)):
        raise ValueError(f"roi: expected 4 finite numbers (x0, y0, x1, y1), got {roi!r}")
    x0, y0 = int(np.floor(vals[0])), int(np.floor(vals[1]))
    x1, y1 = int(np.ceil(vals[2])), int(np.ceil(vals[3]))
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    return x0, y0, max(x0, x1), max(y0, y1)


def rasterize(vertices, faces, height: int, width: int, *, roi=None, cull: str = "none", threads: int = 0,
              device: str = "cpu", out: Optional[RenderTarget] = None):
    """Rasterize triangles given in pixel space.

    Args:
        vertices: (V, 3) float array, pixel space (x right, y down, z depth, smaller = nearer);
            converted to float32.
        faces: (F, 3) integer array of vertex indices; converted to int32.
        height, width: image size in pixels (1..32768).
        roi: optional (x0, y0, x1, y1) pixel rectangle (end-exclusive, clipped to the image): only
            it is rendered, every other pixel is reported empty.
        cull: "none", "back" (drop triangles clockwise on screen, i.e. facing away for meshes whose
            triangles are counter-clockwise seen from outside, like FLAME) or "front".
        threads: CPU worker threads; 0 = automatic, 1 = single-threaded.
        device: "cpu" or "cuda" (needs :func:`cuda_available`).
        out: optional :class:`RenderTarget` of the same size, reused and returned.

    Returns:
        (triangle_id, depth, bary): (H, W) int32 index into ``faces`` (-1 where empty),
        (H, W) float32 depth of the nearest surface (+inf where empty), (H, W, 3) float32
        screen-space weights of the triangle's three vertices in ``faces`` order (0 where empty);
        they sum to 1, reproduce the sample point from the snapped vertices, and
        ``depth = bary . z``.
    """
    height, width = _check_size(height, width)
    v = as_vertices(vertices)
    f = as_faces(faces, v.shape[0], check_range_natively=True)
    if cull not in CULL_MODES:
        raise ValueError(f"cull: expected one of {sorted(CULL_MODES)}, got {cull!r}")
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 0:
        raise ValueError(f"threads: expected an integer >= 0 (0 = automatic), got {threads!r}")
    rect = _check_roi(roi, height, width)
    if out is None:
        # without a region of interest the native call clears every pixel itself
        target = RenderTarget(height, width, _cleared=rect != (0, 0, width, height))
    else:
        if not isinstance(out, RenderTarget):
            raise TypeError(f"out: expected a RenderTarget, got {type(out).__name__}")
        if (out.height, out.width) != (height, width):
            raise ValueError(f"out: RenderTarget is {out.height}x{out.width}, the call asks for {height}x{width}")
        target = out
    target._prepare(rect)
    _rasterize_into(v, f, target.tri_id, target.depth, target.bary, rect, (0, 0), CULL_MODES[cull],
                    int(threads), device)
    return target.tri_id, target.depth, target.bary


def _rasterize_into(v, f, tri_id, depth, bary, rect, origin, cull: int, threads: int, device: str) -> None:
    """Validated inputs -> native call on the chosen device."""
    x0, y0, x1, y1 = rect
    if device == "cpu":
        _raster().rasterize_into(v, f, tri_id, depth, bary, x0, y0, x1, y1, int(origin[0]), int(origin[1]), cull,
                                 threads)
    elif device == "cuda":
        if not cuda_available():
            raise RuntimeError("device='cuda': the CUDA rasterizer is not available (not built, or no CUDA device)")
        _raster_cuda().rasterize_into(v, f, tri_id, depth, bary, x0, y0, x1, y1, int(origin[0]), int(origin[1]),
                                      cull, 1)
    else:
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")


def rasterize_region(vertices, faces, rect, *, cull: str = "none", threads: int = 0, device: str = "cpu"):
    """Rasterize only the frame rectangle ``rect`` = (x0, y0, x1, y1) (integers, end-exclusive) into
    buffers of the rectangle's size: buffer pixel (i, j) samples frame point (x0 + j + 0.5, y0 + i + 0.5).

    Same snapping and coverage as :func:`rasterize` on the full frame (the offset is applied on the
    integer grid). Returns (triangle_id, depth, bary) of shape (y1-y0, x1-x0[, 3]).
    """
    x0, y0, x1, y1 = (int(r) for r in rect)
    h, w = y1 - y0, x1 - x0
    _check_size(h, w)
    v = as_vertices(vertices)
    f = as_faces(faces, v.shape[0], check_range_natively=True)
    if cull not in CULL_MODES:
        raise ValueError(f"cull: expected one of {sorted(CULL_MODES)}, got {cull!r}")
    tri_id = np.empty((h, w), np.int32)
    depth = np.empty((h, w), np.float32)
    bary = np.empty((h, w, 3), np.float32)
    _rasterize_into(v, f, tri_id, depth, bary, (0, 0, w, h), (x0, y0), CULL_MODES[cull], int(threads), device)
    return tri_id, depth, bary
