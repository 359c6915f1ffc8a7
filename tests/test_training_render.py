"""Differentiable renderer: parity with the native renderer and gradients vs finite differences."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emoca_edge.render import rasterize as native_rasterize  # noqa: E402
from emoca_edge.render.shading import interpolate, pixel_to_view, shade_sh, vertex_normals as np_normals  # noqa: E402
from emoca_edge.training import render  # noqa: E402


def _mesh(seed=0, n=5, size=12.0):
    """A small fan of triangles around a centre vertex, in pixel space, with depth variation."""
    rng = np.random.default_rng(seed)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.35, 0.48, n) * size
    ring = np.stack([size / 2 + rad * np.cos(ang), size / 2 + rad * np.sin(ang), rng.uniform(-1, 1, n)], 1)
    verts = np.concatenate([[[size / 2 + 0.13, size / 2 - 0.21, -2.0]], ring])
    faces = np.array([[0, 1 + i, 1 + (i + 1) % n] for i in range(n)], np.int64)
    return verts, faces


def test_bary_and_interpolation_match_native():
    v, f = _mesh(1, 7, 24.0)
    tri, _, bary = native_rasterize(v.astype(np.float32), f.astype(np.int32), 24, 24)
    frags = render.rasterize(torch.from_numpy(v)[None], torch.from_numpy(f), 24, 24)
    got_tri = np.full(24 * 24, -1)
    got_tri[frags.pixel.numpy()] = frags.triangle.numpy()
    np.testing.assert_array_equal(got_tri.reshape(24, 24), tri)
    # The native weights come from vertices snapped to 1/256 px (each coordinate moves <= 1/512 px, a
    # vertex <= sqrt(2)/512 px); a weight is a distance to the opposite edge over the altitude, so it
    # moves by at most ~2 * sqrt(2)/512 / h_min of the triangle (h_min = its smallest altitude).
    p2 = v[:, :2][f]
    e1, e2 = p2[:, 1] - p2[:, 0], p2[:, 2] - p2[:, 0]
    area2 = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    longest = np.max([np.linalg.norm(p2[:, i] - p2[:, (i + 1) % 3], axis=1) for i in range(3)], axis=0)
    bound = 2 * np.sqrt(2) / 512 / (area2 / longest)   # per triangle
    ref = bary.reshape(-1, 3)[frags.pixel.numpy()]
    err = np.abs(frags.bary.detach().numpy() - ref).max(1)
    assert np.all(err <= bound[frags.triangle.numpy()] + 1e-6)
    attr = np.random.default_rng(2).normal(size=(v.shape[0], 4))
    img = frags.interpolate(torch.from_numpy(attr)[None], torch.from_numpy(f))[0].permute(1, 2, 0).numpy()
    ref_img = interpolate(attr, f, tri, bary)
    tol = np.zeros(24 * 24)
    tol[frags.pixel.numpy()] = 3 * bound[frags.triangle.numpy()] * np.abs(attr).max() + 1e-5
    assert np.all(np.abs(img - ref_img).max(-1).reshape(-1) <= tol)


def test_sh_shading_matches_runtime():
    v, f = _mesh(3, 8, 32.0)
    light = np.random.default_rng(4).normal(size=(9, 3)) * 0.3
    light[0] += 1.5
    img, mask, _ = render.render_sh(torch.from_numpy(v)[None], torch.from_numpy(f), torch.from_numpy(light)[None],
                                    0.6, 32, 32)
    tri, _, bary = native_rasterize(v.astype(np.float32), f.astype(np.int32), 32, 32)
    n = interpolate(pixel_to_view(np_normals(v, f)), f, tri, bary)
    ref = np.where((tri >= 0)[..., None], shade_sh(n, 0.6, light), 0.0)
    # float32 runtime vs float64 torch with the snapped-vs-exact weights above: |shading| <~ 3.
    np.testing.assert_allclose(img[0].permute(1, 2, 0).numpy(), ref, atol=1e-2)
    np.testing.assert_array_equal(mask[0, 0].numpy() > 0, tri >= 0)


def test_gradients_match_finite_differences():
    v, f = _mesh(5, 6, 12.0)
    faces = torch.from_numpy(f)
    rng = np.random.default_rng(6)
    weights = torch.from_numpy(rng.normal(size=(1, 3, 12, 12)))
    # 6 triangles on a 12x12 image: small enough for gradcheck's one-input-at-a-time differences
    verts = torch.from_numpy(v)[None].requires_grad_(True)
    light = torch.from_numpy(rng.normal(size=(1, 9, 3)) * 0.3 + np.eye(9, 3)[None] * 1.2).requires_grad_(True)
    colours = torch.from_numpy(rng.uniform(0.2, 0.9, size=(1, v.shape[0], 3))).requires_grad_(True)

    def fn(vv, ll, cc):
        img, _, _ = render.render_sh(vv, faces, ll, cc, 12, 12)
        return (img * weights).sum()

    # Visibility must not change under the finite-difference steps (else FD sees a coverage jump):
    base = native_rasterize(v.astype(np.float32), f.astype(np.int32), 12, 12)[0]
    for d in (-1e-4, 1e-4):
        np.testing.assert_array_equal(native_rasterize((v + d).astype(np.float32), f.astype(np.int32), 12, 12)[0],
                                      base)
    # float64 central differences with eps 1e-6: truncation O(eps^2) and round-off ~1e-10 / 1e-6.
    assert torch.autograd.gradcheck(fn, (verts, light, colours), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_uv_space_and_detail_normals():
    # A flat square patch in model space, UV = (x, y) normalised: the displacement z = a * u gives
    # detail normals tilted by atan(a * du/dx) around y, computable by hand.
    k = 9
    xs, ys = np.meshgrid(np.linspace(0, 0.1, k), np.linspace(0, 0.1, k))
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(k * k)], 1)
    faces = []
    for r in range(k - 1):
        for c in range(k - 1):
            a, b, d, e = r * k + c, r * k + c + 1, (r + 1) * k + c, (r + 1) * k + c + 1
            faces += [(a, b, e), (a, e, d)]
    faces = np.asarray(faces)
    uv = verts[:, :2] / 0.1
    space = render.UVSpace(uv, faces, faces, size=32)
    u_tex = (np.arange(32) + 0.5) / 32
    slope = 0.02
    uv_z = torch.from_numpy(np.broadcast_to(slope * u_tex[None, :], (32, 32)).copy())[None, None]
    dn, cn = render.detail_normals(space, torch.from_numpy(verts)[None], uv_z)
    inner = (slice(None), slice(None), slice(4, 28), slice(4, 28))
    np.testing.assert_allclose(cn[inner].numpy()[0, 2], 1.0, atol=1e-9)
    # dz/dx = slope / 0.1 (u spans 0.1 m); normal = (-dz/dx, 0, 1) / norm
    g = slope / 0.1
    expect = np.array([-g, 0.0, 1.0]) / np.sqrt(1 + g * g)
    got = dn[inner].numpy()[0].reshape(3, -1).mean(1)
    np.testing.assert_allclose(got, expect, atol=1e-6)


def test_load_obj_uv(tmp_path):
    p = tmp_path / "m.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0.1 0.2\nvt 0.9 0.2\nvt 0.1 0.8\nf 1/1 2/2 3/3\n")
    uv, uf = render.load_obj_uv(p)
    np.testing.assert_allclose(uv, [[0.1, 0.2], [0.9, 0.2], [0.1, 0.8]])
    np.testing.assert_array_equal(uf, [[0, 1, 2]])
    (tmp_path / "q.obj").write_text("v 0 0 0\nf 1 2 3 4\n")
    with pytest.raises(ValueError, match="only triangles"):
        render.load_obj_uv(tmp_path / "q.obj")


def test_albedo_model_sampled_in_uv():
    # Albedo model whose mean is a horizontal ramp in u and whose single basis map adds 0.1 * code:
    # the value sampled at each pixel must be ramp(u_pixel) + 0.1 * code (bilinear of a linear ramp is exact
    # away from the clamped border texels).
    v, f = _mesh(7, 6, 32.0)
    uv = (v[:, :2] / 32.0).copy()
    uv[:, 1] = 1.0 - uv[:, 1]  # v up
    space = render.UVSpace(uv, f, f, size=16)
    s = 16
    ramp = np.broadcast_to(((np.arange(s) + 0.5) / s)[None, :, None], (s, s, 3)) * 0.5
    model = render.AlbedoModel(ramp, np.ones((s, s, 3, 1)))
    alb_uv = model.uv_albedo(torch.tensor([[0.1]], dtype=torch.float64), 1).double()
    frags = render.rasterize(torch.from_numpy(v)[None], torch.from_numpy(f), 32, 32)
    got = space.sample(alb_uv, frags)[0, 0]
    u_pix = space.pixel_uv(frags)[0, 0]
    inner = (frags.mask()[0, 0] > 0) & (u_pix > 1.0 / s) & (u_pix < 1 - 1.0 / s)
    # float32 maps and grid sampling: 1e-5 absolute
    np.testing.assert_allclose(got[inner].numpy(), (0.5 * u_pix[inner] + 0.1).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="basis"):
        render.AlbedoModel(ramp, np.ones((s, s, 1)))
