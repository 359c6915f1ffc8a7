"""Bundle format: writing, loading, checksum/version verification, clear errors; export verification."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import fixtures_bundles as fb
from emoca_edge.bundle import FORMAT, FORMAT_VERSION, Bundle, BundleError, sha256_file


@pytest.fixture(scope="module")
def toy():
    return fb.toy_bundle()


@pytest.fixture
def toy_copy(toy, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(toy, dst)
    return dst


def _edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_manifest_contents(toy):
    b = Bundle.load(toy)
    m = b.manifest
    assert m["format"] == FORMAT and m["format_version"] == FORMAT_VERSION
    assert b.family == "deca" and b.crop_convention == "deca68" and b.input_size == 224
    assert m["input"] == {"name": "images", "size": 224, "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
                          "colour": "RGB", "normalisation": "none (no mean/std)"}
    assert b.output_names == ["shape", "expression", "global_pose", "jaw_pose", "camera", "vertices", "landmarks3d",
                              "landmarks2d"]
    assert m["outputs"]["shape"]["shape"] == ["N", 10]  # S resolved from dims
    assert m["outputs"]["landmarks2d"]["units"].startswith("pixels")
    # every file listed with its real size and sha256 (recomputed here independently of the writer)
    assert set(m["files"]) == {"reconstruct.onnx", "face_model.npz"}
    for name, e in m["files"].items():
        assert e["bytes"] == (toy / name).stat().st_size
        assert e["sha256"] == sha256_file(toy / name)
    assert m["graphs"] == {"reconstruct": "reconstruct.onnx"}
    assert "date" in m["provenance"] and "emoca_edge_version" in m["provenance"]


def test_face_model_loads_without_pickle(toy):
    b = Bundle.load(toy)
    with np.load(toy / "face_model.npz", allow_pickle=False) as z:
        assert set(z.files) == {"v_template", "faces"}
        np.testing.assert_array_equal(b.face_model["v_template"], z["v_template"])
    assert b.faces.dtype == np.int32 and b.faces.shape == (9976, 3)


def test_corrupt_file_fails_checksum(toy_copy):
    p = toy_copy / "reconstruct.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"reconstruct\.onnx fails its checksum"):
        Bundle.load(toy_copy)
    Bundle.load(toy_copy, verify=False)  # structure still fine when checksums are skipped


def test_truncated_and_missing_files(toy_copy):
    p = toy_copy / "face_model.npz"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(BundleError, match=r"face_model\.npz has 100 bytes"):
        Bundle.load(toy_copy)
    p.unlink()
    with pytest.raises(BundleError, match=r"listed file face_model\.npz is missing"):
        Bundle.load(toy_copy)


@pytest.mark.parametrize("version,message", [(FORMAT_VERSION + 1, "upgrade emoca-edge"),
                                             (0, "re-create the bundle"), ("1", "must be an integer")])
def test_format_version_mismatch(toy_copy, version, message):
    _edit_manifest(toy_copy, lambda m: m.update(format_version=version))
    with pytest.raises(BundleError, match=message):
        Bundle.load(toy_copy)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(format="something-else"), "not an emoca-edge bundle"),
    (lambda m: m.pop("files"), "missing required key 'files'"),
    (lambda m: m.update(family="nerf"), "unknown family 'nerf'"),
    (lambda m: m["crop"].update(convention="mtcnn"), "unknown crop convention"),
    (lambda m: m["graphs"].update(reconstruct="other.onnx"), "is not listed in files"),
    (lambda m: m["outputs"].pop("vertices"), "lacks required"),
    (lambda m: m["outputs"].update(bogus={"shape": ["N"]}), "unknown outputs"),
    (lambda m: m["outputs"].update(shape="(N,10)"), "must be an object with a 'shape' list"),
    (lambda m: m["files"].update({"../x": {"sha256": "0", "bytes": 1}}), "plain name"),
])
def test_malformed_manifest(toy_copy, edit, message):
    _edit_manifest(toy_copy, edit)
    with pytest.raises(BundleError, match=message):
        Bundle.load(toy_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="bundle not found"):
        Bundle.load(tmp_path / "nope")
    f = tmp_path / "file.onnx"
    f.write_bytes(b"x")
    with pytest.raises(BundleError, match="is not a directory"):
        Bundle.load(f)
    with pytest.raises(BundleError, match="has no manifest.json"):
        Bundle.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(tmp_path)


def test_writer_refuses_overwrite_and_object_arrays(toy, tmp_path):
    from emoca_edge.export.bundle_writer import write_bundle

    kw = dict(family="deca", face_model={"v_template": np.zeros((5023, 3), np.float32),
                                         "faces": np.zeros((9976, 3), np.int32)},
              dims={"shape": 10}, output_names=Bundle.load(toy).output_names, crop_convention="deca68",
              provenance={"importer": "test"}, move_graphs=False)
    with pytest.raises(FileExistsError, match="already exists"):
        write_bundle(toy, graphs={"reconstruct": toy / "reconstruct.onnx"}, **kw)
    bad = dict(kw, face_model={"v_template": np.array([object()]), "faces": np.zeros((1, 3), np.int32)})
    with pytest.raises(TypeError, match="dtype object"):
        write_bundle(tmp_path / "b", graphs={"reconstruct": toy / "reconstruct.onnx"}, **bad)
    assert not (tmp_path / "b").exists()  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == []


def test_export_verification_rejects_a_wrong_graph(tmp_path):
    """A module whose eager output differs from what was traced (Python-side state) must be caught,
    and the destination file must not be written."""
    import torch

    from emoca_edge.export.onnx_export import ExportVerificationError, export_verified

    class Drifting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return {"y": x * 2.0 + float(self.calls)}  # the trace freezes the constant

    x = [np.ones((3, 4), np.float32)]
    with pytest.raises(ExportVerificationError, match="y"):
        export_verified(Drifting(), tmp_path / "g.onnx", ["x"], ["y"], [torch.ones(2, 4)], [x])
    assert not (tmp_path / "g.onnx").exists()
    assert list(tmp_path.iterdir()) == []


def test_export_dynamic_batch_and_opset(tmp_path):
    import onnx
    import torch

    from emoca_edge.export.onnx_export import export_verified

    m = fb.make_toy_module(seed=3)
    rng = np.random.default_rng(0)
    batches = [[rng.random((n, 3, 224, 224), dtype=np.float32)] for n in (1, 4)]
    rep = export_verified(m, tmp_path / "t.onnx", ["images"], m.output_names, [torch.rand(2, 3, 224, 224)], batches)
    # float32 export of the same arithmetic: relative error well below the 1e-4 bound
    assert max(rep.errors.values()) < 1e-5
    model = onnx.load(str(tmp_path / "t.onnx"))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert all(o.type.tensor_type.shape.dim[0].dim_param == "batch" for o in model.graph.output)


def test_info_command(toy, capsys):
    from emoca_edge.cli import main

    assert main(["info", str(toy)]) == 0
    out = capsys.readouterr().out
    assert "emoca-edge-bundle v1" in out and "landmarks2d" in out and "verified" in out
    assert main(["info", str(toy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "deca"


def test_info_command_reports_corruption(toy_copy, capsys):
    from emoca_edge.cli import main

    (toy_copy / "reconstruct.onnx").write_bytes(b"garbage")
    assert main(["info", str(toy_copy)]) == 1
    assert "reconstruct.onnx" in capsys.readouterr().err


def test_export_verification_catches_a_static_batch(tmp_path):
    """A graph whose batch size got frozen at the example's (2) must fail verification on other
    batch sizes with a clear message, not write the file."""
    import torch

    from emoca_edge.export.onnx_export import ExportVerificationError, export_verified

    class Static(torch.nn.Module):
        def forward(self, x):
            n = int(x.shape[0])  # traced as the constant 2
            return {"y": torch.zeros(n, 4) + x}

    with pytest.raises(ExportVerificationError, match="specialised the batch axis"):
        export_verified(Static(), tmp_path / "s.onnx", ["x"], ["y"], [torch.ones(2, 4)],
                        [[np.ones((3, 4), np.float32)]])
    assert not (tmp_path / "s.onnx").exists()


def test_default_family_with_own_outputs(toy, tmp_path):
    """A non-FLAME bundle (family ``default``) may declare its own outputs; FLAME families may not."""
    from emoca_edge.export.bundle_writer import write_bundle

    outputs = {"points": {"shape": ["N", 478, 3], "units": "crop pixels", "description": "mesh points"}}
    kw = dict(graphs={"reconstruct": toy / "reconstruct.onnx"},
              face_model={"v_template": np.zeros((478, 3), np.float32), "faces": np.zeros((898, 3), np.int32)},
              dims={}, output_names=outputs, crop_convention="smirk478", provenance={"importer": "test"},
              move_graphs=False)
    b = Bundle.load(write_bundle(tmp_path / "d", family="default", **kw))
    assert b.output_names == ["points"] and b.manifest["outputs"] == outputs
    with pytest.raises(BundleError, match="lacks required"):
        write_bundle(tmp_path / "e", family="smirk", **kw)
    assert not (tmp_path / "e").exists()
