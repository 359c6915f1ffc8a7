"""Parity of imported bundles (ONNX Runtime, CPU) with the PyTorch definitions, per family.

Synthetic files in the exact official formats (random weights, synthetic FLAME with the real
shapes and pickling; tests/synthetic) are imported with the real importers into bundles, once per
test process (tests/fixtures_bundles.py). Checks:

* every output of the bundle vs the PyTorch reconstruction module on random crops and real photo
  crops: relative error ||onnx - torch|| / ||torch|| <= 1e-4 per output (the issue's bound; float32
  kernels that differ only in summation order and conv/BN fusion land around 1e-6);
* the composition itself, against the importer's networks and float64 NumPy written here: which
  encoder each parameter comes from (EMOCA's E_expression replaces expression / jaw / global pose
  per cfg switch), the detail decoder's input, FLAME decode, the camera projection to crop pixels,
  the emotion regressor's inputs and log-softmax.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fixtures_bundles as fb
from emoca_edge.bundle import Bundle
from emoca_edge.reconstruct import Reconstructor

FAMILIES = ["deca", "emoca_coarse", "emoca_detail_jaw", "smirk", "emoca_coarse_emorec"]
TOL = 1e-4  # relative error bound of the issue (ONNX Runtime vs PyTorch, float32, CPU)

# E_flame code layout (official-formats.md), written out independently of split_deca_code.
SHAPE, TEX, EXP, GPOSE, JAW, CAM, LIGHT = (slice(0, 100), slice(100, 150), slice(150, 200), slice(200, 203),
                                           slice(203, 206), slice(206, 209), slice(209, 236))


def rel(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


_REC: dict = {}
_OUT: dict = {}


def rec(name) -> Reconstructor:
    if name not in _REC:
        _REC[name] = Reconstructor(fb.bundle(name))
    return _REC[name]


def inputs() -> dict:
    return {"random": fb.random_images(3, seed=7), "photo": fb.photo_crops()}


def onnx_out(name, kind):
    key = (name, kind)
    if key not in _OUT:
        _OUT[key] = rec(name)(inputs()[kind])
    return _OUT[key]


def graph_input(name, kind) -> torch.Tensor:
    return torch.from_numpy(rec(name).prepare(inputs()[kind]))


@pytest.mark.parametrize("kind", ["random", "photo"])
@pytest.mark.parametrize("name", FAMILIES)
def test_bundle_matches_pytorch(name, kind):
    built = fb.built(name)
    got = onnx_out(name, kind)
    assert list(got) == built.output_names == Bundle.load(fb.bundle(name), verify=False).output_names
    with torch.no_grad():
        ref = built.module(graph_input(name, kind))
    errors = {k: rel(got[k], ref[k].numpy()) for k in built.output_names}
    assert all(v <= TOL for v in errors.values()), errors
    n = len(inputs()[kind])
    for k, v in got.items():
        assert v.dtype == np.float32 and v.shape[0] == n and np.all(np.isfinite(v)), k


def test_output_sets_and_shapes():
    expect_extra = {"deca": ["albedo", "light", "detail", "detail_uv"], "emoca_coarse": ["albedo", "light"],
                    "emoca_detail_jaw": ["albedo", "light", "detail", "detail_uv"], "smirk": ["eyelids"],
                    "emoca_coarse_emorec": ["albedo", "light", "valence", "arousal", "expression_logits"]}
    base = ["shape", "expression", "global_pose", "jaw_pose", "camera", "vertices", "landmarks3d", "landmarks2d"]
    shapes = {"expression": (50,), "global_pose": (3,), "jaw_pose": (3,), "camera": (3,), "vertices": (5023, 3),
              "landmarks3d": (68, 3), "landmarks2d": (68, 2), "albedo": (50,), "light": (9, 3), "detail": (128,),
              "detail_uv": (256, 256), "eyelids": (2,), "valence": (), "arousal": (), "expression_logits": (8,)}
    for name, extra in expect_extra.items():
        out = onnx_out(name, "photo")
        assert list(out) == base + extra, name
        n_shape = 300 if name == "smirk" else 100
        for k, v in out.items():
            assert v.shape[1:] == ((n_shape,) if k == "shape" else shapes[k]), (name, k, v.shape)
        m = Bundle.load(fb.bundle(name), verify=False).manifest
        assert m["crop"]["convention"] == ("smirk478" if name == "smirk" else "deca68")
        assert m["dims"]["shape"] == n_shape
        assert m["family"] == ("smirk" if name == "smirk" else "deca" if name == "deca" else "emoca")


def _codes(images, E_flame, E_expression=None):
    with torch.no_grad():
        code = E_flame(images).numpy()
        e = E_expression(images).numpy() if E_expression is not None else None
    return code, e


def test_deca_composition():
    from emoca_edge.export.importers import import_deca

    mods = import_deca(fb.sources()["deca"])
    x = graph_input("deca", "photo")
    out = onnx_out("deca", "photo")
    code, _ = _codes(x, mods.E_flame)
    for k, sl in (("shape", SHAPE), ("albedo", TEX), ("expression", EXP), ("global_pose", GPOSE),
                  ("jaw_pose", JAW), ("camera", CAM)):
        assert rel(out[k], code[:, sl]) <= TOL, k
    assert rel(out["light"], code[:, LIGHT].reshape(-1, 9, 3)) <= TOL
    with torch.no_grad():
        detail = mods.E_detail(x).numpy()
        latent = torch.from_numpy(np.concatenate([code[:, JAW], code[:, EXP], detail], 1))
        uv = mods.D_detail(latent).numpy()[:, 0]
    assert rel(out["detail"], detail) <= TOL
    assert rel(out["detail_uv"], uv) <= TOL


@pytest.mark.parametrize("name", ["emoca_coarse", "emoca_detail_jaw"])
def test_emoca_expression_replacement(name):
    """E_expression replaces the expression (and the jaw with exp_deca_jaw_pose); everything else
    comes from E_flame; D_detail sees the replaced jaw and expression."""
    from emoca_edge.export.importers import import_emoca

    src = fb.sources()["emoca" if name == "emoca_coarse" else "emoca_jaw"]
    stage = "coarse" if name == "emoca_coarse" else "detail"
    mods = import_emoca(src, stage=stage)
    jaw_switch = name == "emoca_detail_jaw"
    assert mods.config["exp_deca_jaw_pose"] is jaw_switch
    x = graph_input(name, "random")
    out = onnx_out(name, "random")
    code, e = _codes(x, mods.E_flame, mods.E_expression)
    assert e.shape[1] == (53 if jaw_switch else 50)
    jaw = e[:, 50:53] if jaw_switch else code[:, JAW]
    assert rel(out["expression"], e[:, :50]) <= TOL
    assert rel(out["jaw_pose"], jaw) <= TOL
    for k, sl in (("shape", SHAPE), ("albedo", TEX), ("global_pose", GPOSE), ("camera", CAM)):
        assert rel(out[k], code[:, sl]) <= TOL, k
    # the E_flame expression is really replaced (random weights make the two differ)
    assert rel(out["expression"], code[:, EXP]) > 0.1
    if stage == "detail":
        with torch.no_grad():
            detail = mods.E_detail(x).numpy()
            uv = mods.D_detail(torch.from_numpy(np.concatenate([jaw, e[:, :50], detail], 1))).numpy()[:, 0]
        assert rel(out["detail_uv"], uv) <= TOL


def test_emoca_global_and_jaw_switches(tmp_path):
    """Both switches: E_expression outputs expression 50, global pose 3, jaw 3 (PyTorch module only;
    the export path is the same as for the bundles above)."""
    from synthetic.checkpoints import write_emoca_folder

    from emoca_edge.export.import_cli import build_emoca
    from emoca_edge.export.importers import import_emoca

    info = write_emoca_folder(tmp_path, name="EMOCA_both", seed=50, stages=("coarse",), exp_deca_jaw_pose=True,
                              exp_deca_global_pose=True)
    built = build_emoca(info["dir"], fb.sources()["flame"], "coarse")
    mods = import_emoca(info["dir"], stage="coarse")
    x = torch.from_numpy(fb.random_images(2, seed=3).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    code, e = _codes(x, mods.E_flame, mods.E_expression)
    with torch.no_grad():
        out = {k: v.numpy() for k, v in built.module(x).items()}
    assert e.shape[1] == 56
    np.testing.assert_allclose(out["expression"], e[:, :50], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["global_pose"], e[:, 50:53], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["jaw_pose"], e[:, 53:56], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["camera"], code[:, CAM], rtol=1e-6, atol=1e-7)
    assert built.provenance["cfg_switches"]["exp_deca_global_pose"] is True


def _project_np(points, camera):
    """float64 weak perspective to crop pixels (design.md): px = (s(x+tx)+1)*112, py = (-s(y+ty)+1)*112."""
    p = np.asarray(points, np.float64)
    c = np.asarray(camera, np.float64)
    s, tx, ty = c[:, 0:1], c[:, 1:2], c[:, 2:3]
    return np.stack([(s * (p[..., 0] + tx) + 1) * 112, (-s * (p[..., 1] + ty) + 1) * 112], -1)


@pytest.mark.parametrize("name", ["emoca_coarse", "smirk"])
def test_flame_decode_and_projection(name):
    """vertices / landmarks from the bundle's own parameter outputs through the PyTorch FLAME built
    from the bundle's face_model.npz; landmarks2d = float64 NumPy projection of FLAME's 68 dynamic
    landmarks. Inputs: photo crops (realistic pose range)."""
    from emoca_edge.training.flame import FLAME

    b = Bundle.load(fb.bundle(name), verify=False)
    flame = FLAME(b.face_model).eval()
    out = onnx_out(name, "photo")
    t = {k: torch.from_numpy(v) for k, v in out.items()}
    with torch.no_grad():
        fl = flame(t["shape"], t["expression"], t["global_pose"], t["jaw_pose"], t.get("eyelids"))
    assert rel(out["vertices"], fl.vertices.numpy()) <= TOL
    assert rel(out["landmarks3d"], fl.landmarks3d.numpy()) <= TOL
    # pixels: relative error of ~1e-4 of a ~100 px norm; compare absolutely (0.01 px) too
    lm2d = _project_np(fl.landmarks2d_3d.numpy(), out["camera"])
    assert rel(out["landmarks2d"], lm2d) <= TOL
    assert np.abs(out["landmarks2d"] - lm2d).max() < 0.01
    if name == "smirk":
        assert out["eyelids"].min() >= 0 and out["eyelids"].max() <= 1
        with torch.no_grad():
            no_lids = flame(t["shape"], t["expression"], t["global_pose"], t["jaw_pose"], None).vertices.numpy()
        lids = np.asarray(b.face_model["l_eyelid"], np.float64)[None] * out["eyelids"][:, 0, None, None] + \
            np.asarray(b.face_model["r_eyelid"], np.float64)[None] * out["eyelids"][:, 1, None, None]
        np.testing.assert_allclose(out["vertices"] - no_lids, lids, atol=1e-5)


def test_emotion_head_inputs_and_activation():
    """valence / arousal / log-probabilities = the imported MLP on concat(shape, expression, jaw) of
    the same bundle's outputs, with log-softmax in float64 here."""
    from emoca_edge.export.importers import import_emorec

    mods = import_emorec(fb.sources()["emorec"])
    assert mods.config["input_order"] == ["shape", "expression", "jaw_pose"]
    out = onnx_out("emoca_coarse_emorec", "photo")
    base = onnx_out("emoca_coarse", "photo")
    for k in base:  # merging the head does not change the reconstruction outputs
        np.testing.assert_array_equal(out[k], base[k])
    x = torch.from_numpy(np.concatenate([out["shape"], out["expression"], out["jaw_pose"]], 1))
    with torch.no_grad():
        raw = mods.mlp.model(x).numpy().astype(np.float64)
    logits = raw[:, :8]
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    assert rel(out["expression_logits"], logp) <= TOL
    assert rel(out["valence"], raw[:, 8]) <= TOL
    assert rel(out["arousal"], raw[:, 9]) <= TOL
    np.testing.assert_allclose(np.exp(out["expression_logits"].astype(np.float64)).sum(1), 1.0, atol=1e-5)
    m = Bundle.load(fb.bundle("emoca_coarse_emorec")).manifest
    assert m["dims"]["expression_classes"] == 8
    assert m["provenance"]["emotion"]["importer"] == "emorec"
    assert list(m["graphs"]) == ["reconstruct"]  # still one graph, one session call
    import onnx

    g = onnx.load(str(fb.bundle("emoca_coarse_emorec") / "reconstruct.onnx"), load_external_data=False)
    domains = [o.domain or "ai.onnx" for o in g.opset_import]
    assert len(domains) == len(set(domains)) and dict(zip(domains, [o.version for o in g.opset_import]))["ai.onnx"] >= 17


def test_provenance_records_sources():
    from emoca_edge.bundle import sha256_file

    m = Bundle.load(fb.bundle("emoca_detail_jaw"), verify=False).manifest
    prov = m["provenance"]
    assert prov["importer"] == "emoca" and prov["stage"] == "detail"
    assert prov["cfg_switches"]["exp_deca_jaw_pose"] is True
    assert prov["checkpoint"].endswith("=9.44489288.ckpt")  # the best checkpoint of the synthetic folder
    src = fb.sources()
    by_name = {s["name"]: s["sha256"] for s in prov["sources"]}
    assert by_name["cfg.yaml"] == sha256_file(src["emoca_jaw"] / "cfg.yaml")
    assert by_name["FLAME/generic_model.pkl"] == sha256_file(src["flame"] / "generic_model.pkl")
    ver = prov["export"]["verification"]
    assert ver["tolerance"] == 1e-4 and all(v <= 1e-4 for v in ver["max_relative_error"].values())
    assert any("photo" in c for c in ver["checked_inputs"]) and prov["export"]["opset"] >= 17


def test_exporter_per_family():
    """SMIRK uses the torch.export-based exporter (opset 18, faster graph), DECA/EMOCA TorchScript
    (opset 17); both with a dynamic batch (docs/importing.md)."""
    import onnx

    for name, exporter, opset in (("smirk", "dynamo", 18), ("emoca_coarse", "torchscript", 17)):
        exp = Bundle.load(fb.bundle(name), verify=False).manifest["provenance"]["export"]
        assert (exp["exporter"], exp["opset"], exp["dynamic_batch"]) == (exporter, opset, True), name
        g = onnx.load(str(fb.bundle(name) / "reconstruct.onnx"), load_external_data=False)
        assert g.graph.input[0].type.tensor_type.shape.dim[0].dim_param != ""
        assert all(o.type.tensor_type.shape.dim[0].dim_param != "" for o in g.graph.output)


def test_import_errors_name_the_file(tmp_path, capsys):
    from emoca_edge.cli import main

    missing = tmp_path / "nope.tar"
    assert main(["import", "deca", str(missing), "--flame", str(fb.sources()["flame"]), "-o",
                 str(tmp_path / "b")]) == 1
    assert "nope.tar" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    assert main(["import", "smirk", str(fb.sources()["smirk"]), "--flame", str(tmp_path / "noflame"), "-o",
                 str(tmp_path / "b")]) == 1
    assert "noflame" in capsys.readouterr().err
    # existing output is not replaced without --force
    assert main(["import", "smirk", str(fb.sources()["smirk"]), "--flame", str(fb.sources()["flame"]), "-o",
                 str(fb.bundle("smirk"))]) == 1
    assert "already exists" in capsys.readouterr().err


def test_emorec_refuses_smirk_bundle(tmp_path, capsys):
    import shutil

    from emoca_edge.cli import main

    dst = tmp_path / "smirk"
    shutil.copytree(fb.bundle("smirk"), dst)
    assert main(["import", "emorec", str(fb.sources()["emorec"]), "--into", str(dst)]) == 1
    assert "deca/emoca bundles" in capsys.readouterr().err
    Bundle.load(dst)  # untouched and still valid


def test_deca_coarse_stage_drops_detail():
    """``--stage coarse`` for DECA: same parameters as the detail stage, no detail outputs (PyTorch
    module only; the export path is the one verified above)."""
    from emoca_edge.export.import_cli import build_deca

    coarse = build_deca(fb.sources()["deca"], fb.sources()["flame"], "coarse")
    detail = fb.built("deca")
    assert coarse.output_names == [n for n in detail.output_names if n not in ("detail", "detail_uv")]
    assert "detail" not in coarse.dims and coarse.variant == "coarse"
    x = graph_input("deca", "photo")
    with torch.no_grad():
        a, b = coarse.module(x), detail.module(x)
    for k in coarse.output_names:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)  # same weights, same ops
