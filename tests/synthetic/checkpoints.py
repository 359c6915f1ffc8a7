"""Writers of synthetic checkpoints in the official DECA / EMOCA / SMIRK / emotion-regressor formats.

Key names and shapes are generated here from the architecture descriptions (ResNet-50 layer table,
DECA's generator layout, timm-style MobileNetV3 block strings, the EMOCA MLP layout), independently
of ``emoca_edge.training.models``, so tests that import these files check the key mapping for real.
Values are random (seeded) with small scales so activations stay in a sane range; BatchNorm running
variances are positive.
"""
from __future__ import annotations

import copyreg
import math
import re
import sys
import types
from collections import OrderedDict
from pathlib import Path

import torch

# ------------------------------------------------------------------------------ key generators
# Each entry: (name, shape, kind); kind decides the random distribution.


def _bn(prefix: str, c: int) -> list:
    return [(f"{prefix}.weight", (c,), "bn_w"), (f"{prefix}.bias", (c,), "bn_b"),
            (f"{prefix}.running_mean", (c,), "bn_mean"), (f"{prefix}.running_var", (c,), "bn_var"),
            (f"{prefix}.num_batches_tracked", (), "bn_count")]


def _conv(name: str, cout: int, cin: int, k: int, bias: bool = False) -> list:
    out = [(f"{name}.weight", (cout, cin, k, k), "conv")]
    if bias:
        out.append((f"{name}.bias", (cout,), "bias"))
    return out


def _linear(name: str, cout: int, cin: int) -> list:
    return [(f"{name}.weight", (cout, cin), "linear"), (f"{name}.bias", (cout,), "bias")]


def resnet50_keys(prefix: str = "") -> list:
    """torchvision-style ResNet-50 trunk keys without ``fc`` (Bottleneck [3, 4, 6, 3], expansion 4)."""
    keys = _conv(prefix + "conv1", 64, 3, 7) + _bn(prefix + "bn1", 64)
    inplanes = 64
    for li, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for b in range(blocks):
            p = f"{prefix}layer{li}.{b}."
            keys += _conv(p + "conv1", planes, inplanes, 1) + _bn(p + "bn1", planes)
            keys += _conv(p + "conv2", planes, planes, 3) + _bn(p + "bn2", planes)
            keys += _conv(p + "conv3", planes * 4, planes, 1) + _bn(p + "bn3", planes * 4)
            if b == 0:
                keys += _conv(p + "downsample.0", planes * 4, inplanes, 1) + _bn(p + "downsample.1", planes * 4)
            inplanes = planes * 4
    return keys


def resnet_encoder_keys(out_dim: int, prefix: str = "") -> list:
    """DECA ``ResnetEncoder``: ``encoder.*`` trunk + ``layers.0`` (2048->1024) + ``layers.2`` (1024->out)."""
    return (resnet50_keys(prefix + "encoder.") + _linear(prefix + "layers.0", 1024, 2048)
            + _linear(prefix + "layers.2", out_dim, 1024))


def detail_decoder_keys(latent_dim: int = 181, prefix: str = "") -> list:
    """DECA ``Generator``: l1.0 Linear(latent, 8192); conv_blocks BN at 0, 3, 7, 11, 15, 19; convs at
    2, 6, 10, 14, 18 (3x3 with bias) and 21 (16 -> 1)."""
    keys = _linear(prefix + "l1.0", 128 * 8 * 8, latent_dim) + _bn(prefix + "conv_blocks.0", 128)
    idx = 2
    for cin, cout in ((128, 128), (128, 64), (64, 64), (64, 32), (32, 16)):
        keys += _conv(f"{prefix}conv_blocks.{idx}", cout, cin, 3, bias=True) + _bn(f"{prefix}conv_blocks.{idx + 1}", cout)
        idx += 4
    keys += _conv(f"{prefix}conv_blocks.{idx - 1}", 1, 16, 3, bias=True)
    return keys


# timm architecture strings of the two MobileNetV3 "minimal" variants (as in timm's mobilenetv3.py).
TIMM_SMALL_MINIMAL = [
    ["ds_r1_k3_s2_e1_c16"],
    ["ir_r1_k3_s2_e4.5_c24", "ir_r1_k3_s1_e3.67_c24"],
    ["ir_r1_k3_s2_e4_c40", "ir_r2_k3_s1_e6_c40"],
    ["ir_r2_k3_s1_e3_c48"],
    ["ir_r3_k3_s2_e6_c96"],
    ["cn_r1_k1_s1_c576"],
]
TIMM_LARGE_MINIMAL = [
    ["ds_r1_k3_s1_e1_c16"],
    ["ir_r1_k3_s2_e4_c24", "ir_r1_k3_s1_e3_c24"],
    ["ir_r3_k3_s2_e3_c40"],
    ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
    ["ir_r2_k3_s1_e6_c112"],
    ["ir_r3_k3_s2_e6_c160"],
    ["cn_r1_k1_s1_c960"],
]


def _timm_make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _decode_block_string(s: str) -> tuple:
    parts = s.split("_")
    opts = {}
    for op in parts[1:]:
        m = re.match(r"([a-z]+)([\d.]+)$", op)
        if m:
            opts[m.group(1)] = m.group(2)
    return parts[0], int(opts["r"]), int(opts["k"]), float(opts.get("e", 1)), int(opts["c"])


def mobilenetv3_feature_keys(arch: list, prefix: str = "", stem: int = 16) -> list:
    """Keys of a timm ``features_only`` MobileNetV3 built from block strings (no SE, no conv_head)."""
    keys = _conv(prefix + "conv_stem", stem, 3, 3) + _bn(prefix + "bn1", stem)
    cin = stem
    for si, stage in enumerate(arch):
        bi = 0
        for s in stage:
            kind, repeats, k, e, cout = _decode_block_string(s)
            for _ in range(repeats):
                p = f"{prefix}blocks.{si}.{bi}."
                if kind == "ds":
                    keys += [(p + "conv_dw.weight", (cin, 1, k, k), "conv")] + _bn(p + "bn1", cin)
                    keys += _conv(p + "conv_pw", cout, cin, 1) + _bn(p + "bn2", cout)
                elif kind == "ir":
                    mid = _timm_make_divisible(cin * e)
                    keys += _conv(p + "conv_pw", mid, cin, 1) + _bn(p + "bn1", mid)
                    keys += [(p + "conv_dw.weight", (mid, 1, k, k), "conv")] + _bn(p + "bn2", mid)
                    keys += _conv(p + "conv_pwl", cout, mid, 1) + _bn(p + "bn3", cout)
                elif kind == "cn":
                    keys += _conv(p + "conv", cout, cin, k) + _bn(p + "bn1", cout)
                else:
                    raise ValueError(s)
                cin = cout
                bi += 1
    return keys


def smirk_encoder_keys(prefix: str = "smirk_encoder.") -> list:
    return (mobilenetv3_feature_keys(TIMM_SMALL_MINIMAL, prefix + "pose_encoder.encoder.")
            + _linear(prefix + "pose_encoder.pose_cam_layers.0", 6, 576)
            + mobilenetv3_feature_keys(TIMM_LARGE_MINIMAL, prefix + "shape_encoder.encoder.")
            + _linear(prefix + "shape_encoder.shape_layers.0", 300, 960)
            + mobilenetv3_feature_keys(TIMM_LARGE_MINIMAL, prefix + "expression_encoder.encoder.")
            + _linear(prefix + "expression_encoder.expression_layers.0", 55, 960))


def emorec_mlp_keys(in_size: int = 153, hidden: int = 2048, num_layers: int = 4, out: int = 10,
                    batch_norm: bool = True, prefix: str = "mlp.model.") -> list:
    keys, idx, width = [], 0, in_size
    for _ in range(num_layers):
        keys += _linear(f"{prefix}{idx}", hidden, width)
        idx += 1
        if batch_norm:
            keys += [(n, s, k) for n, s, k in _bn(f"{prefix}{idx}", hidden)]
            idx += 1
        idx += 1  # LeakyReLU
        width = hidden
    return keys + _linear(f"{prefix}{idx}", out, width)


# ------------------------------------------------------------------------------ random values
def random_state(keys: list, seed: int) -> "OrderedDict[str, torch.Tensor]":
    """Random tensors for ``keys``: fan-in scaled conv/linear weights, BN gammas in [0.3, 0.7]
    (keeps deep residual stacks bounded), running variances in [0.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for name, shape, kind in keys:
        if kind == "conv":
            fan_in = shape[1] * shape[2] * shape[3]
            t = torch.randn(shape, generator=g) * math.sqrt(1.0 / fan_in)
        elif kind == "linear":
            t = torch.randn(shape, generator=g) * math.sqrt(1.0 / shape[1])
        elif kind == "bias":
            t = torch.randn(shape, generator=g) * 0.02
        elif kind == "bn_w":
            t = 0.3 + 0.4 * torch.rand(shape, generator=g)
        elif kind == "bn_b":
            t = torch.randn(shape, generator=g) * 0.05
        elif kind == "bn_mean":
            t = torch.randn(shape, generator=g) * 0.05
        elif kind == "bn_var":
            t = 0.5 + torch.rand(shape, generator=g)
        elif kind == "bn_count":
            t = torch.tensor(int(torch.randint(1, 100000, (1,), generator=g)), dtype=torch.int64)
        else:
            raise ValueError(kind)
        out[name] = t
    return out


# ------------------------------------------------------------------------------ DECA
def write_deca_tar(path, seed: int = 0, training_state: bool = True) -> dict:
    """``deca_model.tar``: {'E_flame', 'E_detail', 'D_detail'} state dicts (+ 'opt', 'global_step')."""
    content = {
        "E_flame": random_state(resnet_encoder_keys(236), seed),
        "E_detail": random_state(resnet_encoder_keys(128), seed + 1),
        "D_detail": random_state(detail_decoder_keys(181), seed + 2),
    }
    if training_state:
        content["opt"] = {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}
        content["global_step"] = 123456
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return content


# ------------------------------------------------------------------------------ EMOCA
class FakeDictConfig:
    """Pickles like an OmegaConf DictConfig (class ``omegaconf.dictconfig.DictConfig``, NEWOBJ + state)
    without needing omegaconf: used to exercise the restricted-unpickler path."""

    def __init__(self, content: dict):
        self.content = content

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (type(self),), {"_content": self.content, "_metadata": None}


class _FakeModule:
    """Context manager registering FakeDictConfig as ``omegaconf.dictconfig.DictConfig`` while pickling."""

    def __enter__(self):
        self.saved = {k: sys.modules.get(k) for k in ("omegaconf", "omegaconf.dictconfig")}
        self.old = (FakeDictConfig.__module__, FakeDictConfig.__qualname__)
        pkg = types.ModuleType("omegaconf")
        mod = types.ModuleType("omegaconf.dictconfig")
        mod.DictConfig = FakeDictConfig
        pkg.dictconfig = mod
        sys.modules["omegaconf"], sys.modules["omegaconf.dictconfig"] = pkg, mod
        FakeDictConfig.__module__, FakeDictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
        return self

    def __exit__(self, *exc):
        FakeDictConfig.__module__, FakeDictConfig.__qualname__ = self.old
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def emoca_model_cfg(exp_deca_jaw_pose: bool = False, exp_deca_global_pose: bool = False,
                    deca_class: str = "ExpDECA", detail_conditioning=("jawpose", "expression", "detail")) -> dict:
    return {
        "deca_class": deca_class, "expression_backbone": "deca_clone",
        "exp_deca_jaw_pose": exp_deca_jaw_pose, "exp_deca_global_pose": exp_deca_global_pose,
        "n_shape": 100, "n_tex": 50, "n_exp": 50, "n_pose": 6, "n_cam": 3, "n_light": 27, "n_detail": 128,
        "use_texture": False, "detail_conditioning": list(detail_conditioning), "mode": "detail",
        "image_size": 224, "uv_size": 256, "flame_model_path": "/placeholder/FLAME/generic_model.pkl",
        "tex_path": "/placeholder/FLAME_albedo_from_BFM.npz", "resume_training": True,
    }


def _ignored_buffers(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "deca.flame.shapedirs": torch.randn(5023, 3, 150, generator=g) * 1e-3,
        "deca.flame.v_template": torch.randn(5023, 3, generator=g) * 0.1,
        "deca.flame.faces_tensor": torch.randint(0, 5023, (9976, 3), generator=g),
        "deca.render.dense_faces": torch.randint(0, 65536, (1000, 3), generator=g),
        "deca.uv_face_eye_mask": torch.rand(1, 1, 256, 256, generator=g),
        "deca.fixed_uv_dis": torch.randn(256, 256, generator=g) * 1e-3,
        "deca.perceptual_loss.featlayer.conv1_1.weight": torch.randn(64, 3, 3, 3, generator=g),
        "emonet_loss.backbone.fc.weight": torch.randn(10, 2048, generator=g) * 1e-2,
    }


def _lightning_ckpt(state_dict: dict, epoch: int, stage: str, hyper_object: bool) -> dict:
    ckpt = {
        "epoch": epoch,
        "global_step": 1000 * (epoch + 1),
        "pytorch-lightning_version": "1.4.9",
        "state_dict": state_dict,
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss/dataloader_idx_0', 'mode': 'min'}": {
            "best_model_score": torch.tensor(9.44489288), "best_model_path": "/placeholder/ckpt",
            "current_score": torch.tensor(9.5), "dirpath": "/placeholder"}},
        "optimizer_states": [{"state": {0: {"step": 10, "exp_avg": torch.zeros(4)}},
                              "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}]}],
        "lr_schedulers": [],
    }
    if hyper_object:
        ckpt["hparams_name"] = "kwargs"
        ckpt["hyper_parameters"] = {"model_params": FakeDictConfig({"n_shape": 100, "stage": stage}),
                                    "stage_name": stage}
    return ckpt


def emoca_state_dict(cfg: dict, seed: int) -> "OrderedDict[str, torch.Tensor]":
    """``deca.``-prefixed state dict for an EMOCA config (plus ignored buffers)."""
    e_flame_out = cfg["n_shape"] + cfg["n_tex"] + cfg["n_exp"] + 6 + 3 + 27
    keys = resnet_encoder_keys(e_flame_out, "deca.E_flame.")
    if cfg["deca_class"] == "ExpDECA":
        n = cfg["n_exp"] + 3 * int(cfg["exp_deca_jaw_pose"]) + 3 * int(cfg["exp_deca_global_pose"])
        keys += resnet_encoder_keys(n, "deca.E_expression.")
    cond = {"globalpose": 3, "jawpose": 3, "identity": cfg["n_shape"], "expression": cfg["n_exp"],
            "detail": cfg["n_detail"]}
    latent = sum(cond[c] for c in cfg["detail_conditioning"])
    keys += resnet_encoder_keys(cfg["n_detail"], "deca.E_detail.") + detail_decoder_keys(latent, "deca.D_detail.")
    state = random_state(keys, seed)
    state.update(_ignored_buffers(seed + 7))
    return state


BEST_NAMES = ("deca-epoch=01-val_loss/dataloader_idx_0=9.71234567.ckpt",
              "deca-epoch=03-val_loss/dataloader_idx_0=9.44489288.ckpt",
              "deca-epoch=05-val_loss/dataloader_idx_0=9.60000000.ckpt")
BEST_INDEX = 1


def write_emoca_folder(root, name: str = "EMOCA_v2_lr_mse_20", seed: int = 10, stages=("coarse", "detail"),
                       hyper_object: bool = True, **cfg_kwargs) -> dict:
    """An EMOCA release folder: ``cfg.yaml`` + ``<stage>/checkpoints/*.ckpt`` (several, plus ``last.ckpt``).

    Only the best-named checkpoint (:data:`BEST_NAMES` [:data:`BEST_INDEX`]) holds the full state
    dict; the others hold an empty one, so picking a wrong file fails loudly. Returns
    ``{"dir": Path, "cfg": dict, "<stage>": {"state_dict": ..., "best": Path}}``.
    """
    import yaml

    d = Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    model_cfg = emoca_model_cfg(**cfg_kwargs)
    conf = {}
    for stage in ("coarse", "detail"):
        mc = dict(model_cfg, mode=stage)
        conf[stage] = {"model": mc, "learning": {"learning_rate": 1e-4, "batch_size_train": 4},
                       "inout": {"checkpoint_dir": f"/placeholder/{name}/{stage}/checkpoints",
                                 "full_run_dir": f"/placeholder/{name}/{stage}"},
                       "data": {"data_class": "DecaDataModule"}}
    (d / "cfg.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    info = {"dir": d, "cfg": model_cfg}
    for si, stage in enumerate(stages):
        cdir = d / stage / "checkpoints"
        state = emoca_state_dict(model_cfg, seed + 100 * si)
        for i, fname in enumerate(BEST_NAMES):
            p = cdir / fname
            p.parent.mkdir(parents=True, exist_ok=True)
            sd = state if i == BEST_INDEX else {}
            with _FakeModule():
                torch.save(_lightning_ckpt(sd, i, stage, hyper_object), p)
        with _FakeModule():
            torch.save(_lightning_ckpt({}, 9, stage, hyper_object), cdir / "last.ckpt")
        info[stage] = {"state_dict": state, "best": cdir / BEST_NAMES[BEST_INDEX]}
    return info


# ------------------------------------------------------------------------------ SMIRK
def write_smirk_pt(path, seed: int = 20) -> dict:
    """``SMIRK_em1.pt``: flat state dict with ``smirk_encoder.*`` and some ``smirk_generator.*`` keys."""
    keys = smirk_encoder_keys() + _conv("smirk_generator.encoder.0", 32, 4, 3, bias=True) + \
        _conv("smirk_generator.decoder.out", 3, 32, 3, bias=True)
    state = random_state(keys, seed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


# ------------------------------------------------------------------------------ emotion regressor
def emorec_cfg(use_identity=True, use_expression=True, use_global_pose=False, use_jaw_pose=True,
               use_detail_code=False, mlp_dim=2048, num_mlp_layers=4, n_expression=8) -> dict:
    return {
        "model": {
            "emodeca_type": "EmoDECA", "predict_expression": True, "predict_valence": True,
            "predict_arousal": True, "use_identity": use_identity, "use_expression": use_expression,
            "use_global_pose": use_global_pose, "use_jaw_pose": use_jaw_pose, "use_detail_code": use_detail_code,
            "mlp_norm_layer": "BatchNorm1d", "num_mlp_layers": num_mlp_layers, "mlp_dim": mlp_dim,
            "exp_activation": "log_softmax", "deca_checkpoint": "/placeholder/detail/checkpoints/x.ckpt",
            "deca_stage": "detail",
            "deca_cfg": {"model": {"n_shape": 100, "n_exp": 50, "n_detail": 128, "deca_class": "ExpDECA"}},
        },
        "data": {"n_expression": n_expression, "data_class": "AffectNetDataModule"},
        "inout": {"checkpoint_dir": "/placeholder/checkpoints"},
    }


def write_emorec_folder(root, name: str = "EMOCA-emorec", seed: int = 30, with_deca_copy: bool = True,
                        **cfg_kwargs) -> dict:
    """An emorec folder: ``cfg.yaml`` + ``checkpoints/*.ckpt`` (MLP under ``mlp.model.*``, optional
    ``deca.*`` copy). Returns ``{"dir", "cfg", "state_dict", "best"}``."""
    import yaml

    d = Path(root) / name
    (d / "checkpoints").mkdir(parents=True, exist_ok=True)
    cfg = emorec_cfg(**cfg_kwargs)
    (d / "cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    m = cfg["model"]
    in_size = (100 * m["use_identity"] + 50 * m["use_expression"] + 3 * m["use_global_pose"]
               + 3 * m["use_jaw_pose"] + 128 * m["use_detail_code"])
    state = random_state(emorec_mlp_keys(in_size, m["mlp_dim"], m["num_mlp_layers"],
                                         cfg["data"]["n_expression"] + 2), seed)
    if with_deca_copy:
        state.update(random_state(_linear("deca.deca.E_flame.layers.2", 236, 1024), seed + 1))
        state.update(_ignored_buffers(seed + 2))
        state = OrderedDict((("deca." + k if not k.startswith(("deca.", "mlp.")) else k), v) for k, v in state.items())
    names = ("emodeca-epoch=02-val_loss_total=1.50000000.ckpt", "emodeca-epoch=04-val_loss_total=1.20000000.ckpt")
    for i, n in enumerate(names):
        with _FakeModule():
            torch.save(_lightning_ckpt(state if i == 1 else {}, i, "emorec", True), d / "checkpoints" / n)
    with _FakeModule():
        torch.save(_lightning_ckpt({}, 9, "emorec", True), d / "checkpoints" / "last.ckpt")
    return {"dir": d, "cfg": cfg, "state_dict": state, "best": d / "checkpoints" / names[1]}
