"""Rasterizer and overlay speed (pytest-benchmark), with the peers measured in the same run.

Workloads
- ``224``: a FLAME-sized closed mesh (4972 vertices, 9940 triangles, a bumpy sphere filling ~50%
  of a 224x224 crop): rasterization only (triangle id, depth, barycentrics into a reused target).
- ``1080p overlay``: the same mesh as a ~400 px face in a 1920x1080 frame: transform, rasterize the
  face region only (overlay_mesh's default back-face culling), shade (grey shape preview, per
  pixel) and alpha-blend into the frame.
Ours: CPU single-thread (threads=1) and multi-thread (threads=0, automatic), CUDA when available
(device time of the kernels from CUDA events, transfers excluded).
Peers: pyrender (OpenGL through EGL with Mesa's llvmpipe software rasterizer, the renderer a user
would otherwise reach for; depth-only pass at 224, shaded render of the face region at 1080p, both
including the framebuffer read-back it needs), and a vectorised NumPy rasterizer (below).
Ratios peer / ours are printed and stored in ``extra_info`` of the peer benchmarks.
Targets (issue 3): 224 in <= 0.3 ms on one core; 1080p overlay <= 3 ms; GPU <= 50 us at 224.

What dominates (one core, 224, cull="back", ~0.18 ms in a standalone C++ harness; ablations):
the depth key, test and the winners' stores for the ~25.5k covered samples ~0.08 ms (~11 cycles
per sample including the mispredicted loop exit per triangle; double-precision depth and weights
kept for bit-identity with the CUDA path and the NumPy reference); triage of the 9940 triangles,
eight per AVX2 step (vertex records loaded and transposed, box, exact 64-bit signed area,
culling) plus clearing id and depth and zeroing the empty pixels' weights ~0.045 ms; coverage
masks (8-lane integer edge values, one 8 x 8 block per FLAME-sized triangle) and the
per-triangle preamble ~0.03 ms; edge set-up of the ~4.7k drawn triangles, eight at a time in
the lanes, ~0.01 ms; snapping the 4972 vertices (AVX2) ~0.01 ms. The Python wrapper adds ~5 us.
Without culling the hidden half adds ~30%: it is drawn last, each triangle skipped when its
whole box is already nearer (eight masked row loads), and the ~700 that are not (silhouette) are
set up in the lanes and tested against the stored depth before any sample is evaluated. At 1080p
the face region's pixels dominate: rasterizing the ~160k-pixel box (~0.95 ms; triangles up to
~18 x 9 px, covered in 8 x 8 blocks), then the compositor (~0.9 ms; per-pixel normal
interpolation from plain loads, five-light shading and blend eight pixels at a time).
Measured (pytest-benchmark min / median ms, 2-core AMD EPYC Zen 3, shared machine, 2026-11-22,
third session; second session's figures in brackets): 224 1 thread 0.252 / 0.261 (0.52 / 0.54)
without culling, 0.193 / 0.197 (0.40 / 0.42) with cull="back"; 224 2 threads 0.172 / 0.182
(0.34); 1080p face region raster 1 thread 0.95 / 0.98 (1.27 / 1.30); overlay 1 thread 2.04 /
2.09 (2.82 / 2.96), 2 threads 1.43 / 1.48 (1.95). Ratios peer / ours (medians, same run): NumPy
83x, pyrender 224 depth 16x, pyrender 1080p overlay 25x (one thread each). Gains this session:
triage and set-up eight triangles at a time, vertex records transposed in registers instead of
gathered (AVX2 gathers are slow on Zen 3; the compositor likewise), AVX2 snapping, the second
pass's records and branch-free occlusion test, and three costs outside the loops (glibc's
hardware_concurrency read sysfs on every call, 8 us; Python's -fwrapv, ~8%; a face-index scan the
compiler did not vectorise, ~8 us). Tried without gain: full 8-lane depth/weight evaluation with
blended stores (as slow as scalar: ~1.9 covered samples per row), 8-aligned chunks, per-tile
depth maxima for the second pass, a fixed four-row mask loop, an out-of-line large-box kernel in
the first pass.
Rounds are bounded so the file finishes well within a minute.
"""
import os

import numpy as np
import pytest

from emoca_edge.render import RenderTarget, cuda_available, overlay_mesh, rasterize
from emoca_edge.render.raster import _raster_cuda

RESULTS = {}  # name -> median seconds, for the ratios


def flame_sized_mesh(centre, radius, n_lat=72, n_lon=70, seed=7):
    """Closed bumpy UV sphere in pixel space (x right, y down, z depth), outward CCW triangles."""
    lat = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    xyz = np.stack([np.sin(la) * np.cos(lo), np.cos(la), np.sin(la) * np.sin(lo)], -1).reshape(-1, 3)
    xyz = np.concatenate([[[0, 1, 0]], xyz, [[0, -1, 0]]])
    n = len(xyz)
    idx = lambda r, c: 1 + r * n_lon + (c % n_lon)
    faces = [[0, idx(0, c + 1), idx(0, c)] for c in range(n_lon)]
    faces += [[n - 1, idx(n_lat - 2, c), idx(n_lat - 2, c + 1)] for c in range(n_lon)]
    for r in range(n_lat - 2):
        for c in range(n_lon):
            faces += [[idx(r, c), idx(r, c + 1), idx(r + 1, c)], [idx(r, c + 1), idx(r + 1, c + 1), idx(r + 1, c)]]
    faces = np.array(faces, np.int32)
    a, b, c = xyz[faces[:, 0]], xyz[faces[:, 1]], xyz[faces[:, 2]]
    flip = (np.cross(b - a, c - a) * (a + b + c)).sum(1) < 0
    faces[flip] = faces[flip][:, ::-1]
    xyz = xyz * (1 + np.random.default_rng(seed).normal(0, 0.004, (n, 1)))
    v = np.stack([centre[0] + radius * xyz[:, 0], centre[1] - radius * xyz[:, 1], -radius * xyz[:, 2]], -1)
    return v.astype(np.float32), faces


MESH_224 = flame_sized_mesh((112.0, 112.0), 90.0)
MESH_CROP = flame_sized_mesh((112.0, 112.0), 100.0)  # crop pixels; scaled x2 into the frame below
CROP_TO_FRAME = np.array([[2.0, 0.0, 740.0], [0.0, 2.0, 300.0]])  # face box ~400 px at (960, 524)
FRAME = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)


def _run(benchmark, name, fn, rounds):
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=2)
    if benchmark.stats is None:  # --benchmark-disable: the function ran once, nothing to record
        return
    RESULTS[name] = benchmark.stats.stats.median
    benchmark.extra_info["median_ms"] = round(RESULTS[name] * 1e3, 4)


def _ratio(benchmark, peer, ours_names):
    out = {}
    for ours in ours_names:
        if peer in RESULTS and ours in RESULTS:
            out[f"{peer}/{ours}"] = round(RESULTS[peer] / RESULTS[ours], 1)
    benchmark.extra_info.update(out)
    print("\nratios:", out)


# ------------------------------------------------------------------------------------- ours

def test_raster_224_single_thread(benchmark):
    v, f = MESH_224
    target = RenderTarget(224, 224)
    _run(benchmark, "ours_224_1t", lambda: rasterize(v, f, 224, 224, threads=1, out=target), 300)


def test_raster_224_single_thread_backface_culling(benchmark):
    v, f = MESH_224
    target = RenderTarget(224, 224)
    _run(benchmark, "ours_224_1t_cull", lambda: rasterize(v, f, 224, 224, threads=1, cull="back", out=target), 300)


def test_raster_224_multi_thread(benchmark):
    v, f = MESH_224
    target = RenderTarget(224, 224)
    _run(benchmark, "ours_224_mt", lambda: rasterize(v, f, 224, 224, threads=2, out=target), 300)


def test_raster_1080p_face_region(benchmark):
    v, f = MESH_CROP
    from emoca_edge.render import transform_vertices
    vf = transform_vertices(v, CROP_TO_FRAME)
    target = RenderTarget(1080, 1920)
    roi = (vf[:, 0].min(), vf[:, 1].min(), vf[:, 0].max() + 1, vf[:, 1].max() + 1)
    _run(benchmark, "ours_1080_raster_1t",
         lambda: rasterize(vf, f, 1080, 1920, roi=roi, threads=1, out=target), 60)


def test_overlay_1080p_single_thread(benchmark):
    v, f = MESH_CROP
    frame = FRAME.copy()
    _run(benchmark, "ours_overlay_1t", lambda: overlay_mesh(frame, v, f, CROP_TO_FRAME, out=frame, threads=1), 60)


def test_overlay_1080p_multi_thread(benchmark):
    v, f = MESH_CROP
    frame = FRAME.copy()
    _run(benchmark, "ours_overlay_mt", lambda: overlay_mesh(frame, v, f, CROP_TO_FRAME, out=frame, threads=0), 60)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU and the CUDA rasterizer")
def test_raster_224_cuda_kernel_time(benchmark):
    """Device time of snap + clear + visibility + resolve per frame (CUDA events, 200 repeats per
    round, transfers excluded); the wall-clock benchmark includes the transfers."""
    v, f = MESH_224
    t = RenderTarget(224, 224)
    mod = _raster_cuda()
    kernel_ms = [mod.rasterize_into(v, f, t.tri_id, t.depth, t.bary, 0, 0, 224, 224, 0, 0, 0, 200) for _ in range(5)]
    benchmark.extra_info["kernel_us"] = round(float(np.median(kernel_ms)) * 1e3, 2)
    benchmark.extra_info["device"] = mod.device_name()
    print(f"\nCUDA kernel time at 224: {benchmark.extra_info['kernel_us']} us ({mod.device_name()})")
    _run(benchmark, "ours_224_cuda_wall", lambda: rasterize(v, f, 224, 224, device="cuda", out=t), 200)


# ----------------------------------------------------------------------------- NumPy baseline

def numpy_rasterize(v, f, height, width):
    """Vectorised NumPy z-buffer: every (triangle, pixel of its box) pair at once, barycentrics
    in float64, then the nearest covered pair per pixel via lexsort. No fill rule (samples on a
    shared edge go to the nearer triangle)."""
    v = v.astype(np.float64)
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    xs = np.stack([p0[:, 0], p1[:, 0], p2[:, 0]], 1)
    ys = np.stack([p0[:, 1], p1[:, 1], p2[:, 1]], 1)
    j0 = np.clip(np.ceil(xs.min(1) - 0.5), 0, width).astype(np.int64)
    j1 = np.clip(np.floor(xs.max(1) - 0.5) + 1, 0, width).astype(np.int64)
    i0 = np.clip(np.ceil(ys.min(1) - 0.5), 0, height).astype(np.int64)
    i1 = np.clip(np.floor(ys.max(1) - 0.5) + 1, 0, height).astype(np.int64)
    bw, bh = np.maximum(j1 - j0, 0), np.maximum(i1 - i0, 0)
    ok = (area != 0) & (bw > 0) & (bh > 0)
    tri = np.nonzero(ok)[0]
    counts = bw[tri] * bh[tri]
    t = np.repeat(tri, counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    jj = j0[t] + k % bw[t]
    ii = i0[t] + k // bw[t]
    px, py = jj + 0.5, ii + 0.5
    a, b, c = p0[t], p1[t], p2[t]
    inv = 1.0 / area[t]
    w0 = ((b[:, 0] - px) * (c[:, 1] - py) - (b[:, 1] - py) * (c[:, 0] - px)) * inv
    w1 = ((c[:, 0] - px) * (a[:, 1] - py) - (c[:, 1] - py) * (a[:, 0] - px)) * inv
    w2 = 1.0 - w0 - w1
    inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    t, ii, jj, w0, w1, w2 = t[inside], ii[inside], jj[inside], w0[inside], w1[inside], w2[inside]
    z = w0 * a[inside, 2] + w1 * b[inside, 2] + w2 * c[inside, 2]
    pix = ii * width + jj
    order = np.lexsort((z, pix))
    first = np.ones(len(order), bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    sel = order[first]
    tri_id = np.full(height * width, -1, np.int32)
    depth = np.full(height * width, np.inf, np.float32)
    bary = np.zeros((height * width, 3), np.float32)
    tri_id[pix[sel]] = t[sel]
    depth[pix[sel]] = z[sel]
    bary[pix[sel]] = np.stack([w0[sel], w1[sel], w2[sel]], 1)
    return tri_id.reshape(height, width), depth.reshape(height, width), bary.reshape(height, width, 3)


def test_numpy_baseline_224(benchmark):
    v, f = MESH_224
    tri, _, _ = numpy_rasterize(v, f, 224, 224)
    ours, _, _ = rasterize(v, f, 224, 224)
    assert (tri == ours).mean() > 0.99  # same visibility except fill-rule ties on shared edges
    _run(benchmark, "numpy_224", lambda: numpy_rasterize(v, f, 224, 224), 10)
    _ratio(benchmark, "numpy_224", ["ours_224_1t", "ours_224_mt"])


# ---------------------------------------------------------------------------------- pyrender

def _pyrender():
    """pyrender with a headless EGL context (Mesa llvmpipe), or a skip with the reason."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        import pyrender
        import trimesh
    except Exception as exc:  # not installed: the [bench] extra is optional
        pytest.skip(f"pyrender not importable ({type(exc).__name__}: {exc}); install the [bench] extra")
    try:
        r = pyrender.OffscreenRenderer(8, 8)
        r.delete()
    except Exception as exc:
        pytest.skip(f"pyrender has no headless OpenGL context here ({type(exc).__name__}: {exc}); "
                    "needs apt packages libegl1 libegl-mesa0 libgl1-mesa-dri")
    return pyrender, trimesh


def _pyrender_scene(pyrender, trimesh, v, f, width, height, x0=0.0, y0=0.0):
    """Scene whose orthographic camera maps pixel space [x0, x0+width] x [y0, y0+height] to the
    viewport (OpenGL looks down -z with y up: flip y and z of our pixel-space vertices)."""
    gl = np.stack([v[:, 0] - x0 - width / 2, -(v[:, 1] - y0 - height / 2), -v[:, 2]], 1)
    mesh = pyrender.Mesh.from_trimesh(trimesh.Trimesh(gl, f, process=False), smooth=True)
    scene = pyrender.Scene(ambient_light=np.full(3, 0.3), bg_color=np.zeros(4))
    scene.add(mesh)
    cam = pyrender.OrthographicCamera(xmag=width / 2, ymag=height / 2, znear=0.1, zfar=4000.0)
    pose = np.eye(4)
    pose[2, 3] = 1000.0
    scene.add(cam, pose=pose)
    scene.add(pyrender.DirectionalLight(intensity=3.0), pose=pose)
    return scene


def test_pyrender_224_depth_only(benchmark):
    pyrender, trimesh = _pyrender()
    v, f = MESH_224
    scene = _pyrender_scene(pyrender, trimesh, v, f, 224, 224)
    r = pyrender.OffscreenRenderer(224, 224)
    try:
        depth = r.render(scene, flags=pyrender.RenderFlags.DEPTH_ONLY)
        ours, _, _ = rasterize(v, f, 224, 224)
        assert abs((depth > 0).mean() - (ours >= 0).mean()) < 0.01  # same silhouette
        _run(benchmark, "pyrender_224", lambda: r.render(scene, flags=pyrender.RenderFlags.DEPTH_ONLY), 30)
    finally:
        r.delete()
    _ratio(benchmark, "pyrender_224", ["ours_224_1t", "ours_224_mt"])


def test_pyrender_1080p_face_region_overlay(benchmark):
    """pyrender renders the face region (viewport = the face box, as our overlay does) with shading,
    reads it back, and the frame is blended with NumPy."""
    pyrender, trimesh = _pyrender()
    from emoca_edge.render import transform_vertices
    v, f = MESH_CROP
    vf = transform_vertices(v, CROP_TO_FRAME)
    x0, y0 = int(np.floor(vf[:, 0].min())), int(np.floor(vf[:, 1].min()))
    x1, y1 = int(np.ceil(vf[:, 0].max())) + 1, int(np.ceil(vf[:, 1].max())) + 1
    w, h = x1 - x0, y1 - y0
    scene = _pyrender_scene(pyrender, trimesh, vf, f, w, h, x0, y0)
    r = pyrender.OffscreenRenderer(w, h)
    frame = FRAME.copy()

    def overlay():
        color, depth = r.render(scene)
        region = frame[y0:y1, x0:x1]
        m = depth > 0
        region[m] = (region[m] * 0.4 + color[m] * 0.6 + 0.5).astype(np.uint8)

    try:
        _run(benchmark, "pyrender_overlay", overlay, 20)
    finally:
        r.delete()
    _ratio(benchmark, "pyrender_overlay", ["ours_overlay_1t", "ours_overlay_mt"])


def test_summary(benchmark):
    """Prints all medians and the target checks (informational; speed is not asserted)."""
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    lines = [f"  {k:24s} {v * 1e3:9.3f} ms" for k, v in RESULTS.items()]
    print("\nrender benchmark medians:\n" + "\n".join(lines))
    benchmark.extra_info.update({k: round(v * 1e3, 4) for k, v in RESULTS.items()})
