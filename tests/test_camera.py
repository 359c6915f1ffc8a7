"""Weak-perspective camera: hand-derived values, torch (training) vs numpy (runtime) parity."""
from __future__ import annotations

import numpy as np
import pytest

from emoca_edge import camera as npcam


def test_hand_derived_values():
    # point (0.1, 0.2, 0.3) m, camera s=2, tx=0.05, ty=-0.1:
    # ndc = (2*(0.1+0.05), -2*(0.2-0.1), -2*0.3) = (0.3, -0.2, -0.6)
    # pixels (size 224, half 112) = (1.3*112, 0.8*112, -0.6*112) = (145.6, 89.6, -67.2)
    pts = np.array([[[0.1, 0.2, 0.3]]])
    cam = np.array([[2.0, 0.05, -0.1]])
    ndc = npcam.weak_perspective(pts, cam)
    np.testing.assert_allclose(ndc, [[[0.3, -0.2, -0.6]]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(npcam.ndc_to_pixels(ndc), [[[145.6, 89.6, -67.2]]],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(npcam.project_to_pixels(pts, cam), [[[145.6, 89.6, -67.2]]],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(npcam.ndc_to_pixels(ndc[..., :2], size=100), [[[65.0, 40.0]]],
                               rtol=0, atol=1e-12)


def test_conventions():
    cam = np.array([[5.0, 0.0, 0.0]])
    pts = np.array([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.1]]])
    px = npcam.project_to_pixels(pts, cam)
    np.testing.assert_allclose(px[0, 0, :2], [112.0, 112.0])   # origin -> crop centre
    assert px[0, 1, 1] < 112.0                                  # +y (up) -> smaller row
    assert px[0, 2, 0] > 112.0                                  # +x -> image right
    assert px[0, 3, 2] < px[0, 0, 2]                            # +z (towards camera) -> nearer
    # ndc -1 and +1 are the crop's outer pixel edges.
    np.testing.assert_allclose(npcam.ndc_to_pixels(np.array([[-1.0, -1.0], [1.0, 1.0]])),
                               [[0.0, 0.0], [224.0, 224.0]])


def test_float32_stays_float32():
    pts = np.zeros((2, 4, 3), np.float32)
    cam = np.ones((2, 3), np.float32)
    assert npcam.weak_perspective(pts, cam).dtype == np.float32
    assert npcam.ndc_to_pixels(npcam.weak_perspective(pts, cam)).dtype == np.float32


def test_bad_shapes():
    with pytest.raises(ValueError, match="points"):
        npcam.weak_perspective(np.zeros((4, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="camera"):
        npcam.weak_perspective(np.zeros((2, 4, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="ndc"):
        npcam.ndc_to_pixels(np.zeros((4, 4)))


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    from emoca_edge.training import camera as tcam

    rng = np.random.default_rng(0)
    pts = rng.normal(scale=0.1, size=(3, 50, 3))
    cam = np.column_stack([rng.uniform(5, 10, 3), rng.normal(scale=0.02, size=(3, 2))])
    for dtype, tol in ((np.float64, 1e-15), (np.float32, 0.0)):
        # Same operations in the same order: float64 agrees to rounding, float32 exactly.
        want = npcam.weak_perspective(pts.astype(dtype), cam.astype(dtype))
        got = tcam.weak_perspective(torch.from_numpy(pts.astype(dtype)),
                                    torch.from_numpy(cam.astype(dtype))).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
        np.testing.assert_allclose(tcam.ndc_to_pixels(torch.from_numpy(want)).numpy(),
                                   npcam.ndc_to_pixels(want), rtol=0, atol=max(tol, 1e-12))
        np.testing.assert_allclose(tcam.ndc_to_pixels(torch.from_numpy(want[..., :2]), 256)
                                   .numpy(), npcam.ndc_to_pixels(want[..., :2], 256),
                                   rtol=0, atol=max(tol, 1e-12))
    # And against the formula written out independently (float64).
    ref = np.stack([cam[:, None, 0] * (pts[..., 0] + cam[:, None, 1]),
                    -cam[:, None, 0] * (pts[..., 1] + cam[:, None, 2]),
                    -cam[:, None, 0] * pts[..., 2]], -1)
    np.testing.assert_allclose(npcam.weak_perspective(pts, cam), ref, rtol=1e-14, atol=1e-15)


def test_runtime_camera_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, emoca_edge.camera as c, numpy as np; "
            "c.project_to_pixels(np.zeros((1,1,3)), np.ones((1,3))); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
