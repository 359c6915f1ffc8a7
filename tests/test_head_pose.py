"""Head pose: recovery of a known synthetic pose, conventions, and the fixture faces."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoca_edge.head_pose import HeadPose, estimate_head_pose
from emoca_edge.landmarks import CANONICAL_VERTICES, FaceLandmarker

FIX = Path(__file__).parent / "fixtures" / "mediapipe"


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def project(r, t, width, height):
    """Independent pinhole projection in the documented camera frame (x right, y up, z to the
    viewer; the camera looks along -z), focal = width, centre = frame centre; (478,3) rows."""
    v = CANONICAL_VERTICES.astype(np.float64) @ r.T + t
    x = width / 2 + width * v[:, 0] / -v[:, 2]
    y = height / 2 - width * v[:, 1] / -v[:, 2]
    pts = np.zeros((478, 3))
    pts[:468, 0], pts[:468, 1] = x, y
    pts[468:, :2] = pts[[468 - 1] * 10, :2]  # iris rows are not used by the fit
    return pts


@pytest.mark.parametrize("pitch,yaw,roll,t", [
    (0, 0, 0, (0, 0, -60)),
    (10, -25, 15, (8, -5, -80)),
    (-15, 30, -20, (-20, 10, -150)),
])
def test_recovers_known_pose(pitch, yaw, roll, t):
    r = rot_z(np.radians(roll)) @ rot_y(np.radians(yaw)) @ rot_x(np.radians(pitch))
    pts = project(r, np.array(t, float), 1280, 720)
    pose = estimate_head_pose(pts.astype(np.float32), 1280, 720)
    assert isinstance(pose, HeadPose)
    # exact synthetic data: only the float32 rounding of the points (~1e-4 px) limits the fit
    np.testing.assert_allclose(pose.rotation, r, atol=1e-4)
    np.testing.assert_allclose(pose.translation, t, atol=1e-2 * abs(t[2]) / 60)
    np.testing.assert_allclose(pose.euler_deg, [pitch, yaw, roll], atol=1e-2)
    # rotation_vector is the axis-angle of rotation (Rodrigues, written out here)
    rv = pose.rotation_vector
    th = np.linalg.norm(rv)
    if th > 1e-9:
        k = rv / th
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        np.testing.assert_allclose(np.eye(3) + np.sin(th) * kx + (1 - np.cos(th)) * kx @ kx, r, atol=1e-4)
    m = pose.matrix()
    np.testing.assert_allclose(m[:3, :3], pose.rotation)
    np.testing.assert_allclose(m[:3, 3], pose.translation)


def test_sign_conventions():
    """yaw > 0 turns the nose towards the image right; pitch > 0 moves it down (face tilted
    down); roll > 0 turns the eye line counter-clockwise on screen."""
    nose = 1
    base = project(np.eye(3), np.array([0, 0, -60.0]), 640, 480)
    turned = project(rot_y(np.radians(20)), np.array([0, 0, -60.0]), 640, 480)
    down = project(rot_x(np.radians(20)), np.array([0, 0, -60.0]), 640, 480)
    assert turned[nose, 0] > base[nose, 0] + 5
    assert down[nose, 1] > base[nose, 1] + 5
    assert estimate_head_pose(down, 640, 480).euler_deg[0] == pytest.approx(20, abs=1e-3)
    assert estimate_head_pose(turned, 640, 480).euler_deg[1] == pytest.approx(20, abs=1e-3)
    rolled = project(rot_z(np.radians(20)), np.array([0, 0, -60.0]), 640, 480)
    reg = FaceLandmarker.region_from_landmarks(rolled)
    assert np.degrees(reg.rotation) == pytest.approx(20, abs=0.5)
    assert estimate_head_pose(rolled, 640, 480).euler_deg[2] == pytest.approx(20, abs=1e-3)


def test_fixture_faces():
    """Real landmarks (original model outputs): faces look roughly at the camera, the kiosk
    faces are rolled by about +20 / -20 degrees, and sit tens of centimetres to metres away."""
    for name, w, h in (("astronaut", 512, 512), ("grace_hopper", 512, 600)):
        pts = np.load(FIX / f"{name}.npz")["points"][0]
        pose = estimate_head_pose(pts, w, h)
        assert np.all(np.abs(pose.euler_deg) < 35), pose.euler_deg  # astronaut: pitch 23
        assert pose.translation[2] < 0
    ref = np.load(FIX / "kiosk_two_faces.npz")
    order = np.argsort(ref["regions"][:, 0])
    rolls = [estimate_head_pose(ref["points"][i], 1280, 720).euler_deg[2] for i in order]
    assert abs(rolls[0] - 20) < 8 and abs(rolls[1] + 20) < 8, rolls
    # ~100 px faces with focal 1280 px: a ~15 cm face is about 1.5-2.5 m away
    for i in order:
        z = -estimate_head_pose(ref["points"][i], 1280, 720).translation[2]
        assert 100 < z < 300, z


def test_bad_input():
    with pytest.raises(ValueError, match="478"):
        estimate_head_pose(np.zeros((68, 2)), 640, 480)
    with pytest.raises(ValueError, match="NaN"):
        estimate_head_pose(np.full((478, 3), np.nan), 640, 480)
    with pytest.raises(ValueError, match="frame size"):
        estimate_head_pose(np.zeros((478, 3)), 0, 480)
