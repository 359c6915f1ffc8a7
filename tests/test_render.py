"""The rendering layer (normals, interpolation, SH / shape-preview shading, overlays, depth and
normal maps) against float64 NumPy references written here. Rasterization itself is checked in
tests/test_raster.py; these tests reuse its output and check everything computed from it."""
import math

import numpy as np
import pytest

from emoca_edge.render import (SH_CONSTANTS, depth_map, interpolate, normal_map, normal_map_to_rgb, overlay_mesh,
                               pixel_to_view, rasterize, render_sh, render_shape_preview, sample_texture, sh_basis,
                               shade_preview, shade_sh, transform_vertices, vertex_normals)

from test_raster import sphere_mesh


@pytest.fixture(scope="module")
def sphere():
    return sphere_mesh(40, 48, (112.0, 112.0), 90.0)


def ref_vertex_normals(v, f):
    v = v.astype(np.float64)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    acc = np.zeros_like(v)
    for k in range(3):
        np.add.at(acc, f[:, k], n)
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.where(length > 0, acc / np.where(length > 0, length, 1), 0)


def ref_interpolate(attr, f, tri, bary):
    attr = np.asarray(attr, np.float64)
    out = np.zeros(tri.shape + (attr.shape[1],))
    m = tri >= 0
    corners = attr[f[tri[m]]]  # (N, 3, C)
    out[m] = (bary[m].astype(np.float64)[:, :, None] * corners).sum(1)
    return out


def ref_sh_shading(n, light):
    """DECA's SH shading in float64, constants written out from official-formats.md."""
    n = np.asarray(n, np.float64)
    pi = math.pi
    c = [1 / math.sqrt(4 * pi)] + [(2 * pi / 3) * math.sqrt(3 / (4 * pi))] * 3 + \
        [(pi / 4) * 3 * math.sqrt(5 / (12 * pi))] * 3 + \
        [(pi / 4) * 1.5 * math.sqrt(5 / (12 * pi)), (pi / 4) * 0.5 * math.sqrt(5 / (4 * pi))]
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    basis = [np.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1]
    return sum(c[k] * basis[k][..., None] * np.asarray(light, np.float64)[k] for k in range(9))


def ref_preview_shading(n):
    n = np.asarray(n, np.float64)
    lights = np.array([[-1, 1, 1], [1, 1, 1], [-1, -1, 1], [1, -1, 1], [0, 0, 1]], np.float64)
    lights /= np.linalg.norm(lights, axis=1, keepdims=True)
    return 1.7 * np.clip(n @ lights.T, 0, 1).mean(-1)


def test_vertex_normals_match_reference(sphere):
    v, f = sphere
    np.testing.assert_allclose(vertex_normals(v, f), ref_vertex_normals(v, f), atol=1e-5)  # float32 output
    # outward on a sphere: pixel-space normals point away from the centre
    centre = np.array([112.0, 112.0, 0.0])
    assert ((vertex_normals(v, f) * (v - centre)).sum(1) > 0).all()


def test_vertex_normals_with_unused_and_degenerate():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [2, 2, 2]], np.float32)
    f = np.array([[0, 1, 2], [4, 4, 4]], np.int32)
    n = vertex_normals(v, f)
    np.testing.assert_allclose(n[:3], [[0, 0, 1]] * 3, atol=1e-7)
    np.testing.assert_array_equal(n[3:], 0)


def test_interpolate_matches_reference(sphere):
    v, f = sphere
    tri, _, bary = rasterize(v, f, 224, 224)
    attr = np.random.default_rng(0).normal(size=(len(v), 5)).astype(np.float32)
    # float32 products of values ~1: a few ulp
    np.testing.assert_allclose(interpolate(attr, f, tri, bary), ref_interpolate(attr, f, tri, bary), atol=1e-5)
    with pytest.raises(ValueError, match="bary: expected shape"):
        interpolate(attr, f, tri, bary[:, :10])
    with pytest.raises(IndexError, match="out of range"):
        interpolate(attr, f[:10], tri, bary)


def test_sh_constants_and_shading_match_reference():
    # Literature values of the same constants (Ramamoorthi & Hanrahan c1 = 0.429043, c5 = 0.247708).
    np.testing.assert_allclose(SH_CONSTANTS[[7, 8]], [0.429043, 0.247708], atol=1e-6)
    rng = np.random.default_rng(1)
    n = rng.normal(size=(100, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    light = rng.normal(size=(9, 3))
    albedo = rng.uniform(0, 1, (100, 3))
    ref = albedo * ref_sh_shading(n, light)
    np.testing.assert_allclose(shade_sh(n, albedo, light), ref, atol=1e-5)  # float32 arithmetic
    assert sh_basis(n).shape == (100, 9)
    with pytest.raises(ValueError, match=r"light: expected shape \(9, 3\)"):
        shade_sh(n, albedo, light[:4])
    np.testing.assert_allclose(shade_preview(n), ref_preview_shading(n), atol=1e-6)


def test_shape_preview_matches_reference(sphere):
    v, f = sphere
    img = render_shape_preview(v, f, 224, 224)
    tri, _, bary = rasterize(v, f, 224, 224)
    vn = ref_vertex_normals(v, f) * [1, -1, -1]  # pixel -> view space
    n = ref_interpolate(vn, f, tri, bary)
    ref = np.clip(180 / 255 * ref_preview_shading(n), 0, 1) * 255
    ref = np.where(tri >= 0, np.floor(ref + 0.5), 0)
    # float32 vs float64: values may round to the neighbouring integer
    assert np.abs(img.astype(int) - ref[..., None]).max() <= 1
    # the sphere's centre faces the viewer: brightest there, 180/255 * 1.7 * mean(clamp) of the lights
    centre_expected = 180 * 1.7 * (4 / math.sqrt(3) + 1) / 5
    assert abs(int(img[112, 112, 0]) - min(255, centre_expected)) <= 2


def test_render_sh_with_vertex_albedo_matches_reference(sphere):
    v, f = sphere
    rng = np.random.default_rng(2)
    light = np.zeros((9, 3))
    light[0] = 2.0
    light[1:4] = rng.normal(0, 0.3, (3, 3))
    light[4:] = rng.normal(0, 0.1, (5, 3))
    albedo = rng.uniform(0.2, 0.9, (len(v), 3))
    bg = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
    img = render_sh(v, f, 224, 224, light, albedo=albedo, background=bg)
    tri, _, bary = rasterize(v, f, 224, 224)
    n = ref_interpolate(ref_vertex_normals(v, f) * [1, -1, -1], f, tri, bary)
    a = ref_interpolate(albedo, f, tri, bary)
    ref = np.floor(np.clip(a * ref_sh_shading(n, light), 0, 1) * 255 + 0.5)
    m = tri >= 0
    assert np.abs(img[m].astype(int) - ref[m]).max() <= 1
    np.testing.assert_array_equal(img[~m], bg[~m])


def test_texture_on_a_screen_quad_reproduces_the_texture():
    """A quad over the whole image with UVs at its corners, lit so that shading = 1, shows the
    texture texel for texel (texel centres coincide with pixel centres)."""
    h, w = 24, 32
    tex = np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)
    v = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float32)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)  # v up: top of the image is v = 1
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    light = np.zeros((9, 3))
    light[0] = 1 / SH_CONSTANTS[0]
    img = render_sh(v, f, h, w, light, uv=uv, texture=tex)
    assert np.abs(img.astype(int) - tex).max() <= 1
    # separate UV indices (T != V) work the same
    img2 = render_sh(v, f, h, w, light, uv=uv[[3, 2, 1, 0]], uv_faces=np.array([[3, 2, 1], [3, 1, 0]]), texture=tex)
    np.testing.assert_array_equal(img, img2)


def test_sample_texture_bilinear():
    tex = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)  # rows 0: 0 1 2, row 1: 3 4 5
    # texel (r, c) centre at u = (c + .5) / 3, v = 1 - (r + .5) / 2
    uv = np.array([[0.5 / 3, 0.75], [2.5 / 3, 0.25], [1 / 3, 0.5], [-1, 2]], np.float32)
    np.testing.assert_allclose(sample_texture(tex, uv)[:, 0], [0, 5, (0 + 1 + 3 + 4) / 4, 0], atol=1e-6)


def test_depth_map_of_a_plane_is_analytic():
    # plane z = 0.01 x - 0.02 y + 3 through a two-triangle quad larger than the image
    a, b, c = 0.01, -0.02, 3.0
    xy = np.array([[-10, -10], [60, -10], [60, 50], [-10, 50]], np.float64)
    v = np.concatenate([xy, (a * xy[:, 0] + b * xy[:, 1] + c)[:, None]], 1).astype(np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    d = depth_map(v, f, 40, 50)
    jj, ii = np.meshgrid(np.arange(50) + 0.5, np.arange(40) + 0.5)
    # snapping moves vertices by <= 1/512 px: depth error <= (|a| + |b|) / 512, plus float32 rounding
    np.testing.assert_allclose(d, a * jj + b * ii + c, atol=(abs(a) + abs(b)) / 512 + 1e-5)
    d2 = depth_map(v, f[:1], 40, 50)
    assert np.isnan(d2).any() and not np.isnan(d2).all()


def test_normal_map_of_a_sphere_matches_the_analytic_normal(sphere):
    v, f = sphere
    n = normal_map(v, f, 224, 224)
    jj, ii = np.meshgrid(np.arange(224) + 0.5, np.arange(224) + 0.5)
    x, y = (jj - 112) / 90, -(ii - 112) / 90  # view space: y up
    inside = x ** 2 + y ** 2 < 0.8 ** 2  # away from the silhouette, where facets are steep
    analytic = np.stack([x, y, np.sqrt(np.clip(1 - x ** 2 - y ** 2, 0, None))], -1)
    # faceting of a 40 x 48 tessellation: interpolated vertex normals are within a few degrees
    assert np.abs(n[inside] - analytic[inside]).max() < 0.05
    np.testing.assert_allclose(np.linalg.norm(n[inside], axis=-1), 1, atol=1e-5)
    tri, _, _ = rasterize(v, f, 224, 224)
    assert (n[tri < 0] == 0).all()
    rgb = normal_map_to_rgb(n)
    assert rgb.dtype == np.uint8 and (rgb[tri < 0] == 0).all()
    assert abs(int(rgb[112, 112, 2]) - 255) <= 1  # facing the viewer: z = 1


def test_pixel_to_view_flips_y_and_z():
    np.testing.assert_array_equal(pixel_to_view([[1, 2, 3]]), [[1, -2, -3]])


def test_overlay_matches_full_frame_render_and_touches_only_the_face_box(sphere):
    v, f = sphere
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    s, tx, ty = 1.2, 130.5, 20.25
    crop_to_frame = np.array([[s, 0, tx], [0, s, ty]])
    alpha = 0.6
    out = overlay_mesh(frame, v, f, crop_to_frame, alpha=alpha)
    # reference: transform in float64, rasterize the whole frame, shade and blend in float64
    vf = v.astype(np.float64)
    vf = np.concatenate([vf[:, :2] * s + [tx, ty], vf[:, 2:] * s], 1)
    np.testing.assert_allclose(transform_vertices(v, crop_to_frame), vf, rtol=1e-6, atol=1e-4)
    vf32 = vf.astype(np.float32)
    tri, _, bary = rasterize(vf32, f, 300, 400)
    n = ref_interpolate(ref_vertex_normals(vf32, f) * [1, -1, -1], f, tri, bary)
    shaded = np.clip(180 / 255 * ref_preview_shading(n), 0, 1)[..., None] * 255
    ref = np.floor(frame * (1 - alpha) + shaded * alpha + 0.5)
    m = tri >= 0
    assert m.sum() > 10000
    assert np.abs(out[m].astype(int) - ref[m]).max() <= 1
    np.testing.assert_array_equal(out[~m], frame[~m])
    # back-face culling (the overlay's default) changes nothing on a closed outward-oriented mesh
    np.testing.assert_array_equal(overlay_mesh(frame, v, f, crop_to_frame, alpha=alpha, cull="none"), out)
    # nor does a mirrored transform (the culling side follows the mirror)
    mirror = np.array([[-s, 0, 400 - tx], [0, s, ty]])
    flipped = overlay_mesh(frame[:, ::-1].copy(), v, f, mirror, alpha=alpha)
    # (mirror image of the same picture, up to fill-rule ties on shared edges: wrong culling would
    # show the unlit back hemisphere instead)
    assert np.abs(flipped[:, ::-1].astype(int) - out).mean() < 0.5
    # the input frame is untouched unless passed as out
    assert not np.shares_memory(out, frame)
    same = frame.copy()
    assert overlay_mesh(same, v, f, crop_to_frame, alpha=alpha, out=same) is same
    np.testing.assert_array_equal(same, out)


def test_overlay_partly_outside_the_frame_and_sh_shading(sphere):
    v, f = sphere
    frame = np.full((120, 160, 3), 50, np.uint8)
    m = np.array([[1.0, 0, -100], [0, 1.0, -60]])  # the sphere hangs over the top-left corner
    light = np.zeros((9, 3))
    light[0] = 3.0
    out = overlay_mesh(frame, v, f, m, alpha=1.0, shading="sh", light=light, colors=np.array([0.5, 0.25, 1.0]))
    vf = transform_vertices(v, m)
    tri, _, bary = rasterize(vf, f, 120, 160)
    k = tri >= 0
    expected = np.floor(np.clip(np.array([0.5, 0.25, 1.0]) * 3.0 * SH_CONSTANTS[0], 0, 1) * 255 + 0.5)
    assert np.abs(out[k].astype(int) - expected).max() <= 1
    assert (out[~k] == 50).all()
    # entirely off-frame: nothing changes
    far = np.array([[1.0, 0, 5000], [0, 1.0, 5000]])
    np.testing.assert_array_equal(overlay_mesh(frame, v, f, far), frame)


def test_other_topologies_render():
    """Any triangle mesh: a cube (12 triangles) seen corner-on."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([[a, b, c] for a, b, c, d in quads] + [[a, c, d] for a, b, c, d in quads], np.int32)
    r = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    v = (corners @ r.T) * 20 + [32, 32, 0]
    img = render_shape_preview(v.astype(np.float32), f, 64, 64)
    tri, _, _ = rasterize(v.astype(np.float32), f, 64, 64)
    assert (tri >= 0).sum() > 1000 and (img[tri >= 0] > 0).any()


@pytest.mark.parametrize("call, err, match", [
    (lambda v, f: render_sh(v, f, 32, 32, np.zeros((3, 3))), ValueError, "light"),
    (lambda v, f: render_sh(v, f, 32, 32, np.zeros((9, 3)), albedo=np.zeros((2, 3))), ValueError, "albedo"),
    (lambda v, f: render_sh(v, f, 32, 32, np.zeros((9, 3)), texture=np.zeros((4, 4, 3))), ValueError, "uv"),
    (lambda v, f: render_shape_preview(v, f, 32, 32, background=np.zeros((32, 32, 3))), ValueError, "background"),
    (lambda v, f: overlay_mesh(np.zeros((32, 32, 3), np.float32), v, f, np.eye(2, 3)), ValueError, "frame"),
    (lambda v, f: overlay_mesh(np.zeros((32, 32, 3), np.uint8), v, f, np.eye(3)), ValueError, "crop_to_frame"),
    (lambda v, f: overlay_mesh(np.zeros((32, 32, 3), np.uint8), v, f, np.eye(2, 3), alpha=2), ValueError, "alpha"),
    (lambda v, f: overlay_mesh(np.zeros((32, 32, 3), np.uint8), v, f, np.eye(2, 3), shading="sh"), ValueError,
     "light"),
    (lambda v, f: normal_map(v, f, 32, 32, normals=np.zeros((2, 3))), ValueError, "normals"),
])
def test_render_errors(call, err, match):
    v = np.array([[1, 1, 0], [30, 2, 0], [4, 28, 0]], np.float32)
    f = np.array([[0, 1, 2]], np.int32)
    with pytest.raises(err, match=match):
        call(v, f)


def test_shape_preview_with_vertex_colours_matches_reference(sphere):
    v, f = sphere
    colors = np.random.default_rng(6).uniform(0, 1, (len(v), 3))
    img = render_shape_preview(v, f, 224, 224, colors=colors)
    tri, _, bary = rasterize(v, f, 224, 224)
    n = ref_interpolate(ref_vertex_normals(v, f) * [1, -1, -1], f, tri, bary)
    ref = np.floor(np.clip(ref_interpolate(colors, f, tri, bary) * ref_preview_shading(n)[..., None], 0, 1) * 255 + 0.5)
    m = tri >= 0
    assert np.abs(img[m].astype(int) - ref[m]).max() <= 1  # float32 vs float64 rounding
    assert (img[~m] == 0).all()
