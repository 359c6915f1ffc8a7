"""PyTorch FLAME vs an independent float64 NumPy FLAME written here, eyelids, ONNX export.

Tolerances: the module runs in float32 (eps 6e-8) on vertices of ~0.1 m built from ~150 blend
terms, a 5-joint chain and 5-way skinning; accumulated rounding stays below ~1e-7 m, so we
allow 2e-6 m absolute (2 micrometres, ~1e-5 of the head size) against the float64 reference.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emoca_edge.export.flame_assets import load_flame_dir  # noqa: E402
from emoca_edge.training.flame import FLAME, FlameOutput  # noqa: E402
from synthetic.flame_files import write_flame_dir  # noqa: E402  (tests/ is on sys.path)

ATOL_M = 2e-6


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    d = tmp_path_factory.mktemp("flame")
    write_flame_dir(d, seed=3, eyelids=True)
    return load_flame_dir(d, n_shape=100, n_exp=50, eyelids=True)


@pytest.fixture(scope="module")
def flame(arrays):
    return FLAME(arrays).eval()


# ---------------------------------------------------------------------------------------------
# Independent float64 reference (plain formulas and loops).

def ref_rodrigues(r):
    r = np.asarray(r, dtype=np.float64)
    theta = math.sqrt(sum((c + 1e-8) ** 2 for c in r))
    kx, ky, kz = r / theta
    k = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + math.sin(theta) * k + (1.0 - math.cos(theta)) * (k @ k)


def ref_contour_row(rot_root, rot_neck):
    rel = rot_root @ rot_neck
    yaw = math.degrees(math.atan2(-rel[2, 0], math.hypot(rel[0, 0], rel[1, 0])))
    y = int(np.round(min(yaw, 39.0)))  # numpy rounds half to even, like torch / ONNX
    if y >= 0:
        return y
    return 78 if y < -39 else 39 - y


def ref_landmark(verts, faces, face_idx, bary):
    tri = faces[face_idx]
    return sum(bary[k] * verts[tri[k]] for k in range(3))


def ref_flame(a, shape, expr, gpose, jaw, eyelids=None):
    """One sample, float64. Returns vertices (V,3), lmk2d (68,3), lmk3d (68,3), contour row."""
    f64 = {k: np.asarray(v, dtype=np.float64) for k, v in a.items()}
    parents = [int(p) for p in a["parents"]]
    faces = a["faces"].astype(np.int64)
    v = f64["v_template"].copy()
    for i, c in enumerate(shape):
        v += c * f64["shapedirs"][:, :, i]
    for i, c in enumerate(expr):
        v += c * f64["exprdirs"][:, :, i]
    joints = f64["J_regressor"] @ v
    poses = [gpose, np.zeros(3), jaw, np.zeros(3), np.zeros(3)]
    rots = [ref_rodrigues(p) for p in poses]
    feat = np.concatenate([(rots[j] - np.eye(3)).reshape(-1) for j in range(1, 5)])
    v_posed = v + np.tensordot(f64["posedirs"], feat, axes=([2], [0]))
    world = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if j > 0 else 0.0)
        world.append(local if j == 0 else world[parents[j]] @ local)
    skin = []
    for j in range(5):
        a_j = world[j].copy()
        a_j[:3, 3] -= world[j][:3, :3] @ joints[j]
        skin.append(a_j)
    # Per-vertex blended transform T_i = sum_j w_ij A_j applied to [v_i, 1].
    t = np.einsum("vj,jab->vab", f64["lbs_weights"], np.stack(skin))
    verts = np.einsum("vab,vb->va", t[:, :3, :3], v_posed) + t[:, :3, 3]
    if eyelids is not None:
        verts = verts + f64["r_eyelid"] * eyelids[1] + f64["l_eyelid"] * eyelids[0]
    row = ref_contour_row(rots[0], rots[1])
    lmk2d = [ref_landmark(verts, faces, a["dynamic_lmk_faces_idx"][row, k],
                          f64["dynamic_lmk_bary_coords"][row, k]) for k in range(17)]
    lmk2d += [ref_landmark(verts, faces, a["static_lmk_faces_idx"][k],
                           f64["static_lmk_bary_coords"][k]) for k in range(51)]
    lmk3d = [ref_landmark(verts, faces, a["full_lmk_faces_idx"][k], f64["full_lmk_bary_coords"][k])
             for k in range(68)]
    return verts, np.array(lmk2d), np.array(lmk3d), row


def _params(rng, n, gposes=None, with_eyelids=False):
    g = (rng.normal(size=(n, 3)) * 0.3) if gposes is None else np.asarray(gposes, np.float64)
    p = dict(shape=rng.normal(size=(n, 100)), expression=rng.normal(size=(n, 50)),
             global_pose=g, jaw_pose=rng.normal(size=(n, 3)) * 0.1)
    if with_eyelids:
        p["eyelids"] = rng.random((n, 2))
    return p


def _run(flame, p):
    with torch.no_grad():
        return flame(**{k: torch.tensor(v, dtype=torch.float32) for k, v in p.items()})


def _yaw_pose(deg):
    return [0.0, math.radians(deg), 0.0]


# ---------------------------------------------------------------------------------------------

def test_matches_float64_reference(arrays, flame):
    rng = np.random.default_rng(0)
    p = _params(rng, 3)
    p["global_pose"][2] = 0.0  # include the exact zero rotation (Rodrigues epsilon path)
    out = _run(flame, p)
    assert isinstance(out, FlameOutput)
    assert out.vertices.shape == (3, 5023, 3)
    assert out.landmarks2d_3d.shape == (3, 68, 3) and out.landmarks3d.shape == (3, 68, 3)
    for b in range(3):
        v, l2, l3, _ = ref_flame(arrays, p["shape"][b], p["expression"][b],
                                 p["global_pose"][b], p["jaw_pose"][b])
        np.testing.assert_allclose(out.vertices[b].numpy(), v, rtol=0, atol=ATOL_M)
        np.testing.assert_allclose(out.landmarks2d_3d[b].numpy(), l2, rtol=0, atol=ATOL_M)
        np.testing.assert_allclose(out.landmarks3d[b].numpy(), l3, rtol=0, atol=ATOL_M)


def test_zero_parameters_give_template(arrays, flame):
    """All-zero parameters: Rodrigues gives exact identities, so vertices = v_template."""
    p = {k: np.zeros((1, n)) for k, n in
         (("shape", 100), ("expression", 50), ("global_pose", 3), ("jaw_pose", 3))}
    out = _run(flame, p)
    np.testing.assert_allclose(out.vertices[0].numpy(), arrays["v_template"], rtol=0, atol=1e-7)


# Yaw (degrees, pure rotation about +y) -> hand-derived table row:
# y = round(min(yaw, 39)) half-to-even; y >= 0 -> y; -39 <= y < 0 -> 39 - y; y < -39 -> 78.
YAW_ROWS = [
    (0.0, 0), (10.3, 10), (10.7, 11), (10.49, 10), (10.51, 11), (12.5 - 0.01, 12),
    (12.5 + 0.01, 13), (25.0, 25), (38.6, 39), (39.4, 39), (45.0, 39), (80.0, 39),
    (-0.3, 0), (-0.7, 40), (-10.2, 49), (-10.51, 50), (-10.49, 49), (-38.6, 78),
    (-39.4, 78), (-39.6, 78), (-45.0, 78), (-80.0, 78),
]


@pytest.mark.parametrize("deg,row", YAW_ROWS)
def test_contour_row_for_yaw(flame, deg, row):
    """Hand-derived rows; also cross-checked against the float64 reference formula."""
    rot = torch.eye(3).repeat(1, 5, 1, 1)
    rot[0, 0] = torch.tensor(ref_rodrigues(_yaw_pose(deg)), dtype=torch.float32)
    assert int(flame.contour_rows(rot)[0]) == row
    assert ref_contour_row(ref_rodrigues(_yaw_pose(deg)), np.eye(3)) == row


def test_dynamic_contour_landmarks_across_yaws(arrays, flame):
    """Landmarks of a batch spanning positive, negative, clamped and rounding-boundary yaws,
    with some roll/pitch mixed in, against the reference (row selection included)."""
    degs = [d for d, _ in YAW_ROWS]
    rng = np.random.default_rng(1)
    gposes = [_yaw_pose(d) for d in degs]
    gposes += [[0.2, math.radians(-25.0), 0.1], [-0.1, math.radians(33.0), 0.3]]
    p = _params(rng, len(gposes), gposes=gposes)
    out = _run(flame, p)
    rows = set()
    for b in range(len(gposes)):
        _, l2, _, row = ref_flame(arrays, p["shape"][b], p["expression"][b],
                                  p["global_pose"][b], p["jaw_pose"][b])
        rows.add(row)
        np.testing.assert_allclose(out.landmarks2d_3d[b].numpy(), l2, rtol=0, atol=ATOL_M)
    assert len(rows) >= 12  # the batch really exercised many different table rows


def test_landmark_order_contour_first(arrays, flame):
    """landmarks2d_3d[:, :17] come from the dynamic table, [:, 17:] from the static one."""
    p = _params(np.random.default_rng(2), 1, gposes=[_yaw_pose(-20.0)])
    out = _run(flame, p)
    v = out.vertices[0].numpy().astype(np.float64)
    faces = arrays["faces"]
    row = 39 + 20
    first = ref_landmark(v, faces, arrays["dynamic_lmk_faces_idx"][row, 0],
                         arrays["dynamic_lmk_bary_coords"][row, 0])
    static0 = ref_landmark(v, faces, arrays["static_lmk_faces_idx"][0],
                           arrays["static_lmk_bary_coords"][0])
    np.testing.assert_allclose(out.landmarks2d_3d[0, 0].numpy(), first, atol=1e-6)
    np.testing.assert_allclose(out.landmarks2d_3d[0, 17].numpy(), static0, atol=1e-6)


def test_eyelids_added_after_skinning(arrays, flame):
    rng = np.random.default_rng(4)
    p = _params(rng, 2, with_eyelids=True)
    out = _run(flame, p)
    no_lid = _run(flame, {k: v for k, v in p.items() if k != "eyelids"})
    for b in range(2):
        v, l2, l3, _ = ref_flame(arrays, p["shape"][b], p["expression"][b],
                                 p["global_pose"][b], p["jaw_pose"][b], eyelids=p["eyelids"][b])
        np.testing.assert_allclose(out.vertices[b].numpy(), v, rtol=0, atol=ATOL_M)
        np.testing.assert_allclose(out.landmarks2d_3d[b].numpy(), l2, rtol=0, atol=ATOL_M)
        np.testing.assert_allclose(out.landmarks3d[b].numpy(), l3, rtol=0, atol=ATOL_M)
        # Not rotated by the head pose: a pure translation by the blendshapes.
        delta = (arrays["r_eyelid"].astype(np.float64) * p["eyelids"][b, 1]
                 + arrays["l_eyelid"].astype(np.float64) * p["eyelids"][b, 0])
        np.testing.assert_allclose((out.vertices[b] - no_lid.vertices[b]).numpy(), delta,
                                   rtol=0, atol=1e-7)


def test_eyelids_without_blendshapes_is_an_error(arrays):
    plain = FLAME({k: v for k, v in arrays.items() if k not in ("l_eyelid", "r_eyelid")})
    p = _params(np.random.default_rng(5), 1, with_eyelids=True)
    with pytest.raises(ValueError, match="eyelid"):
        _run(plain, p)


def test_wrong_parameter_count_is_an_error(flame):
    p = _params(np.random.default_rng(6), 1)
    p["shape"] = np.zeros((1, 300))
    with pytest.raises(ValueError, match="shape"):
        _run(flame, p)


def test_batch_rows_are_independent(flame):
    p = _params(np.random.default_rng(7), 4, with_eyelids=True)
    full = _run(flame, p)
    single = _run(flame, {k: v[2:3] for k, v in p.items()})
    for a, b in zip(full, single):
        np.testing.assert_allclose(a[2:3].numpy(), b.numpy(), rtol=0, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# ONNX export (opset 17, dynamic batch) -> onnxruntime parity.

INPUTS = ["shape", "expression", "global_pose", "jaw_pose", "eyelids"]
OUTPUTS = ["vertices", "landmarks2d_3d", "landmarks3d"]


def _export(flame, path, dynamo):
    ex = _params(np.random.default_rng(8), 2, with_eyelids=True)
    args = tuple(torch.tensor(ex[k], dtype=torch.float32) for k in INPUTS)
    if dynamo:
        batch = torch.export.Dim("batch")
        torch.onnx.export(flame, args, str(path), dynamo=True, opset_version=17,
                          input_names=INPUTS, output_names=OUTPUTS, external_data=False,
                          dynamic_shapes=tuple({0: batch} for _ in INPUTS))
    else:
        torch.onnx.export(flame, args, str(path), dynamo=False, opset_version=17,
                          input_names=INPUTS, output_names=OUTPUTS,
                          dynamic_axes={n: {0: "batch"} for n in INPUTS + OUTPUTS})


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["torchscript", "dynamo"])
def test_onnx_export_matches_torch(flame, tmp_path, dynamo):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "flame.onnx"
    _export(flame, path, dynamo)
    model = onnx.load(str(path))
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(9)
    # Batch sizes differ from the export example; yaws cover every branch of the row mapping.
    for degs in ([15.0], [d for d, _ in YAW_ROWS]):
        p = _params(rng, len(degs), gposes=[_yaw_pose(d) for d in degs], with_eyelids=True)
        p["jaw_pose"][0] = 0.0
        feeds = {k: p[k].astype(np.float32) for k in INPUTS}
        got = sess.run(OUTPUTS, feeds)
        want = _run(flame, p)
        for name, g, w in zip(OUTPUTS, got, want):
            w = w.numpy()
            assert g.shape == w.shape, name
            # Same float32 math, different kernels: relative error (to the output's max
            # magnitude) <= 1e-5; a wrong contour row would be off by ~1e-1 relative.
            rel = np.abs(g - w).max() / np.abs(w).max()
            assert rel <= 1e-5, (name, rel)
