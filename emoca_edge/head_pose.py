"""Head pose from the 478 face landmarks: a perspective fit of MediaPipe's canonical face mesh.

Camera: pinhole, focal length = frame width in pixels (about 53 degrees horizontal field of
view, a typical webcam), principal point at the frame centre, no distortion. The rigid points
of the canonical mesh (MediaPipe's Procrustes landmark basis: forehead, nose bridge, eye
corners, cheeks; weight > 0) are fitted to their landmarks with ``cv2.solvePnP`` (SQPnP, then
Levenberg-Marquardt refinement); the mesh is in centimetres, so the translation is too.

Conventions (MediaPipe's metric face space): the camera frame is x right, y up, z towards the
viewer (the camera looks along -z); the face model is +x the subject's left (image right),
+y up, +z out of the face. A face looking straight into the camera has ``rotation`` = I and a
negative ``translation[2]`` (its distance). Euler angles, degrees, with
``rotation = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (right-handed rotations about the camera axes):
pitch > 0 tilts the face down (nose towards the chest), yaw > 0 turns it towards the subject's
left (the nose moves to the image's right), roll > 0 tilts it counter-clockwise on screen
(same sense as :class:`emoca_edge.landmarks.FaceRegion`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .assets import asset_path

_FLIP = np.diag([1.0, -1.0, -1.0])  # OpenCV camera (x right, y down, z forward) <-> ours


def _load():
    with np.load(asset_path("mediapipe/face_geometry.npz"), allow_pickle=False) as z:
        idx, w = z["procrustes_indices"], z["procrustes_weights"]
        return z["canonical_vertices"].astype(np.float64), idx[w > 0].astype(np.int64)


_CANONICAL, _RIGID = _load()


@dataclass
class HeadPose:
    """rotation (3,3): face model -> camera (see module docstring); rotation_vector (3,) radians
    (axis-angle of ``rotation``); translation (3,) centimetres, the model origin (head centre,
    behind the nose) in camera coordinates; euler_deg (3,): pitch, yaw, roll in degrees."""

    rotation: np.ndarray
    rotation_vector: np.ndarray
    translation: np.ndarray
    euler_deg: np.ndarray

    def matrix(self) -> np.ndarray:
        """(4,4) face-model -> camera transform (MediaPipe's facial transformation matrix)."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.rotation, self.translation
        return m


def camera_matrix(frame_width: int, frame_height: int) -> np.ndarray:
    """(3,3) OpenCV intrinsics used for the fit (focal = width, centre = frame centre)."""
    f = float(frame_width)
    return np.array([[f, 0, frame_width / 2.0], [0, f, frame_height / 2.0], [0, 0, 1]])


def euler_from_rotation(r: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) degrees with r = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    pitch = np.arctan2(r[2, 1], r[2, 2])
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    roll = np.arctan2(r[1, 0], r[0, 0])
    return np.degrees([pitch, yaw, roll])


def estimate_head_pose(points: np.ndarray, frame_width: int, frame_height: int) -> HeadPose:
    """Fit the canonical face mesh to landmarks ``points`` (478 or 468 rows; x, y in frame
    pixels, pixel centre of column j at x = j + 0.5; z unused) seen by the camera above."""
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[0] < 468 or p.shape[1] < 2:
        raise ValueError(f"points must be (478,3) (or (468,2+)) face landmarks, got shape {p.shape}")
    if not np.isfinite(p[:468, :2]).all():
        raise ValueError("points contain NaN or infinite values")
    if frame_width <= 0 or frame_height <= 0:
        raise ValueError(f"frame size must be positive, got {frame_width}x{frame_height}")
    obj = _CANONICAL[_RIGID]
    img = p[_RIGID, :2]
    k = camera_matrix(frame_width, frame_height)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise RuntimeError("head pose: solvePnP failed on these landmarks")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, None, rvec, tvec)
    r_cv, _ = cv2.Rodrigues(rvec)
    r = _FLIP @ r_cv
    t = _FLIP @ tvec.reshape(3)
    rv, _ = cv2.Rodrigues(r)
    return HeadPose(rotation=r, rotation_vector=rv.reshape(3), translation=t, euler_deg=euler_from_rotation(r))
