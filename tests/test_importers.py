"""Importers of official checkpoints, on synthetic files in the official formats (tests/synthetic)."""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from emoca_edge.export.importers import (CheckpointError, import_deca, import_emoca, import_emorec, import_smirk,
                                         select_best_checkpoint)
from emoca_edge.export.importers.common import load_checkpoint, load_mapped, sha256_file
from emoca_edge.export.importers.emoca import read_emoca_config
from synthetic import checkpoints as C  # tests/ is on sys.path (rootdir conftest)


def _assert_same_weights(module, state, prefix=""):
    """Every entry of ``module.state_dict()`` equals ``state[prefix + key]`` exactly, and vice versa."""
    own = module.state_dict()
    src = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    assert set(own) == set(src)
    for k, v in own.items():
        assert torch.equal(v, src[k].to(v.dtype)), k


# ------------------------------------------------------------------------ fixtures (written once)
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    out = {"root": root}
    out["deca_path"] = root / "deca_model.tar"
    out["deca"] = C.write_deca_tar(out["deca_path"])
    out["emoca"] = C.write_emoca_folder(root, exp_deca_jaw_pose=True)
    out["smirk_path"] = root / "SMIRK_em1.pt"
    out["smirk"] = C.write_smirk_pt(out["smirk_path"])
    out["emorec"] = C.write_emorec_folder(root)
    yield out
    shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------ DECA
def test_import_deca(files):
    m = import_deca(files["deca_path"])
    for name in ("E_flame", "E_detail", "D_detail"):
        _assert_same_weights(getattr(m, name), files["deca"][name])
        assert not getattr(m, name).training
    assert m.provenance["files"][0]["sha256"] == sha256_file(files["deca_path"])
    assert m.provenance["global_step"] == 123456
    with torch.no_grad():
        assert m.E_flame(torch.rand(1, 3, 224, 224)).shape == (1, 236)
        assert m.D_detail(torch.zeros(1, 181)).shape == (1, 1, 256, 256)


def test_import_deca_rejects_unknown_top_level_entry(tmp_path, files):
    content = dict(files["deca"])
    content["E_albedo"] = {}
    p = tmp_path / "deca_model.tar"
    torch.save(content, p)
    with pytest.raises(CheckpointError, match=r"deca_model.tar.*E_albedo"):
        import_deca(p)


# ------------------------------------------------------------------------ EMOCA
def test_import_emoca_detail(files):
    info = files["emoca"]
    m = import_emoca(info["dir"], "detail")
    sd = info["detail"]["state_dict"]
    _assert_same_weights(m.E_flame, sd, "deca.E_flame.")
    _assert_same_weights(m.E_expression, sd, "deca.E_expression.")
    _assert_same_weights(m.E_detail, sd, "deca.E_detail.")
    _assert_same_weights(m.D_detail, sd, "deca.D_detail.")
    assert m.provenance["checkpoint"] == str(Path("detail/checkpoints") / C.BEST_NAMES[C.BEST_INDEX])
    assert m.provenance["ignored_key_count"] == 8
    assert m.config["exp_deca_jaw_pose"] is True and m.config["exp_deca_global_pose"] is False
    assert m.config["e_expression_out"] == 53
    assert m.config["expression_layout"] == [("expression", 50), ("jaw_pose", 3)]
    assert m.config["detail_latent_layout"] == [("jawpose", 3), ("expression", 50), ("detail", 128)]
    names = [f["name"] for f in m.provenance["files"]]
    assert names == ["cfg.yaml", m.provenance["checkpoint"]]


def test_import_emoca_coarse(files):
    info = files["emoca"]
    m = import_emoca(info["dir"], "coarse")
    assert m.E_detail is None and m.D_detail is None
    _assert_same_weights(m.E_flame, info["coarse"]["state_dict"], "deca.E_flame.")
    _assert_same_weights(m.E_expression, info["coarse"]["state_dict"], "deca.E_expression.")
    assert m.provenance["checkpoint"].startswith("coarse")


def _linked_copy(src: Path, dst: Path, cfg_edit=None):
    """Copy of an EMOCA folder whose checkpoints are symlinks (cheap) and whose cfg.yaml may be edited."""
    for f in src.rglob("*"):
        if f.is_file():
            t = dst / f.relative_to(src)
            t.parent.mkdir(parents=True, exist_ok=True)
            if f.name == "cfg.yaml":
                conf = yaml.safe_load(f.read_text())
                if cfg_edit:
                    cfg_edit(conf)
                t.write_text(yaml.safe_dump(conf))
            else:
                os.symlink(f, t)
    return dst


def test_import_emoca_wrong_config_names_key_and_shapes(files, tmp_path):
    def no_jaw(conf):
        conf["detail"]["model"]["exp_deca_jaw_pose"] = False

    d = _linked_copy(files["emoca"]["dir"], tmp_path / "m", no_jaw)
    with pytest.raises(CheckpointError, match=r"deca\.E_expression\.layers\.2\.weight: expected shape \(50, 1024\), "
                                              r"found \(53, 1024\)"):
        import_emoca(d, "detail")


def test_import_emoca_errors(files, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        import_emoca(tmp_path / "nope")
    with pytest.raises(ValueError, match="stage"):
        import_emoca(files["emoca"]["dir"], "fine")
    d = _linked_copy(files["emoca"]["dir"], tmp_path / "nockpt")
    shutil.rmtree(d / "detail")
    with pytest.raises(CheckpointError, match="checkpoint folder"):
        import_emoca(d, "detail")
    (d / "cfg.yaml").unlink()
    with pytest.raises(CheckpointError, match="cfg.yaml"):
        import_emoca(d, "coarse")


def test_read_emoca_config_switches(tmp_path):
    def write(model):
        p = tmp_path / "cfg.yaml"
        p.write_text(yaml.safe_dump({"coarse": {"model": model}, "detail": {"model": model}}))
        return p

    both = read_emoca_config(write(C.emoca_model_cfg(True, True)), "detail")
    assert both["e_expression_out"] == 56
    assert both["expression_layout"] == [("expression", 50), ("global_pose", 3), ("jaw_pose", 3)]
    plain = read_emoca_config(write(C.emoca_model_cfg(deca_class="DECA")), "coarse")
    assert plain["e_expression_out"] == 0 and plain["expression_layout"] == []
    # Official concatenation order is fixed whatever the list order.
    cond = read_emoca_config(write(C.emoca_model_cfg(detail_conditioning=("detail", "expression", "identity"))),
                             "detail")
    assert cond["detail_latent_layout"] == [("identity", 100), ("expression", 50), ("detail", 128)]
    bad = C.emoca_model_cfg()
    bad["expression_backbone"] = "emonet_static"
    with pytest.raises(CheckpointError, match="expression_backbone"):
        read_emoca_config(write(bad), "detail")
    (tmp_path / "cfg.yaml").write_text("coarse: [unclosed")
    with pytest.raises(CheckpointError, match="YAML"):
        read_emoca_config(tmp_path / "cfg.yaml", "coarse")


def test_select_best_checkpoint_rules(tmp_path):
    d = tmp_path / "checkpoints"
    names = ["last.ckpt", "deca-epoch=01-val_loss/dataloader_idx_0=2.5.ckpt", "deca-epoch=02-val_loss=1.25.ckpt",
             "deca-epoch=09-val_loss=1.25.ckpt", "weird=abc.ckpt", "deca-epoch=04-val_loss=3.0.ckpt"]
    for n in names:
        (d / n).parent.mkdir(parents=True, exist_ok=True)
        (d / n).write_bytes(b"")
    # smallest value; ties -> the later one in sorted path order (official '<=' comparison)
    assert select_best_checkpoint(d).name == "deca-epoch=09-val_loss=1.25.ckpt"
    only_last = tmp_path / "c2"
    only_last.mkdir()
    (only_last / "last.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint with a loss value"):
        select_best_checkpoint(only_last)
    empty = tmp_path / "c3"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no \\*.ckpt"):
        select_best_checkpoint(empty)


# ------------------------------------------------------------------------ SMIRK
def test_import_smirk(files):
    m = import_smirk(files["smirk_path"])
    _assert_same_weights(m.encoder, {k: v for k, v in files["smirk"].items() if k.startswith("smirk_encoder.")},
                         "smirk_encoder.")
    assert m.provenance["ignored_key_count"] == 4
    with torch.no_grad():
        out = m.encoder(torch.rand(1, 3, 224, 224))
    assert out["shape"].shape == (1, 300) and out["jaw_pose"].shape == (1, 3)


def test_smirk_missing_extra_and_wrong_shape_keys(files, tmp_path):
    sd = dict(files["smirk"])
    missing = dict(sd)
    del missing["smirk_encoder.shape_encoder.encoder.blocks.3.1.conv_dw.weight"]
    torch.save(missing, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"a\.pt.*missing key\(s\): smirk_encoder\.shape_encoder\.encoder\."
                                              r"blocks\.3\.1\.conv_dw\.weight"):
        import_smirk(tmp_path / "a.pt")
    extra = dict(sd)
    extra["smirk_encoder.pose_encoder.encoder.conv_head.weight"] = torch.zeros(1024, 576, 1, 1)
    extra["mystery.weight"] = torch.zeros(3)
    torch.save(extra, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"2 unmapped key\(s\): smirk_encoder\.pose_encoder\.encoder\.conv_head"
                                              r"\.weight, mystery\.weight"):
        import_smirk(tmp_path / "b.pt")
    wrong = dict(sd)
    wrong["smirk_encoder.shape_encoder.shape_layers.0.weight"] = torch.zeros(100, 960)
    torch.save(wrong, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"shape_layers\.0\.weight: expected shape \(300, 960\), found \(100, 960\)"):
        import_smirk(tmp_path / "c.pt")


def test_truncated_and_missing_files(files, tmp_path):
    data = files["smirk_path"].read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"t\.pt: unreadable or truncated"):
        import_smirk(tmp_path / "t.pt")
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        import_smirk(tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match=r"missing\.tar: checkpoint file not found"):
        import_deca(tmp_path / "missing.tar")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _Evil(marker)}, p)
    for allow in (False, True):
        with pytest.raises(CheckpointError, match=r"evil\.ckpt") as e:
            load_checkpoint(p, allow_objects=allow)
        if allow:
            assert f"{os.system.__module__}.system" in str(e.value)
    assert not marker.exists()
    # A raw (non-torch) pickle file is refused too.
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError, match=r"raw\.pkl"):
        load_checkpoint(raw, allow_objects=True)
    assert not marker.exists()


def test_config_objects_load_through_restricted_unpickler(files):
    ckpt_path = files["emoca"]["detail"]["best"]
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(ckpt_path, allow_objects=False)
    ck = load_checkpoint(ckpt_path, allow_objects=True)
    hp = ck["hyper_parameters"]["model_params"]
    assert type(hp).__name__ == "DictConfig" and type(hp).__module__.startswith("emoca_edge.opaque")
    assert ck["epoch"] == C.BEST_INDEX


def test_restricted_unpickler_accepts_numpy_values(tmp_path):
    import numpy as np

    p = tmp_path / "np.ckpt"
    with C._FakeModule():
        torch.save({"state_dict": {"w": torch.ones(2)}, "score": np.float64(1.5), "arr": np.arange(3),
                    "hyper_parameters": C.FakeDictConfig({"a": 1})}, p)
    ck = load_checkpoint(p, allow_objects=True)
    assert ck["score"] == 1.5 and np.array_equal(ck["arr"], np.arange(3)) and torch.equal(ck["state_dict"]["w"],
                                                                                        torch.ones(2))


def test_load_mapped_reports_everything(tmp_path):
    m = torch.nn.Linear(3, 2)
    before = m.weight.detach().clone()
    with pytest.raises(CheckpointError) as e:
        load_mapped("src", {"p.weight": torch.zeros(2, 4), "p.extra": torch.zeros(1), "p.bias": "nope"},
                    {"p.": m})
    msg = str(e.value)
    assert "src:" in msg and "p.extra" in msg and "p.weight: expected shape (2, 3), found (2, 4)" in msg
    assert "p.bias: expected a tensor, found str" in msg and "missing key(s): p.weight, p.bias" in msg
    assert torch.equal(m.weight, before)  # nothing copied on failure
    ignored = load_mapped("src", {"p.weight": torch.ones(2, 3), "p.bias": torch.ones(2), "q.x": torch.zeros(1)},
                          {"p.": m}, ignore=("q.*",))
    assert ignored == ["q.x"] and torch.equal(m.weight, torch.ones(2, 3))


# ------------------------------------------------------------------------ emotion regressor
def test_import_emorec(files):
    info = files["emorec"]
    m = import_emorec(info["dir"])
    _assert_same_weights(m.mlp, {k: v for k, v in info["state_dict"].items() if k.startswith("mlp.")}, "mlp.")
    assert m.config["input_order"] == ["shape", "expression", "jaw_pose"]
    assert m.config["hidden"] == 2048 and m.config["num_layers"] == 4 and m.config["n_expression"] == 8
    assert m.provenance["checkpoint"] == str(info["best"].relative_to(info["dir"]))
    with torch.no_grad():
        out = m.mlp(torch.randn(2, 153))
    assert out["expression_logits"].shape == (2, 8) and out["valence"].shape == (2,)
    assert torch.allclose(out["expression_logits"].exp().sum(1), torch.ones(2), atol=1e-5)


def test_import_emorec_unknown_key(files, tmp_path):
    info = files["emorec"]
    d = tmp_path / "emorec"
    (d / "checkpoints").mkdir(parents=True)
    shutil.copy(info["dir"] / "cfg.yaml", d / "cfg.yaml")
    sd = dict(info["state_dict"])
    sd["emonet.fc.weight"] = torch.zeros(2)
    torch.save({"state_dict": sd}, d / "checkpoints" / "x-val_loss=1.0.ckpt")
    with pytest.raises(CheckpointError, match=r"unmapped key\(s\): emonet\.fc\.weight"):
        import_emorec(d)
