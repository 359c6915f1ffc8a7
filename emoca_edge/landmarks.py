"""Dense face landmarks (MediaPipe Face Mesh V2, 478 points) and blendshapes, in ONNX Runtime.

Coordinates: frame pixels, x right, y down, centre of pixel column j at x = j + 0.5. The
landmark ``z`` is in the same pixel scale as x, relative to the face centre, smaller = nearer
the camera (MediaPipe's convention).

A :class:`FaceRegion` is a rotated square around the face: ``center`` (2,) px, ``size`` (side,
px) and ``rotation`` (radians, counter-clockwise on screen positive: a face whose eye line
rises to the image's right has rotation > 0). The region's crop axes in the frame are
``ex = (cos r, -sin r)`` (crop +x) and ``ey = (sin r, cos r)`` (crop +y, down).

Per face: crop the region to 256x256 (``cv2.warpAffine``, bilinear, black border), scale to
[0,1], run the landmark network (478 x,y,z in crop pixels, a presence logit), map the points
back with the inverse of the crop transform, then (optionally) feed 146 of them, in frame
pixels, to the blendshape network (52 ARKit-named scores in [0,1]).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .assets import asset_path
from .detect import Detection, check_frame
from .providers import create_session

INPUT_SIZE = 256
# MediaPipe's face-landmarker region: the detection box's long side (or the landmarks' extent)
# enlarged by 1.5, squared, rotated so that the eyes are horizontal.
REGION_SCALE = 1.5
# Landmarks used for the roll of a tracked face: outer corners of the right and left eye.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263


def _load_geometry() -> dict[str, np.ndarray]:
    with np.load(asset_path("mediapipe/face_geometry.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


_GEOMETRY = _load_geometry()

#: (898,3) int32 canonical face-mesh triangles over the first 468 landmarks (the 10 iris
#: points 468..477 are not part of the mesh); counter-clockwise seen from the front in the
#: canonical model (+y up), i.e. clockwise in image coordinates (y down).
FACE_MESH_TRIANGLES: np.ndarray = _GEOMETRY["triangles"].astype(np.int32)
#: (468,3) float32 MediaPipe canonical face mesh, centimetres, +x = subject's left
#: (image right), +y up, +z towards the camera.
CANONICAL_VERTICES: np.ndarray = _GEOMETRY["canonical_vertices"].astype(np.float32)
#: 52 blendshape names in the model's output order ("_neutral" then 51 ARKit names).
BLENDSHAPE_NAMES: tuple[str, ...] = tuple(str(n) for n in _GEOMETRY["blendshape_names"])
#: (146,) int32 indices of the landmarks the blendshape model takes, in its input order.
BLENDSHAPE_LANDMARKS: np.ndarray = _GEOMETRY["blendshape_landmarks"].astype(np.int64)


@dataclass
class FaceRegion:
    """Rotated square crop region: centre (2,) float32 px, side ``size`` px, ``rotation`` radians
    (counter-clockwise on screen positive)."""

    center: np.ndarray
    size: float
    rotation: float


@dataclass
class FaceLandmarks:
    """points (478,3) float32 (x,y frame px; z same scale, smaller = nearer); presence in [0,1];
    blendshapes {name: score in [0,1]} (52 names, empty if disabled); the region used."""

    points: np.ndarray
    presence: float
    blendshapes: dict = field(default_factory=dict)
    region: FaceRegion | None = None


def crop_to_frame(region: FaceRegion, size: int = INPUT_SIZE) -> np.ndarray:
    """(2,3) affine map from crop pixel coordinates (continuous, [0,size]^2) to frame pixels."""
    r = float(region.rotation)
    k = float(region.size) / size
    a = k * np.array([[np.cos(r), np.sin(r)], [-np.sin(r), np.cos(r)]])
    t = np.asarray(region.center, np.float64) - a @ np.array([size / 2, size / 2])
    return np.concatenate([a, t[:, None]], 1)


def crop_region(frame: np.ndarray, region: FaceRegion, size: int = INPUT_SIZE) -> np.ndarray:
    """The (size,size,3) uint8 crop of ``region`` (bilinear, black outside the frame)."""
    m = crop_to_frame(region, size)
    a, t = m[:, :2], m[:, 2]
    # warpAffine works on pixel indices (centres at integers): p_idx = a q_idx + (a 0.5 + t - 0.5)
    m_idx = np.concatenate([a, (a @ np.array([0.5, 0.5]) + t - 0.5)[:, None]], 1)
    return cv2.warpAffine(frame, m_idx, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _roll(p_right: np.ndarray, p_left: np.ndarray) -> float:
    """Counter-clockwise-on-screen angle of the line from the subject's right to left eye."""
    d = np.asarray(p_left, np.float64) - np.asarray(p_right, np.float64)
    return float(np.arctan2(-d[1], d[0]))


class FaceLandmarker:
    """478 landmarks (+ presence, + 52 blendshapes) for a face region of a frame.

    ``blendshapes``: run the blendshape model (default True); ``threads``: ONNX Runtime
    intra-op threads per session (1 = fastest for these small models on small CPUs).
    """

    def __init__(self, device: str = "cpu", *, blendshapes: bool = True, threads: int = 1):
        self.session = create_session(asset_path("mediapipe/face_landmarks_detector.onnx"), device, threads=threads)
        self._input = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        shapes = [o.shape for o in self.session.get_outputs()]
        self._i_points = next(i for i, s in enumerate(shapes) if s[-1] == 478 * 3)
        self._i_presence = names.index("Identity_1")
        self.blend_session = None
        if blendshapes:
            self.blend_session = create_session(asset_path("mediapipe/face_blendshapes.onnx"), device, threads=threads)
            self._blend_input = self.blend_session.get_inputs()[0].name

    # ---- regions ------------------------------------------------------------------------
    @staticmethod
    def region_from_detection(det: Detection) -> FaceRegion:
        """Square region around a detection: box centre, side = 1.5 x the box's long side,
        rotated to the eye keypoints."""
        box = np.asarray(det.box, np.float64)
        center = (box[:2] + box[2:]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * REGION_SCALE
        kp = np.asarray(det.keypoints, np.float64)
        return FaceRegion(center=center.astype(np.float32), size=float(side), rotation=_roll(kp[0], kp[1]))

    @staticmethod
    def region_from_landmarks(points: np.ndarray) -> FaceRegion:
        """Region for the next frame of a tracked face: rotation from the outer eye corners,
        centre and side from the extent of the points in the rotated (face-upright) axes,
        side = 1.5 x the long extent."""
        p = np.asarray(points, np.float64)
        if p.ndim != 2 or p.shape[0] <= LEFT_EYE_OUTER or p.shape[1] < 2:
            raise ValueError(f"points must be (478,2|3) landmarks, got shape {p.shape}")
        r = _roll(p[RIGHT_EYE_OUTER, :2], p[LEFT_EYE_OUTER, :2])
        ex, ey = np.array([np.cos(r), -np.sin(r)]), np.array([np.sin(r), np.cos(r)])
        u, v = p[:, :2] @ ex, p[:, :2] @ ey
        cu, cv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
        side = max(u.max() - u.min(), v.max() - v.min()) * REGION_SCALE
        center = cu * ex + cv * ey
        return FaceRegion(center=center.astype(np.float32), size=float(side), rotation=r)

    # ---- inference ----------------------------------------------------------------------
    def run_raw(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """Landmark network on a (256,256,3) uint8 crop: (478,3) crop-pixel points, presence logit."""
        x = crop.astype(np.float32)[None] * (1.0 / 255.0)
        outs = self.session.run(None, {self._input: x})
        return outs[self._i_points].reshape(478, 3), float(outs[self._i_presence].reshape(-1)[0])

    def blendshape_scores(self, points: np.ndarray) -> np.ndarray:
        """(52,) scores from (478,2|3) frame-pixel landmarks."""
        if self.blend_session is None:
            raise RuntimeError("this FaceLandmarker was created with blendshapes=False")
        x = np.asarray(points, np.float32)[BLENDSHAPE_LANDMARKS, :2][None]
        return self.blend_session.run(None, {self._blend_input: x})[0].reshape(-1)

    def __call__(self, frame: np.ndarray, region: FaceRegion) -> FaceLandmarks:
        check_frame(frame)
        if not (np.isfinite(region.size) and region.size > 1):
            raise ValueError(f"region size must be a finite number of pixels > 1, got {region.size}")
        crop = crop_region(frame, region)
        raw, logit = self.run_raw(crop)
        m = crop_to_frame(region)
        pts = np.empty((478, 3), np.float32)
        pts[:, :2] = raw[:, :2] @ m[:, :2].T + m[:, 2]
        pts[:, 2] = raw[:, 2] * (float(region.size) / INPUT_SIZE)
        presence = float(1.0 / (1.0 + np.exp(-np.clip(logit, -100.0, 100.0))))
        blend = {}
        if self.blend_session is not None:
            blend = {n: float(s) for n, s in zip(BLENDSHAPE_NAMES, self.blendshape_scores(pts))}
        return FaceLandmarks(points=pts, presence=presence, blendshapes=blend, region=region)
