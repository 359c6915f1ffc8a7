"""Face crops for each bundle's convention, and the inverse mapping back to the frame.

Coordinates: frame and crop points are pixel *edge* coordinates (x right, y down; the centre of
pixel column j is x = j + 0.5), as everywhere in emoca-edge.

Conventions (the official preprocessing of each system, see ``shared/spec/official-formats.md``):

``deca68`` (DECA, EMOCA)
    Box of 68 landmarks -> ``old = (w + h) / 2 * 1.1``; ``size = floor(old * 1.25)``; centre = box
    centre. The square ``centre +- size/2`` is mapped by a similarity (scale + translation) so that
    its edges land on the centres of the first and last crop pixels (the official code maps the
    square's corners to pixel indices 0 and 223 with skimage's ``estimate_transform``/``warp``,
    bilinear, black outside the frame).
``smirk478``
    Box of all 478 MediaPipe points -> ``size = floor((w + h) / 2 * 1.4)``; same warp.

The front end gives MediaPipe's 478 points, not FAN's 68. For ``deca68`` the box is taken over
:data:`MP_DECA68_EXTENT`, a subset of MediaPipe points whose extent approximates the extent of
the 68-point set (jaw contour from the ear-level cheek points down to the chin, and the upper
eyebrow line). This is an approximation: FAN and MediaPipe place the contour differently by a
few pixels. Passing 68 points (for example a bundle's own ``landmarks2d`` mapped to the frame)
uses them directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Convention = Literal["deca68", "smirk478"]
CONVENTIONS = ("deca68", "smirk478")

#: MediaPipe indices whose extent stands in for the 68-landmark extent (deca68 crop).
#: Jaw contour, subject's right ear level -> chin (152) -> left ear level: the face-oval points
#: from the outer-eye-corner height (127 / 356, where FAN's jaw points 1 and 17 sit, at the widest
#: part of the face) down to the chin. Chosen by plotting the landmarks on the sample portraits.
#: Eyebrows: upper brow line (right 70 63 105 66 107, left 336 296 334 293 300), where the 68-point
#: annotation puts its brow points 18..27, which set the top of the 68-point box. The forehead part of the face oval is excluded
#: because the 68-point set does not reach it.
MP_JAW = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)
MP_BROWS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
MP_DECA68_EXTENT = np.array(MP_JAW + MP_BROWS, dtype=np.int64)

_SCALES = {"deca68": (1.1, 1.25), "smirk478": (1.0, 1.4)}


@dataclass(frozen=True)
class CropTransform:
    """A similarity from frame pixels to crop pixels.

    ``matrix``: (2,3) float64, ``crop = matrix @ [x, y, 1]`` (edge coordinates both sides).
    ``inverse``: (2,3) float64, crop -> frame. ``size``: crop side in pixels.
    ``center`` (2,) and ``box_size`` (side of the square in frame pixels) describe the square.
    """

    matrix: np.ndarray
    inverse: np.ndarray
    size: int
    center: np.ndarray
    box_size: float

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel."""
        return float(np.hypot(self.matrix[0, 0], self.matrix[1, 0]))


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2,3) affine map."""
    m = np.asarray(m, dtype=np.float64)
    a = m[:, :2]
    ai = np.linalg.inv(a)
    return np.concatenate([ai, -ai @ m[:, 2:3]], axis=1)


def square_transform(center, box_size: float, size: int = 224) -> CropTransform:
    """Transform of the square ``center +- box_size/2`` to a ``size`` crop (official edge rule).

    The square's edges map to the centres of the first and last crop pixels (0.5 and size-0.5),
    which is the official ``[0, size-1]`` pixel-index mapping written in edge coordinates.
    """
    center = np.asarray(center, dtype=np.float64).reshape(2)
    if not np.isfinite(center).all() or not np.isfinite(box_size) or box_size <= 0:
        raise ValueError(f"invalid crop square: center={center.tolist()}, size={box_size}")
    s = (size - 1) / float(box_size)
    # x0 = c - box/2 -> 0.5 ; crop = s * (x - x0) + 0.5
    x0 = center - box_size / 2.0
    m = np.array([[s, 0.0, 0.5 - s * x0[0]], [0.0, s, 0.5 - s * x0[1]]], dtype=np.float64)
    return CropTransform(matrix=m, inverse=invert_affine(m), size=int(size), center=center, box_size=float(box_size))


def box_points(points: np.ndarray, convention: Convention) -> np.ndarray:
    """The (K,2) points whose extent defines the box for ``convention``.

    ``points``: (478, >=2) MediaPipe points or, for ``deca68``, (68, >=2) FAN-order points.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise ValueError(f"points must be (P, 2|3), got shape {pts.shape}")
    if convention == "deca68":
        if pts.shape[0] == 68:
            return pts[:, :2]
        if pts.shape[0] in (468, 478):
            return pts[MP_DECA68_EXTENT, :2]
        raise ValueError(f"deca68 crop needs 68 or 478 points, got {pts.shape[0]}")
    if convention == "smirk478":
        if pts.shape[0] not in (468, 478):
            raise ValueError(f"smirk478 crop needs 478 MediaPipe points, got {pts.shape[0]}")
        return pts[:, :2]
    raise ValueError(f"unknown crop convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")


def crop_square(points: np.ndarray, convention: Convention) -> tuple[np.ndarray, float]:
    """(centre (2,), side in frame pixels) of the crop square for ``convention``."""
    pts = box_points(points, convention)
    if not np.isfinite(pts).all():
        raise ValueError("crop points contain NaN or infinity")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    f1, f2 = _SCALES[convention]
    old = ((hi[0] - lo[0]) + (hi[1] - lo[1])) / 2.0 * f1
    side = float(np.floor(old * f2))  # the official code truncates with int()
    if side <= 0:
        raise ValueError("crop points have no extent (all points coincide)")
    return (lo + hi) / 2.0, side


def crop_transform(points: np.ndarray, convention: Convention, size: int = 224) -> CropTransform:
    """Frame -> crop similarity for the face given by ``points`` (frame px) under ``convention``."""
    center, side = crop_square(points, convention)
    return square_transform(center, side, size)


def _index_matrix(m: np.ndarray) -> np.ndarray:
    """An edge-coordinate affine map rewritten for pixel indices (what OpenCV uses)."""
    m = np.asarray(m, dtype=np.float64)
    shift = m[:, :2] @ np.array([0.5, 0.5])
    out = m.copy()
    out[:, 2] = m[:, 2] + shift - 0.5
    return out


def warp(frame: np.ndarray, transform: CropTransform, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """The (size, size, C) crop of ``frame`` (bilinear, black outside the frame)."""
    m = _index_matrix(transform.matrix)
    return cv2.warpAffine(frame, m, (transform.size, transform.size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def apply(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2,3) affine map to the x, y of (..., >=2) points; other columns unchanged."""
    pts = np.asarray(points)
    m = np.asarray(matrix, dtype=np.float64)
    out = np.array(pts, dtype=np.float64, copy=True)
    xy = pts[..., :2].astype(np.float64)
    out[..., :2] = xy @ m[:, :2].T + m[:, 2]
    return out


def to_frame(points_crop: np.ndarray, transform: CropTransform, scale_z: bool = True) -> np.ndarray:
    """Crop pixel points (..., 2|3) -> frame pixels. A third (depth) column is divided by the
    crop scale when ``scale_z`` so that it stays in the same pixel units as x and y."""
    out = apply(points_crop, transform.inverse)
    if scale_z and out.shape[-1] >= 3:
        out[..., 2] = out[..., 2] / transform.scale
    return out


def to_crop(points_frame: np.ndarray, transform: CropTransform, scale_z: bool = True) -> np.ndarray:
    """Frame pixel points (..., 2|3) -> crop pixels (inverse of :func:`to_frame`)."""
    out = apply(points_frame, transform.matrix)
    if scale_z and out.shape[-1] >= 3:
        out[..., 2] = out[..., 2] * transform.scale
    return out
