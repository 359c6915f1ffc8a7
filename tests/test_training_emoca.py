"""EMOCA coarse and detail stages on renders of the synthetic FLAME: a few optimisation steps lower the
loss, and train -> checkpoint -> export -> bundle -> Reconstructor matches the PyTorch model."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import training_fixtures as tfx  # noqa: E402
from emoca_edge.training.trainer import Trainer, load_checkpoint, load_config  # noqa: E402

# CI-sized: batch 2, 2 steps, BatchNorm frozen and no augmentation so both steps see the same batch
# and the objective is a fixed function of the weights (the second logged loss follows one update).
FAST = ["train.num_workers=0", "train.log_every=1", "train.val_max_samples=2", "train.batch_size=2",
        "train.freeze_batchnorm=true", "data.augmentation.enabled=false", "train.validate_at_end=false"]
# Parity tolerance of bundles (relative error per output, the importers' default).
TOL = 1e-4


def _train_records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]


@pytest.fixture(scope="module")
def data():
    return tfx.synthetic_affectnet(2, 2, False)


@pytest.fixture(scope="module")
def coarse_run(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("coarse") / "run"
    cfg = load_config("emoca-coarse", None, FAST + [
        f"model.init={tfx.framing_deca_tar()}", f"model.flame_dir={tfx.flame_dir()}", "emotion.allow_random_init=true",
        "train.lr=1e-5", "loss.mouth=0.5", "loss.relative_landmarks=0.5", "loss.emotion_outputs=0.0015",
        "loss.jaw_reg=1e-3", f"model.uv_obj={tfx.uv_obj()}", f"model.face_mask={tfx.uv_mask()}"])
    Trainer("emoca-coarse", cfg, data, run, max_steps=2, progress=False).fit()
    return run


def _crops(data, split="training"):
    from emoca_edge.training.data import AffectNetDataset

    ds = AffectNetDataset(data, split)
    return np.stack([(ds[i]["image"] * 255).round().astype(np.uint8).transpose(1, 2, 0) for i in range(len(ds))])


def _roundtrip(run, out, crops):
    from emoca_edge.reconstruct import Reconstructor
    from emoca_edge.training.export_run import build_emoca_from_checkpoint, export_run

    x = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255
    export_run(run, out, check_batches=[[x]], check_labels=["synthetic renders"])
    got = Reconstructor(out)(crops)
    module = build_emoca_from_checkpoint(load_checkpoint(run)).module
    with torch.no_grad():
        ref = module(torch.from_numpy(x))
    assert list(got) == list(ref)
    for k, v in ref.items():
        v = v.numpy()
        err = np.linalg.norm(got[k] - v) / max(np.linalg.norm(v), 1e-12)
        assert err <= TOL, (k, err)
    return got


def test_coarse_loss_decreases_with_all_terms(coarse_run):
    recs = _train_records(coarse_run)
    assert len(recs) == 2 and recs[1]["loss"] < recs[0]["loss"]
    for term in ("photometric", "landmark", "eye_closure", "lip_closure", "mouth", "relative_landmarks",
                 "expression_reg", "emotion", "emotion_outputs", "jaw_reg"):
        assert term in recs[0], term
    # The frozen E_flame frames the synthetic face, so the render covers the crop and the
    # photometric and emotion terms are active (not trivially 0).
    assert recs[0]["photometric"] > 0 and recs[0]["emotion"] > 0


def test_face_mask_restricts_the_photometric_region(coarse_run, data):
    from emoca_edge.training.data import collate_skip
    from emoca_edge.training.stages.emoca import CoarseStage
    from emoca_edge.training.render import rasterize, view_normals_image

    cfg = load_checkpoint(coarse_run)["config"]
    cfg["loss"]["emotion"] = cfg["loss"]["emotion_outputs"] = 0.0
    stage = CoarseStage(cfg, data, "cpu")
    stage.eval_mode()
    from emoca_edge.training.data import AffectNetDataset

    batch = collate_skip([AffectNetDataset(data, "training")[0]])
    with torch.no_grad():
        codes = stage.coarse_codes(batch["image"])
        geo = stage.geometry(codes)
        frags = rasterize(geo["vertices_px"], stage.faces, 224, 224)
        _, mask = stage.shade(frags, view_normals_image(frags, geo["vertices_px"], stage.faces), codes)
    # The mask image of the fixture is 1 on the upper half of UV space (v > 0.5) and 0 below, so the
    # photometric mask is the rendered pixels whose interpolated v is above 0.5 (bilinear blend near v = 0.5).
    v = stage.uv.pixel_uv(frags)[0, 1]
    cover = frags.mask()[0, 0] > 0
    m = mask[0, 0]
    # (bilinear weights of equal texels sum to 1 up to float32 rounding)
    assert torch.all(m[cover & (v > 0.55)] > 1 - 1e-6) and torch.all(m[cover & (v < 0.45)] == 0)
    assert torch.all(m[~cover] == 0) and (cover & (v > 0.55)).any() and (cover & (v < 0.45)).any()


def test_coarse_frozen_and_trained_parts(coarse_run):
    from emoca_edge.export.importers import import_deca

    ck = load_checkpoint(coarse_run)
    ref = import_deca(tfx.framing_deca_tar()).E_flame.state_dict()
    for k, v in ref.items():
        assert torch.equal(ck["modules"]["E_flame"][k], v), k  # E_flame frozen (BN stats included)
    # E_expression started from E_flame's trunk and moved
    assert not torch.equal(ck["modules"]["E_expression"]["encoder.conv1.weight"], ref["encoder.conv1.weight"])
    assert ck["extra"]["expression_layout"] == [["expression", 50], ["jaw_pose", 3]]


def test_coarse_export_roundtrip(coarse_run, data, tmp_path):
    got = _roundtrip(coarse_run, tmp_path / "bundle", _crops(data))
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["family"] == "emoca" and manifest["variant"] == "coarse"
    assert manifest["provenance"]["importer"] == "emoca-edge train emoca-coarse"
    assert got["vertices"].shape == (2, 5023, 3)


def test_detail_stage_trains_and_exports(coarse_run, data, tmp_path):
    run = tmp_path / "detail"
    # Emotion loss off here only to keep the test CI-sized (it is exercised in the coarse stage).
    cfg = load_config("emoca-detail", None, FAST + [
        f"model.init={coarse_run}", f"model.flame_dir={tfx.flame_dir()}", f"model.uv_obj={tfx.uv_obj()}",
        "loss.emotion=0.0", "train.lr=1e-4"])
    Trainer("emoca-detail", cfg, data, run, max_steps=2, progress=False).fit()
    recs = _train_records(run)
    assert recs[1]["loss"] < recs[0]["loss"]
    assert all(recs[0][k] > 0 for k in ("photometric_detail", "z_reg", "z_diff"))
    ck = load_checkpoint(run)
    coarse = load_checkpoint(coarse_run)
    for k, v in coarse["modules"]["E_expression"].items():
        assert torch.equal(ck["modules"]["E_expression"][k], v), k  # frozen in the detail stage
    got = _roundtrip(run, tmp_path / "bundle", _crops(data)[:1].repeat(2, 0))
    assert got["detail_uv"].shape == (2, 256, 256) and got["detail"].shape == (2, 128)


def test_emoca_config_errors(data, tmp_path):
    cfg = load_config("emoca-coarse", None, ["train.num_workers=0", f"model.flame_dir={tfx.flame_dir()}"])
    with pytest.raises(ValueError, match="model.init is not set"):
        Trainer("emoca-coarse", cfg, data, tmp_path / "r", progress=False).fit()
    cfg = load_config("emoca-coarse", None, ["train.num_workers=0", f"model.flame_dir={tfx.flame_dir()}",
                                             f"model.init={tfx.framing_deca_tar()}"])
    with pytest.raises(ValueError, match="emotion.checkpoint is not set"):
        Trainer("emoca-coarse", cfg, data, tmp_path / "r2", progress=False).fit()


def test_expression_encoder_initialisation(data):
    from emoca_edge.training.stages.emoca import CoarseStage

    over = ["train.num_workers=0", f"model.flame_dir={tfx.flame_dir()}", f"model.init={tfx.framing_deca_tar()}",
            "loss.emotion=0.0", "model.init_head_from_flame=true"]
    stage = CoarseStage(load_config("emoca-coarse", None, over), data, "cpu")
    ef, ee = stage.nets["E_flame"], stage.nets["E_expression"]
    for k, v in ef.encoder.state_dict().items():
        assert torch.equal(ee.encoder.state_dict()[k], v), k
    stage.eval_mode()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        code, e = ef(x), ee(x)
    # rows 150:200 of the DECA code are the expression, 203:206 the jaw pose; same weights, but the
    # float32 GEMM over a row subset may sum in another order: a few ulp (values ~1e-5 here)
    torch.testing.assert_close(e, torch.cat([code[:, 150:200], code[:, 203:206]], 1), rtol=1e-5, atol=1e-9)
