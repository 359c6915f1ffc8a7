"""Trainer, configs, CLI, and the emorec / emonet targets end to end (train -> checkpoint -> export ->
runtime), plus bit-for-bit resume."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fixtures_bundles as fb  # noqa: E402
import training_fixtures as tfx  # noqa: E402
from emoca_edge.cli import main as cli_main  # noqa: E402
from emoca_edge.training.trainer import (TARGETS, ConfigError, Trainer, load_checkpoint, load_config,  # noqa: E402
                                         parse_override)

FAST = ["train.num_workers=0", "train.log_every=1", "train.val_max_samples=4"]


def _losses(run):
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "train"]


def test_configs_defaults_files_and_overrides(tmp_path):
    for t in TARGETS:
        cfg = load_config(t)
        assert cfg["target"] == t and cfg["train"]["batch_size"] > 0
    assert parse_override("train.lr=1e-5") == {"train": {"lr": 1e-5}}
    cfg = load_config("emonet", None, ["train.lr=3e-4", "data.augmentation.flip=true"])
    assert cfg["train"]["lr"] == 3e-4 and cfg["data"]["augmentation"]["flip"] is True
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  batch_sze: 4\n")
    with pytest.raises(ConfigError, match=r"c.yaml.train: unknown key 'batch_sze'"):
        load_config("emonet", f)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("emonet", None, ["train.lr"])
    with pytest.raises(ConfigError, match="unknown training target"):
        load_config("smirk")


@pytest.fixture(scope="module")
def emorec_run(tmp_path_factory):
    """emorec on the toy bundle: 4 samples, batch 4, BatchNorm frozen, no augmentation, so every step
    sees the same batch and the logged losses must go down."""
    d = tfx.synthetic_affectnet(4, 4, False)
    run = tmp_path_factory.mktemp("emorec") / "run"
    cfg = load_config("emorec", None, FAST + [f"model.bundle={fb.toy_bundle()}", "model.hidden=64",
                                               "train.batch_size=4", "train.lr=1e-3", "train.freeze_batchnorm=true",
                                               "data.augmentation.enabled=false"])
    summary = Trainer("emorec", cfg, d, run, max_steps=4, progress=False).fit()
    return run, summary, d


def test_emorec_loss_decreases_and_validation_metrics(emorec_run):
    run, summary, _ = emorec_run
    losses = _losses(run)
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert {"accuracy", "valence_ccc", "valence_pcc", "valence_rmse", "valence_sagr", "arousal_ccc"} <= set(
        summary["validation"])
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()


def test_emorec_export_roundtrip(emorec_run, tmp_path):
    from emoca_edge.reconstruct import Reconstructor
    from emoca_edge.training.export_run import export_run
    from emoca_edge.training.models.emorec import EmoRecMLP

    run, _, _ = emorec_run
    images = fb.random_images(3, seed=4)
    batches = [[images.transpose(0, 3, 1, 2).astype(np.float32) / 255]]
    out = export_run(run, tmp_path / "bundle", check_batches=batches, check_labels=["random"])
    got = Reconstructor(out)(images)
    base = Reconstructor(fb.toy_bundle())(images)
    ck = load_checkpoint(run)
    mlp = EmoRecMLP(**ck["extra"]["mlp_kwargs"])
    mlp.load_state_dict(ck["modules"]["mlp"])
    mlp.eval()
    with torch.no_grad():
        ref = mlp(mlp.assemble_input(**{k: torch.from_numpy(base[k]) for k in mlp.input_dims}))
    for k in ("expression_logits", "valence", "arousal"):
        # the bundle verification tolerance (relative 1e-4, as for imported checkpoints)
        err = np.linalg.norm(got[k] - ref[k].numpy()) / np.linalg.norm(ref[k].numpy())
        assert err < 1e-4, (k, err)
    np.testing.assert_array_equal(got["vertices"], base["vertices"])  # the base graph is unchanged


def _params(stage):
    return {f"{n}.{k}": v.detach().clone() for n, m in stage.modules().items() for k, v in m.state_dict().items()}


def test_resume_is_bit_for_bit(tmp_path):
    """4 steps in one go == 2 steps, checkpoint, new Trainer with --resume, 2 more steps (augmentation
    on, BatchNorm training, shuffled order, a corrupt and a missing image in the data)."""
    d = tfx.synthetic_affectnet()
    over = FAST + [f"model.bundle={fb.toy_bundle()}", "model.hidden=32", "train.batch_size=2", "train.lr=1e-3",
                   "train.validate_at_end=false"]
    full = Trainer("emorec", load_config("emorec", None, over), d, tmp_path / "full", max_steps=4,
                   progress=False).fit()
    Trainer("emorec", load_config("emorec", None, over), d, tmp_path / "split", max_steps=2, progress=False).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer("emorec", load_config("emorec", None, over), d, tmp_path / "split", max_steps=4, progress=False)
    resumed = Trainer("emorec", load_config("emorec", None, over), d, tmp_path / "split", max_steps=4,
                      resume=True, progress=False).fit()
    a, b = _params(full["stage"]), _params(resumed["stage"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ca, cb = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "split")
    assert ca["step"] == cb["step"] == 4
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert _losses(tmp_path / "full") == _losses(tmp_path / "split")


def test_emonet_train_and_export(tmp_path):
    from emoca_edge.providers import create_session
    from emoca_edge.training.export_run import export_run
    from emoca_edge.training.stages.emonet import load_emotion_net

    d = tfx.synthetic_affectnet(2, 2, False)
    cfg = load_config("emonet", None, FAST + ["train.batch_size=2", "train.lr=1e-5", "train.freeze_batchnorm=true",
                                              "data.augmentation.enabled=false"])
    summary = Trainer("emonet", cfg, d, tmp_path / "run", max_steps=2, progress=False).fit()
    losses = _losses(tmp_path / "run")
    assert losses[1] < losses[0]  # one Adam step on the repeated batch lowers its loss
    assert "accuracy" in summary["validation"] and "arousal_sagr" in summary["validation"]
    out = export_run(tmp_path / "run", tmp_path / "emonet")
    meta = json.loads((out / "emotion_net.json").read_text())
    assert meta["verification"]["max_relative_error"]["valence"] <= 1e-4
    sess = create_session(out / "emotion_net.onnx", device="cpu")
    x = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"images": x})))
    net = load_emotion_net(tmp_path / "run")
    with torch.no_grad():
        ref = net(torch.from_numpy(x))
    for k in ("expression_logits", "valence", "arousal"):
        err = np.linalg.norm(got[k] - ref[k].numpy()) / max(np.linalg.norm(ref[k].numpy()), 1e-12)
        assert err < 1e-4, (k, err)


def test_cli_train_and_export(tmp_path, capsys):
    d = tfx.synthetic_affectnet(4, 4, False)
    run = tmp_path / "run"
    args = ["train", "emorec", "--data", str(d), "--out", str(run), "--max-steps", "1", "--no-progress",
            "--set", f"model.bundle={fb.toy_bundle()}", "--set", "model.hidden=16", "--set", "train.batch_size=2"]
    args += sum((["--set", s] for s in FAST), [])
    assert cli_main(args) == 0
    assert "trained emorec: 1 steps" in capsys.readouterr().out
    assert cli_main(["export", str(run), "-o", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "manifest.json").is_file()
    assert cli_main(["export", str(run), "-o", str(tmp_path / "b")]) == 1  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["train", "emorec", "--data", str(d), "--out", str(tmp_path / "r2"), "--no-progress"]) == 1
    assert "model.bundle is not set" in capsys.readouterr().err
    assert cli_main(["export", str(tmp_path / "nothing"), "-o", str(tmp_path / "c")]) == 1
    assert "training checkpoint not found" in capsys.readouterr().err
