"""Crop math against an independent NumPy derivation of the official rule."""
import numpy as np
import pytest

from emoca_edge import crop


def _umeyama_similarity(src, dst):
    """Least-squares similarity (rotation, uniform scale, translation) src -> dst, float64 (3x3)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1
    r = u @ d @ vt
    var_s = (s0 ** 2).sum() / len(src)
    scale = np.trace(np.diag(sig) @ d) / var_s
    t = mu_d - scale * r @ mu_s
    m = np.eye(3)
    m[:2, :2] = scale * r
    m[:2, 2] = t
    return m


def _official_index_transform(points_idx, f1, f2, size=224):
    """The official crop rule in pixel-INDEX coordinates (as DECA/SMIRK write it):
    box -> old size * f1 -> int(old * f2) -> three square corners to [0, size-1]."""
    left, right = points_idx[:, 0].min(), points_idx[:, 0].max()
    top, bottom = points_idx[:, 1].min(), points_idx[:, 1].max()
    old = (right - left + bottom - top) / 2 * f1
    c = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    s = int(old * f2)
    src = np.array([[c[0] - s / 2, c[1] - s / 2], [c[0] - s / 2, c[1] + s / 2], [c[0] + s / 2, c[1] - s / 2]])
    dst = np.array([[0, 0], [0, size - 1], [size - 1, 0]], np.float64)
    return _umeyama_similarity(src, dst)


def _edge_to_index(m_edge):
    """Edge-coordinate affine (2x3) -> index-coordinate 3x3: u_i = u - 0.5, x = x_i + 0.5."""
    m = np.eye(3)
    m[:2] = m_edge
    sh = np.eye(3)
    sh[:2, 2] = 0.5
    return np.linalg.inv(sh) @ m @ sh


@pytest.fixture(scope="module")
def face_points():
    rng = np.random.default_rng(3)
    pts = rng.uniform([300, 200, -20], [520, 470, 20], size=(478, 3))
    return pts


@pytest.mark.parametrize("convention,f1,f2,subset", [
    ("smirk478", 1.0, 1.4, None),
    ("deca68", 1.1, 1.25, crop.MP_DECA68_EXTENT),
])
def test_transform_matches_official_rule(face_points, convention, f1, f2, subset):
    t = crop.crop_transform(face_points, convention)
    sel = face_points if subset is None else face_points[subset]
    # our points are edge coordinates; the official rule works on the same numbers read as indices
    # (pixel centres), so convert: index = edge - 0.5
    ref = _official_index_transform(sel[:, :2] - 0.5, f1, f2)
    ours = _edge_to_index(t.matrix)
    # float64 both sides, 3-point least squares vs closed form: agreement to rounding (1e-9)
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    np.testing.assert_allclose(t.inverse @ np.r_[t.matrix, [[0, 0, 1]]], np.c_[np.eye(2), np.zeros(2)], atol=1e-12)


def test_deca68_with_68_points_uses_all():
    rng = np.random.default_rng(0)
    p68 = rng.uniform(100, 300, size=(68, 2))
    t = crop.crop_transform(p68, "deca68")
    ref = _official_index_transform(p68 - 0.5, 1.1, 1.25)
    np.testing.assert_allclose(_edge_to_index(t.matrix), ref, atol=1e-9)


def test_round_trip_and_depth(face_points):
    t = crop.crop_transform(face_points, "smirk478")
    c = crop.to_crop(face_points, t)
    back = crop.to_frame(c, t)
    # exact inverse in float64: 1e-9 px
    np.testing.assert_allclose(back, face_points, atol=1e-9)
    # depth scales like x/y: crop z = frame z * crop scale
    np.testing.assert_allclose(c[:, 2], face_points[:, 2] * t.scale, rtol=1e-12)


def test_warp_matches_numpy_bilinear():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    t = crop.square_transform(center=(61.3, 44.8), box_size=70.0, size=32)
    out = crop.warp(frame, t).astype(np.float64)
    # independent: for each crop pixel centre (edge coords j+0.5), map to frame edge coords,
    # sample bilinearly at index coords (x - 0.5), black outside
    jj, ii = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5)
    pts = np.stack([jj, ii], -1).reshape(-1, 2)
    src = pts @ t.inverse[:, :2].T + t.inverse[:, 2] - 0.5
    x0 = np.floor(src[:, 0]).astype(int)
    y0 = np.floor(src[:, 1]).astype(int)
    fx, fy = src[:, 0] - x0, src[:, 1] - y0
    pad = np.zeros((92, 122, 3))
    pad[1:-1, 1:-1] = frame

    def px(y, x):
        return pad[np.clip(y + 1, 0, 91), np.clip(x + 1, 0, 121)]

    ref = (px(y0, x0) * ((1 - fx) * (1 - fy))[:, None] + px(y0, x0 + 1) * (fx * (1 - fy))[:, None]
           + px(y0 + 1, x0) * ((1 - fx) * fy)[:, None] + px(y0 + 1, x0 + 1) * (fx * fy)[:, None])
    # OpenCV bilinear uses 5-bit fixed-point weights on uint8 (error <= ~255/32/2 + rounding)
    np.testing.assert_allclose(out.reshape(-1, 3), ref, atol=5.0)
    assert np.abs(out.reshape(-1, 3) - ref).mean() < 1.0


def test_subset_indices_valid():
    idx = crop.MP_DECA68_EXTENT
    assert len(set(idx.tolist())) == len(idx)
    assert idx.min() >= 0 and idx.max() < 468
    assert 152 in idx  # chin bottom


@pytest.mark.parametrize("bad,msg", [
    (np.zeros((10, 2)), "478"),
    (np.full((478, 2), np.nan), "NaN"),
    (np.ones((478, 2)), "no extent"),
])
def test_bad_points(bad, msg):
    with pytest.raises(ValueError, match=msg):
        crop.crop_transform(bad, "smirk478")


def test_unknown_convention():
    with pytest.raises(ValueError, match="convention"):
        crop.crop_transform(np.zeros((478, 2)), "bogus")
