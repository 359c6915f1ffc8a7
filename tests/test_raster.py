"""The native CPU rasterizer against a slow NumPy reference written here.

The reference follows the documented contract literally, one triangle at a time, in triangle order:
  * snap x, y to 1/256 pixel with round-half-to-even (np.rint), relative to the buffer origin;
    a triangle is skipped when a coordinate is non-finite, a snapped coordinate is beyond
    +-2**29 grid units (2**21 px) or its snapped area is zero;
  * a sample (j + 0.5, i + 0.5) is covered when every edge function, oriented so the interior is
    positive, is > 0, or == 0 on a top-left edge (left: dy < 0, top: dy == 0 and dx > 0, y down);
  * weights w_k = E_k * (1 / area) in float64; depth = float32((E0*zs0 + E1*zs1) + E2*zs2) + 0
    with zs_k = z_k * (1 / area);
    the nearest depth wins, ties keep the earlier triangle.
Because the arithmetic is specified operation by operation, triangle ids must match exactly and
depth / barycentrics must match to float32 rounding.
"""
import numpy as np
import pytest

from emoca_edge.render import RenderTarget, rasterize, rasterize_region
from emoca_edge.render.raster import _raster

SUB = 256
GUARD = 2 ** 29


def reference_rasterize(vertices, faces, height, width, cull="none", origin=(0, 0)):
    """Slow, obviously-correct rasterizer (see the module docstring for the exact rules)."""
    v = np.asarray(vertices, np.float32).astype(np.float64)
    tri_id = np.full((height, width), -1, np.int32)
    depth = np.full((height, width), np.inf, np.float32)
    bary = np.zeros((height, width, 3), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(v).all(axis=1) & (np.abs(v[:, :2] * SUB) <= 2.0 ** 40).all(axis=1)
        snapped = np.where(finite[:, None], np.rint(v[:, :2] * SUB), 0).astype(np.int64)
    snapped -= np.array(origin, np.int64) * SUB
    usable = finite & (np.abs(snapped) <= GUARD).all(axis=1)
    for t, (a, b, c) in enumerate(np.asarray(faces)):
        if not (usable[a] and usable[b] and usable[c]):
            continue
        P = [tuple(int(q) for q in snapped[k]) for k in (a, b, c)]
        z = [np.float64(np.float32(v[k, 2])) for k in (a, b, c)]
        (x0, y0), (x1, y1), (x2, y2) = P
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if area == 0 or (cull == "back" and area > 0) or (cull == "front" and area < 0):
            continue
        sign = 1 if area > 0 else -1
        xs, ys = [p[0] for p in P], [p[1] for p in P]
        # Pixels whose sample (j*256 + 128) lies within the box.
        j_lo = max(0, _ceil_div(min(xs) - 128, SUB))
        j_hi = min(width - 1, (max(xs) - 128) // SUB)
        i_lo = max(0, _ceil_div(min(ys) - 128, SUB))
        i_hi = min(height - 1, (max(ys) - 128) // SUB)
        if j_lo > j_hi or i_lo > i_hi:
            continue
        jj, ii = np.meshgrid(np.arange(j_lo, j_hi + 1), np.arange(i_lo, i_hi + 1))
        px, py = jj.astype(np.int64) * SUB + 128, ii.astype(np.int64) * SUB + 128
        inside = np.ones(jj.shape, bool)
        E = []
        for k in range(3):  # edge k runs from vertex k+1 to vertex k+2; E_k is the weight of vertex k
            (ax, ay), (bx, by) = P[(k + 1) % 3], P[(k + 2) % 3]
            dx, dy = sign * (bx - ax), sign * (by - ay)
            e = dx * (py - ay) - dy * (px - ax)
            top_left = dy < 0 or (dy == 0 and dx > 0)
            inside &= (e > 0) | ((e == 0) & top_left)
            E.append(e)
        inv = 1.0 / float(sign * area)
        w = [e.astype(np.float64) * inv for e in E]
        zs = [zk * inv for zk in z]
        d = ((E[0] * zs[0] + E[1] * zs[1]) + E[2] * zs[2]).astype(np.float32) + np.float32(0)
        sub = (slice(i_lo, i_hi + 1), slice(j_lo, j_hi + 1))
        win = inside & (d < depth[sub])
        depth[sub][win] = d[win]
        tri_id[sub][win] = t
        for k in range(3):
            bary[sub + (k,)][win] = w[k][win].astype(np.float32)
    return tri_id, depth, bary


def _ceil_div(a, b):
    return -((-a) // b)


def assert_same(native, ref):
    """Exact triangle ids; depth and barycentrics equal up to float32 rounding (both sides compute
    the same float64 expressions and round once to float32, so 1e-6 relative is generous)."""
    t, d, b = native
    rt, rd, rb = ref
    np.testing.assert_array_equal(t, rt)
    np.testing.assert_allclose(d, rd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b, rb, rtol=0, atol=1e-6)


def random_mesh(rng, n_vertices, n_faces, height, width, margin=20.0):
    v = np.empty((n_vertices, 3), np.float32)
    v[:, 0] = rng.uniform(-margin, width + margin, n_vertices)
    v[:, 1] = rng.uniform(-margin, height + margin, n_vertices)
    v[:, 2] = rng.uniform(-1.0, 1.0, n_vertices)
    f = rng.integers(0, n_vertices, (n_faces, 3)).astype(np.int32)
    return v, f


def sphere_mesh(n_lat, n_lon, centre, radius, z_scale=1.0):
    """Closed UV sphere in pixel space, triangles counter-clockwise seen from outside in a
    y-up, z-towards-viewer frame (so counter-clockwise on screen when front-facing)."""
    lat = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack(np.meshgrid(lat, lon, indexing="ij"), -1).reshape(-1, 2)
    # viewer frame: x right, y up, z towards the viewer
    xyz = np.stack([np.sin(ring[:, 0]) * np.cos(ring[:, 1]), np.cos(ring[:, 0]),
                    np.sin(ring[:, 0]) * np.sin(ring[:, 1])], -1)
    xyz = np.concatenate([[[0, 1, 0]], xyz, [[0, -1, 0]]])
    n = len(xyz)
    faces = []
    idx = lambda r, c: 1 + r * n_lon + (c % n_lon)
    for c in range(n_lon):
        faces.append([0, idx(0, c + 1), idx(0, c)])
        faces.append([n - 1, idx(n_lat - 2, c), idx(n_lat - 2, c + 1)])
    for r in range(n_lat - 2):
        for c in range(n_lon):
            faces.append([idx(r, c), idx(r, c + 1), idx(r + 1, c)])
            faces.append([idx(r, c + 1), idx(r + 1, c + 1), idx(r + 1, c)])
    faces = np.array(faces, np.int32)
    # orient every triangle counter-clockwise seen from outside
    a, b, c = xyz[faces[:, 0]], xyz[faces[:, 1]], xyz[faces[:, 2]]
    flip = (np.cross(b - a, c - a) * (a + b + c)).sum(1) < 0
    faces[flip] = faces[flip][:, ::-1]
    # pixel space: x right, y down, z = depth (smaller = nearer)
    px = np.stack([centre[0] + radius * xyz[:, 0], centre[1] - radius * xyz[:, 1],
                   -radius * z_scale * xyz[:, 2]], -1).astype(np.float32)
    return px, faces


@pytest.fixture(scope="module")
def flame_sized():
    """A closed mesh of FLAME's size class (~5k vertices, ~10k triangles) filling most of 224x224,
    with a bumpy surface so that some triangles overlap in screen space."""
    v, f = sphere_mesh(72, 70, (112.0, 112.0), 90.0)
    rng = np.random.default_rng(7)
    v = v + rng.normal(0, 0.4, v.shape).astype(np.float32)
    return v, f


@pytest.mark.parametrize("seed", range(4))
def test_random_meshes_match_reference(seed):
    rng = np.random.default_rng(seed)
    h, w = 48 + seed * 7, 64 - seed * 5
    v, f = random_mesh(rng, 60, 120, h, w)
    assert_same(rasterize(v, f, h, w), reference_rasterize(v, f, h, w))


def test_flame_sized_mesh_matches_reference(flame_sized):
    v, f = flame_sized
    assert 4900 < len(v) < 5200 and 9500 < len(f) < 10500
    native = rasterize(v, f, 224, 224)
    assert_same(native, reference_rasterize(v, f, 224, 224))
    assert (native[0] >= 0).sum() > 0.4 * 224 * 224


@pytest.mark.parametrize("cull", ["back", "front"])
def test_culling_matches_reference(cull, flame_sized):
    v, f = flame_sized
    native = rasterize(v, f, 224, 224, cull=cull)
    assert_same(native, reference_rasterize(v, f, 224, 224, cull=cull))
    # front faces are counter-clockwise on screen: pixel-space signed area < 0
    ids = np.unique(native[0][native[0] >= 0])
    a, b, c = (v[f[ids, k], :2].astype(np.float64) for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert (area < 0).all() if cull == "back" else (area > 0).all()


def test_threads_do_not_change_results(flame_sized):
    v, f = flame_sized
    results = [rasterize(v, f, 224, 224, threads=n) for n in (1, 2, 3, 0)]
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


def test_barycentrics_reproduce_sample_and_depth(flame_sized):
    v, f = flame_sized
    t, d, b = rasterize(v, f, 224, 224)
    ii, jj = np.nonzero(t >= 0)
    corners = v[f[t[ii, jj]]].astype(np.float64)  # (N, 3 vertices, 3)
    w = b[ii, jj].astype(np.float64)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)  # float32 rounding of three weights
    assert (w >= 0).all()
    xy = (w[:, :, None] * corners[:, :, :2]).sum(1)
    # snapping moves each vertex by <= 1/512 px per axis; a convex combination moves by no more;
    # plus float32 weights (~6e-8 relative) times coordinates <= 224 px
    np.testing.assert_allclose(xy, np.stack([jj + 0.5, ii + 0.5], -1), rtol=0, atol=1 / 512 + 1e-4)
    np.testing.assert_allclose(d[ii, jj], (w * corners[:, :, 2]).sum(1), rtol=0, atol=1e-5)
    assert np.isinf(d[t < 0]).all() and (b[t < 0] == 0).all()


def tessellated_square(rng, lo, hi, n, jitter):
    """An n x n grid of quads over [lo, hi]^2 split into triangles with random diagonals; interior
    vertices jittered, boundary vertices kept on the square's border."""
    g = np.linspace(lo, hi, n + 1)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel(), rng.uniform(0, 1, xx.size)], -1)
    interior = (xx.ravel() > lo) & (xx.ravel() < hi) & (yy.ravel() > lo) & (yy.ravel() < hi)
    pts[interior, :2] += rng.uniform(-jitter, jitter, (interior.sum(), 2))
    faces = []
    for r in range(n):
        for c in range(n):
            a, b, cc, d = r * (n + 1) + c, r * (n + 1) + c + 1, (r + 1) * (n + 1) + c, (r + 1) * (n + 1) + c + 1
            if rng.random() < 0.5:
                faces += [[a, b, d], [a, d, cc]]
            else:
                faces += [[a, b, cc], [b, d, cc]]
    faces = np.array(faces, np.int32)
    flip = rng.random(len(faces)) < 0.5  # mixed orientations must not matter
    faces[flip] = faces[flip][:, ::-1]
    return pts.astype(np.float32), faces


@pytest.mark.parametrize("case", ["pixel_centres", "jittered", "integer_grid"])
def test_watertight_square_covers_each_pixel_once(case):
    rng = np.random.default_rng(3)
    if case == "pixel_centres":  # every vertex exactly on a sample point: worst case for ties
        v, f = tessellated_square(rng, 8.5, 56.5, 12, 0.0)
        v[:, :2] = np.round(v[:, :2] - 0.5) + 0.5
    elif case == "jittered":
        v, f = tessellated_square(rng, 8.0, 56.0, 12, 0.6)  # small enough that no triangle folds over
    else:  # vertices on pixel corners: the diagonals run through sample points
        v, f = tessellated_square(rng, 8.0, 56.0, 16, 0.0)
    h = w = 64
    count = np.zeros((h, w), np.int32)
    for k in range(len(f)):
        t, _, _ = rasterize(v, f[k:k + 1], h, w)
        count += t >= 0
    lo, hi = v[:, :2].min(), v[:, :2].max()
    centres = np.arange(w) + 0.5
    strictly_inside = (centres > lo) & (centres < hi)
    # samples on the square's own border belong to it only on its top/left sides
    on_tl = centres == lo
    rows = strictly_inside | on_tl
    expected = (rows[:, None] & rows[None, :]).astype(np.int32)
    np.testing.assert_array_equal(count, expected)
    t, _, _ = rasterize(v, f, h, w)
    np.testing.assert_array_equal(t >= 0, expected.astype(bool))


def test_snapping_makes_results_jitter_invariant(flame_sized):
    v, f = flame_sized
    v = v.copy()
    v[:, :2] = np.round(v[:, :2] * SUB) / SUB  # on the grid
    rng = np.random.default_rng(11)
    jittered = v.copy()
    jittered[:, :2] += rng.uniform(-1 / 1024, 1 / 1024, (len(v), 2)).astype(np.float32)  # < half a grid step
    a, b = rasterize(v, f, 224, 224), rasterize(jittered, f, 224, 224)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])


def test_adversarial_geometry_matches_reference():
    h, w = 40, 48
    nan, inf = np.nan, np.inf
    v = np.array([
        [5, 5, 0.5], [30, 5, 0.5], [5, 30, 0.5],            # 0-2 ordinary triangle
        [30, 5, 0.4], [30, 30, 0.4],                        # 3-4 shares edge 1-2 region
        [-1e5, -1e5, 0.9], [1e5, -1e5, 0.9], [0, 1e5, 0.9],  # 5-7 huge triangle covering everything
        [10, 10, 0.1], [40, 10.001, 0.1], [25, 10.0005, 0.1],  # 8-10 near-collinear sliver
        [0.2, 20.5, 0.0], [47.8, 20.5, 0.0], [47.8, 20.55, 0.0],  # 11-13 sliver along a sample row
        [nan, 3, 0.0], [20, 20, 0.0], [25, 25, 0.0],        # 14 NaN vertex
        [3, inf, 0.0], [20, 3, nan],                        # 17 inf, 18 NaN depth
        [1e8, 0, 0.2], [0, 1e8, 0.2],                       # 19-20 beyond the guard band
        [-500, -400, 0.3], [-450, -400, 0.3], [-450, -300, 0.3],  # 21-23 off-screen
        [12, 12, 0.05], [12, 12, 0.05], [20, 30, 0.05],     # 24-26 zero-area (repeated point)
        [2, 2, 0.3], [30, 30, 0.3], [16, 16, 0.3],          # 27-29 collinear
    ], np.float32)
    f = np.array([
        [0, 1, 2], [1, 3, 4], [1, 4, 2], [5, 6, 7], [8, 9, 10], [11, 12, 13], [14, 15, 16],
        [17, 15, 16], [18, 15, 16], [19, 20, 15], [21, 22, 23], [24, 25, 26], [27, 28, 29],
        [2, 2, 2], [0, 2, 1],
    ], np.int32)
    native = rasterize(v, f, h, w)
    assert_same(native, reference_rasterize(v, f, h, w))
    ids = set(np.unique(native[0]).tolist())
    assert 3 in ids and 5 in ids  # the huge triangle and the long sliver are drawn
    assert ids.isdisjoint({6, 7, 8, 9, 10, 11, 12, 13})  # invalid, off-screen, degenerate: skipped
    assert -1 not in ids  # the huge triangle covers every pixel


def test_huge_triangles_near_the_guard_band_match_reference():
    rng = np.random.default_rng(5)
    v = rng.uniform(-2.0e6, 2.0e6, (30, 3)).astype(np.float32)
    v[:, 2] = rng.uniform(0, 1, 30)
    f = rng.integers(0, 30, (40, 3)).astype(np.int32)
    assert_same(rasterize(v, f, 32, 40), reference_rasterize(v, f, 32, 40))


def test_roi_and_reused_target_match_full_render(flame_sized):
    v, f = flame_sized
    full = rasterize(v, f, 224, 224)
    target = RenderTarget(224, 224)
    for roi in [(30, 40, 150, 120), (100, 0, 224, 224), (0, 0, 10, 5), (60.2, 70.7, 80.1, 90.9)]:
        t, d, b = rasterize(v, f, 224, 224, roi=roi, out=target)
        assert t is target.tri_id
        x0, y0, x1, y1 = int(np.floor(roi[0])), int(np.floor(roi[1])), int(np.ceil(roi[2])), int(np.ceil(roi[3]))
        mask = np.zeros((224, 224), bool)
        mask[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(t, np.where(mask, full[0], -1))
        np.testing.assert_array_equal(d, np.where(mask, full[1], np.inf))
        np.testing.assert_array_equal(b, np.where(mask[..., None], full[2], 0))


def test_region_buffers_match_full_frame():
    rng = np.random.default_rng(9)
    v, f = random_mesh(rng, 200, 400, 300, 400)
    full = rasterize(v, f, 300, 400)
    rect = (123, 45, 301, 222)
    region = rasterize_region(v, f, rect)
    sl = (slice(rect[1], rect[3]), slice(rect[0], rect[2]))
    for a, b in zip(region, full):
        np.testing.assert_array_equal(a, b[sl])
    # and against the reference with the origin applied on the integer grid
    ref = reference_rasterize(v, f, rect[3] - rect[1], rect[2] - rect[0], origin=rect[:2])
    assert_same(region, ref)


def test_empty_inputs():
    t, d, b = rasterize(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), 5, 7)
    assert t.shape == (5, 7) and (t == -1).all() and np.isinf(d).all() and b.shape == (5, 7, 3)


def test_input_conversion_float64_and_int64():
    rng = np.random.default_rng(1)
    v, f = random_mesh(rng, 30, 50, 32, 32)
    a = rasterize(v.astype(np.float64), f.astype(np.int64), 32, 32)
    b = rasterize(v, f, 32, 32)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # non-contiguous views are fine too
    a = rasterize(np.asfortranarray(v), f[:, :], 32, 32)
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(vertices=np.zeros((4, 2), np.float32)), ValueError, r"vertices: expected shape \(V, 3\)"),
    (dict(vertices=np.zeros((4, 3), np.complex64)), TypeError, "vertices: expected a real floating"),
    (dict(vertices=np.array([["a"] * 3] * 4)), TypeError, "vertices"),
    (dict(faces=np.zeros((2, 3), np.float32)), TypeError, "faces: expected an integer"),
    (dict(faces=np.zeros((2, 4), np.int32)), ValueError, r"faces: expected shape \(F, 3\)"),
    (dict(faces=np.array([[0, 1, 4]], np.int32)), IndexError, "faces: index 4 in triangle 0 is out of range"),
    (dict(faces=np.array([[0, 1, 2], [0, -1, 2]], np.int64)), IndexError, "triangle 1"),
    (dict(faces=np.array([[0, 1, 2 ** 40]], np.int64)), IndexError, "out of range"),
    (dict(height=0), ValueError, "height must be within"),
    (dict(width=40000), ValueError, "width must be within"),
    (dict(height=10.5), TypeError, "height must be an integer"),
    (dict(cull="sideways"), ValueError, "cull: expected one of"),
    (dict(threads=-1), ValueError, "threads"),
    (dict(roi=(0, 0, 5)), ValueError, "roi"),
    (dict(roi=(0, 0, np.nan, 5)), ValueError, "roi"),
    (dict(device="tpu"), ValueError, "device"),
    (dict(out=RenderTarget(8, 8)), ValueError, "RenderTarget is 8x8"),
])
def test_invalid_input_raises_clear_errors(kwargs, err, match):
    args = dict(vertices=np.zeros((4, 3), np.float32), faces=np.array([[0, 1, 2]], np.int32), height=16, width=16)
    args.update(kwargs)
    extra = {k: args.pop(k) for k in list(args) if k not in ("vertices", "faces", "height", "width")}
    with pytest.raises(err, match=match):
        rasterize(args["vertices"], args["faces"], args["height"], args["width"], **extra)


def test_native_entry_point_validates_buffers():
    """The extension checks raw buffers itself (for callers that bypass the Python wrapper)."""
    v = np.zeros((3, 3), np.float32)
    f = np.array([[0, 1, 2]], np.int32)
    good = dict(tri_id=np.empty((4, 5), np.int32), depth=np.empty((4, 5), np.float32),
                bary=np.empty((4, 5, 3), np.float32))
    call = lambda **kw: _raster().rasterize_into(
        kw.get("v", v), kw.get("f", f), kw.get("tri_id", good["tri_id"]), kw.get("depth", good["depth"]),
        kw.get("bary", good["bary"]), *kw.get("rect", (0, 0, 5, 4)), 0, 0, kw.get("cull", 0), 1)
    call()
    with pytest.raises(ValueError, match="vertices: expected dtype float32"):
        call(v=v.astype(np.float64))
    with pytest.raises(ValueError, match="faces: expected dtype int32"):
        call(f=f.astype(np.int64))
    with pytest.raises(IndexError, match="out of range"):
        call(f=np.array([[0, 1, 3]], np.int32))
    with pytest.raises(ValueError, match="depth: expected shape"):
        call(depth=np.empty((4, 6), np.float32))
    with pytest.raises(ValueError, match="bary: expected shape"):
        call(bary=np.empty((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        call(tri_id=np.empty((5, 4), np.int32).T)
    ro = np.empty((4, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        call(depth=ro)
    with pytest.raises(ValueError, match="clip rectangle"):
        call(rect=(0, 0, 6, 4))
    with pytest.raises(ValueError, match="cull"):
        call(cull=7)


def test_depth_ties_between_orientations_go_to_the_lower_index():
    """Without culling the native code draws counter-clockwise (on screen) triangles before the
    clockwise ones; the result must still be the one of index order (ties keep the earlier
    triangle). Coincident squares at one constant depth: the clockwise pair comes first in index
    order, so it must win every sample; then the same with the pairs swapped."""
    sq = np.array([[10, 10, 5], [50, 10, 5], [50, 40, 5], [10, 40, 5]], np.float32)
    cw = [[0, 1, 2], [0, 2, 3]]  # clockwise on screen (y down): deferred to the second pass
    ccw = [[0, 2, 1], [0, 3, 2]]
    for faces, winners in ((cw + ccw, {0, 1}), (ccw + cw, {0, 1})):
        f = np.array(faces, np.int32)
        tri, depth, _ = rasterize(sq, f, 48, 64, threads=1)
        ref_tri, ref_depth, _ = reference_rasterize(sq, f, 48, 64)
        assert set(np.unique(tri[tri >= 0]).tolist()) == winners
        np.testing.assert_array_equal(tri, ref_tri)
        np.testing.assert_array_equal(depth, ref_depth)


@pytest.mark.parametrize("seed", range(2))
def test_random_soup_with_depth_ties_matches_reference(seed):
    """Overlapping triangles of both orientations on few depth levels (many exact ties), and
    triangles hidden behind others (the second pass's box occlusion test): exact ids and depths,
    bit-identical barycentrics."""
    rng = np.random.default_rng(100 + seed)
    n = 60
    v = rng.uniform(-4, 44, (n, 3)).astype(np.float32)
    v[:, 2] = np.round(rng.uniform(0, 3, n))  # depths 0..3: ties everywhere
    f = rng.integers(0, n, (150, 3)).astype(np.int32)
    for threads in (1, 2):
        tri, depth, bary = rasterize(v, f, 40, 40, threads=threads)
        ref_tri, ref_depth, ref_bary = reference_rasterize(v, f, 40, 40)
        np.testing.assert_array_equal(tri, ref_tri)
        np.testing.assert_array_equal(depth, ref_depth)
        np.testing.assert_array_equal(bary, ref_bary)


def small_triangle_soup(rng, n, size, extent, depth_levels):
    """n triangles whose vertices lie within `size` pixels of a random anchor in [0, extent)^2
    (boxes of at most size x size samples: the SIMD kernel's case), both orientations, depths on
    a few levels so that exact ties are common."""
    anchor = rng.uniform(0, extent, (n, 1, 2))
    xy = anchor + rng.uniform(0, size, (n, 3, 2))
    z = np.round(rng.uniform(0, depth_levels, (n, 3, 1)))
    v = np.concatenate([xy, z], -1).reshape(-1, 3).astype(np.float32)
    return v, np.arange(3 * n, dtype=np.int32).reshape(n, 3)


@pytest.mark.parametrize("seed, size", [(0, 7.5), (1, 7.5), (2, 20.0), (3, 33.0)])
def test_small_triangle_soup_with_ties_matches_reference(seed, size):
    """Many overlapping small triangles (drawn by the SIMD kernel where the CPU has one: one 8 x 8
    block for size 7.5, several for the larger ones), with exact depth ties between both
    orientations: ids, depths and barycentrics bit-identical."""
    rng = np.random.default_rng(300 + seed)
    v, f = small_triangle_soup(rng, 600, size, 40 - size / 4, 2)
    for cull in ("none", "back"):
        native = rasterize(v, f, 44, 44, cull=cull, threads=1)
        ref = reference_rasterize(v, f, 44, 44, cull=cull)
        for a, b in zip(native, ref):
            np.testing.assert_array_equal(a, b)


def test_long_slivers_clipped_to_small_boxes_match_reference():
    """Triangles reaching thousands of pixels outside the image whose clipped box is small: their
    edge values exceed the SIMD kernel's int32 range, so it must hand them to the scalar one."""
    rng = np.random.default_rng(11)
    tris = []
    for _ in range(40):
        corner = rng.uniform(-3, 6, 2)  # a vertex near the top-left corner
        far = rng.uniform(3000, 60000, 2) * rng.choice([-1, 1], 2)
        tris.append([[corner[0], corner[1], 0.5], [corner[0] + far[0], corner[1] + 5, 0.2],
                     [corner[0] + 4, corner[1] + far[1], 0.8]])
    v = np.array(tris, np.float32).reshape(-1, 3)
    f = np.arange(len(v), dtype=np.int32).reshape(-1, 3)
    for roi in (None, (0, 0, 6, 6)):
        native = rasterize(v, f, 24, 32, roi=roi)
        ref = reference_rasterize(v, f, 24, 32)
        if roi is not None:  # outside the region everything is empty
            ref = tuple(r.copy() for r in ref)
            keep = np.zeros((24, 32), bool)
            keep[0:6, 0:6] = True
            ref[0][~keep], ref[1][~keep], ref[2][~keep] = -1, np.inf, 0
        assert (native[0] >= 0).sum() > 0
        assert_same(native, ref)


@pytest.mark.parametrize("cull", ["none", "back", "front"])
@pytest.mark.parametrize("threads", [1, 3])
def test_grouped_triage_with_unusable_vertices_matches_reference(cull, threads):
    """Triangles are triaged in groups of eight where the CPU allows (usable vertices, box, area
    sign, culling) and one by one for the remainder: a face count that is not a multiple of 8,
    unusable vertices (NaN, inf, beyond the guard band) spread over the groups, boxes that miss
    the image or a band, and zero-area faces must all give the reference result."""
    rng = np.random.default_rng(11)
    h, w = 61, 83
    v, f = random_mesh(rng, 150, 803, h, w, margin=60.0)
    bad = rng.choice(150, 12, replace=False)
    v[bad[:4], 0] = np.nan
    v[bad[4:7], 1] = np.inf
    v[bad[7:9], 2] = -np.inf
    v[bad[9:], 1] = 3.0e6  # beyond the guard band
    f[::37, 2] = f[::37, 1]  # zero area
    native = rasterize(v, f, h, w, cull=cull, threads=threads)
    assert_same(native, reference_rasterize(v, f, h, w, cull=cull))
    assert (native[0] >= 0).any()


@pytest.mark.parametrize("rect", [(0, 0, 40, 36), (-17, 9, 30, 50), (1000, -2000, 1040, -1964)])
def test_vertex_snapping_ties_and_extremes_match_reference(rect):
    """Vertices are snapped eight at a time where the CPU allows, the rest one by one: coordinates
    exactly halfway between grid steps (round half to even), values beyond the int64 limit of the
    snap (|x| * 256 > 2^40), beyond the guard band, non-finite, and a depth above 3e38 must give the
    reference result for a buffer at any integer origin; the scalar path must agree bit for bit."""
    x0, y0, x1, y1 = rect
    h, w = y1 - y0, x1 - x0
    rng = np.random.default_rng(12)
    n = 203
    v = np.empty((n, 3), np.float32)
    # halfway points k/256 + 1/512 around the buffer, so ties to even decide coverage
    v[:, 0] = x0 + (rng.integers(-256, 256 * (w + 1), n) + 0.5) / 256
    v[:, 1] = y0 + (rng.integers(-256, 256 * (h + 1), n) + 0.5) / 256
    v[:, 2] = rng.uniform(-1, 1, n)
    v[5, 0], v[17, 1], v[30, 0], v[41, 1] = 4.4e9, -1e20, 3.0e6 + x0, np.nan
    v[52, 2], v[63, 2], v[77, 0] = 3.1e38, -np.inf, np.inf
    f = rng.integers(0, n, (611, 3)).astype(np.int32)
    native = rasterize_region(v, f, rect, threads=1)
    assert_same(native, reference_rasterize(v, f, h, w, origin=(x0, y0)))
    assert (native[0] >= 0).any()
    previous = _raster()._set_simd(False)
    try:
        scalar = rasterize_region(v, f, rect, threads=1)
    finally:
        _raster()._set_simd(previous)
    for a, b in zip(native, scalar):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cull", ["none", "back"])
def test_scalar_and_simd_kernels_agree(cull, flame_sized):
    """The portable scalar kernel (the only one on ARM) and the SIMD kernel give identical
    buffers; where the CPU has no SIMD kernel both runs use the scalar one."""
    v, f = flame_sized
    soup_v, soup_f = small_triangle_soup(np.random.default_rng(9), 3000, 6.0, 218, 3)
    big_v, big_f = small_triangle_soup(np.random.default_rng(10), 400, 40.0, 190, 3)
    for verts, faces in ((v, f), (soup_v, soup_f), (big_v, big_f)):
        simd = rasterize(verts, faces, 224, 224, cull=cull, threads=1)
        previous = _raster()._set_simd(False)
        try:
            scalar = rasterize(verts, faces, 224, 224, cull=cull, threads=1)
        finally:
            _raster()._set_simd(previous)
        for a, b in zip(simd, scalar):
            np.testing.assert_array_equal(a, b)


def _composite_preview_reference(frame, x0, y0, tri, bary, faces, normals, albedo, lights, intensity, alpha):
    """The compositor's preview formula in float32, operation by operation (NumPy rounds each
    float32 operation like the C++ code built without fused multiply-add):
    n = (b0*n_f0 + b1*n_f1) + b2*n_f2, s = (sum_l clamp01((nx*lx + ny*ly) + nz*lz)) * (intensity / L),
    frame = uint8(min((src * (1 - alpha) + clamp01(albedo * s) * (alpha * 255)) + 0.5, 255))."""
    f32 = np.float32
    out = frame.copy()
    h, w = tri.shape
    clamp01 = lambda x: np.where(x > 0, np.where(x < 1, x, f32(1)), f32(0)).astype(f32)
    scale = f32(intensity) / f32(len(lights))
    a255, keep = f32(alpha) * f32(255), f32(1) - f32(alpha)
    for i in range(h):
        for j in range(w):
            fy, fx = y0 + i, x0 + j
            t = tri[i, j]
            if t < 0 or not (0 <= fy < frame.shape[0] and 0 <= fx < frame.shape[1]):
                continue
            b = bary[i, j]
            nv = normals[faces[t]]
            n = (b[0] * nv[0] + b[1] * nv[1]) + b[2] * nv[2]
            s = f32(0)
            for l in lights:
                s = f32(s + clamp01((n[0] * l[0] + n[1] * l[1]) + n[2] * l[2]))
            s = f32(s * scale)
            col = clamp01(albedo * s) * a255
            v = (frame[fy, fx].astype(f32) * keep + col) + f32(0.5)
            out[fy, fx] = np.where(v >= 255, f32(255), v).astype(np.uint8)
    return out


@pytest.mark.parametrize("x0, y0", [(3, 2), (-5, -3), (20, 9)])
def test_composite_preview_matches_float32_reference_exactly(x0, y0):
    """Fully covered 8-pixel runs (blended in vector registers on AVX2 machines), partly covered
    runs, NaN weights, pixels outside the frame: every frame byte equals the float32 reference."""
    rng = np.random.default_rng(5 + x0)
    h, w = 9, 21
    faces = rng.integers(0, 30, (40, 3)).astype(np.int32)
    normals = rng.normal(size=(30, 3)).astype(np.float32)
    tri = rng.integers(0, 40, (h, w)).astype(np.int32)
    tri[rng.random((h, w)) < 0.15] = -1
    tri[2, :] = rng.integers(0, 40, w)  # a fully covered row
    bary = rng.uniform(-0.1, 1.1, (h, w, 3)).astype(np.float32)
    bary[4, 3] = np.nan
    albedo = np.array([0.9, 0.6, 0.3], np.float32)
    lights = rng.normal(size=(5, 3)).astype(np.float32)
    frame = rng.integers(0, 256, (16, 30, 3), dtype=np.uint8)
    out = frame.copy()
    _raster().composite_into(out, x0, y0, tri, bary, faces, normals, 0, albedo, 0, lights, 1.3, 0.6, 1)
    ref = _composite_preview_reference(frame, x0, y0, tri, bary, faces, normals, albedo, lights, 1.3, 0.6)
    np.testing.assert_array_equal(out, ref)
