"""EMOCA importer: a released model folder -> E_flame, E_expression, E_detail, D_detail.

Folder layout (as released): ``<dir>/cfg.yaml`` (sections ``coarse`` and ``detail``, each with
``model``, ``learning``, ``inout``, ``data``) and PyTorch-Lightning checkpoints under
``<dir>/<stage>/checkpoints/**.ckpt``. The checkpoint is chosen as the official loader does in
"best" mode (:func:`select_best_checkpoint`). Weights are in ``ckpt["state_dict"]`` with prefix
``deca.``.

Numerically relevant switches read from ``cfg.yaml`` (``<stage>.model``):

* ``deca_class``: ``ExpDECA`` (EMOCA: adds ``E_expression``) or ``DECA`` (no ``E_expression``);
* ``expression_backbone``: only ``deca_clone`` (a full ResNet-50 regressor) is supported;
* ``exp_deca_jaw_pose`` / ``exp_deca_global_pose``: ``E_expression`` outputs ``n_exp`` values, then
  3 global-pose values if ``exp_deca_global_pose``, then 3 jaw values if ``exp_deca_jaw_pose``
  (both: 6 = global then jaw). Those replace E_flame's pose parts (see ``config["expression_layout"]``);
* ``n_shape``, ``n_tex``, ``n_exp``, ``n_pose``, ``n_cam``, ``n_light``: E_flame output layout;
* ``n_detail`` (+ ``n_detail_emo``) and ``detail_conditioning`` (default jawpose, expression,
  detail): D_detail input = concat of globalpose 3, jawpose 3, identity n_shape, expression n_exp,
  detail code — in this fixed order, each only if listed;
* ``use_texture``, ``e_flame_type`` / ``e_detail_type`` (must be ResNet), ``detail_conditioning_type``
  (must be concat).

Ignored checkpoint keys (documented buffers and training-only networks), everything else unmapped
is an error: see :data:`IGNORED_KEYS`. With ``stage="coarse"`` the detail networks in the
checkpoint are ignored too and ``E_detail`` / ``D_detail`` are ``None``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from torch import nn

from emoca_edge.training.models.deca import DetailDecoder, ResnetEncoder
from .common import (CheckpointError, file_record, get_state_dict, load_checkpoint, load_mapped, require_dir,
                     require_file)

IGNORED_KEYS = (
    "deca.flame.*", "deca.flametex.*", "deca.render.*", "deca.uv_face_eye_mask", "deca.uv_face_mask",
    "deca.displacement_mask", "deca.fixed_uv_dis", "deca.perceptual_loss.*", "deca.id_loss.*",
    "deca.vgg_loss.*", "deca.face_attr_mask", "deca.image_translator.*",
    "emonet_loss.*", "au_loss.*", "lipread_loss.*", "emotion_mlp.*",
)
_DETAIL_KEYS = ("deca.E_detail.*", "deca.D_detail.*")
_SUPPORTED_CONDITIONING = ("globalpose", "jawpose", "identity", "expression", "detail", "detailemo")


@dataclass
class EmocaModules:
    """Imported EMOCA networks (eval mode) and the switches needed to combine their outputs."""

    E_flame: nn.Module
    E_expression: nn.Module | None
    E_detail: nn.Module | None
    D_detail: nn.Module | None
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def _loss_value(stem: str) -> float | None:
    try:
        return float(stem[stem.rfind("=") + 1:])
    except ValueError:
        return None


def select_best_checkpoint(ckpt_dir: str | os.PathLike) -> Path:
    """The official "best" pick: among ``ckpt_dir/**/*.ckpt`` (sorted by path), skipping ``last.ckpt``
    and names without a number after their last ``=``, the smallest number after the last ``=`` of
    the file name (stem); on ties, the later one in sorted order."""
    d = require_dir(Path(ckpt_dir), "checkpoint folder")
    checkpoints = sorted(d.rglob("*.ckpt"))
    if not checkpoints:
        raise CheckpointError(f"{d}: no *.ckpt checkpoint found")
    best, best_value = None, float("inf")
    for c in checkpoints:
        if c.stem == "last":
            continue
        v = _loss_value(c.stem)
        if v is None:
            continue
        if v <= best_value:
            best, best_value = c, v
    if best is None:
        raise CheckpointError(f"{d}: no checkpoint with a loss value after '=' in its name "
                              f"(found: {', '.join(str(c.relative_to(d)) for c in checkpoints)})")
    return best


def _as_bool(cfg: dict, key: str, default: bool, source: str) -> bool:
    v = cfg.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise CheckpointError(f"{source}: model.{key} must be true/false, found {v!r}")
    return v


def _as_int(cfg: dict, key: str, default: int, source: str) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise CheckpointError(f"{source}: model.{key} must be a non-negative integer, found {v!r}")
    return v


def read_emoca_config(cfg_path: Path, stage: str) -> dict:
    """The numerically relevant switches of ``cfg.yaml[stage].model`` (see the module docstring)."""
    require_file(cfg_path, "EMOCA config cfg.yaml")
    try:
        conf = yaml.safe_load(cfg_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not valid YAML ({e})") from e
    src = f"{cfg_path} [{stage}]"
    if not isinstance(conf, dict) or not isinstance(conf.get(stage), dict):
        raise CheckpointError(f"{cfg_path}: missing section {stage!r} (expected sections 'coarse' and 'detail')")
    model = conf[stage].get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"{src}: missing 'model' section")
    c = {"stage": stage}
    c["deca_class"] = model.get("deca_class") or "DECA"
    if c["deca_class"] not in ("DECA", "ExpDECA"):
        raise CheckpointError(f"{src}: unsupported model.deca_class {c['deca_class']!r} (DECA or ExpDECA)")
    for k in ("e_flame_type", "e_detail_type"):
        if model.get(k, "ResnetEncoder") != "ResnetEncoder":
            raise CheckpointError(f"{src}: unsupported model.{k} {model.get(k)!r} (only ResnetEncoder)")
    if str(model.get("detail_conditioning_type", "concat")).lower() != "concat":
        raise CheckpointError(f"{src}: unsupported model.detail_conditioning_type "
                              f"{model.get('detail_conditioning_type')!r} (only concat)")
    for k, d in (("n_shape", 100), ("n_tex", 50), ("n_exp", 50), ("n_pose", 6), ("n_cam", 3), ("n_light", 27),
                 ("n_detail", 128), ("n_detail_emo", 0)):
        c[k] = _as_int(model, k, d, src)
    if (c["n_pose"], c["n_cam"], c["n_light"]) != (6, 3, 27):
        raise CheckpointError(f"{src}: unsupported n_pose/n_cam/n_light {c['n_pose']}/{c['n_cam']}/{c['n_light']} "
                              f"(expected 6/3/27)")
    c["use_texture"] = _as_bool(model, "use_texture", True, src)
    c["exp_deca_jaw_pose"] = _as_bool(model, "exp_deca_jaw_pose", False, src)
    c["exp_deca_global_pose"] = _as_bool(model, "exp_deca_global_pose", False, src)
    cond = model.get("detail_conditioning", ["jawpose", "expression", "detail"])
    if isinstance(cond, str):
        cond = [cond]
    if not isinstance(cond, list) or any(x not in _SUPPORTED_CONDITIONING for x in cond):
        raise CheckpointError(f"{src}: model.detail_conditioning must be a list from {_SUPPORTED_CONDITIONING}, "
                              f"found {cond!r}")
    c["detail_conditioning"] = list(cond)
    # Fixed concatenation order of the official code (independent of the list order).
    layout = []
    for name, size in (("globalpose", 3), ("jawpose", 3), ("identity", c["n_shape"]), ("expression", c["n_exp"]),
                       ("detail", c["n_detail"]), ("detailemo", c["n_detail_emo"])):
        if name in cond:
            layout.append((name, size))
    c["detail_latent_layout"] = layout
    c["detail_latent_dim"] = sum(s for _, s in layout)
    c["e_flame_out"] = c["n_shape"] + c["n_tex"] + c["n_exp"] + 6 + 3 + 27
    if c["deca_class"] == "ExpDECA":
        backbone = model.get("expression_backbone", "deca_clone")
        if backbone != "deca_clone":
            raise CheckpointError(f"{src}: unsupported model.expression_backbone {backbone!r} (only deca_clone)")
        c["expression_backbone"] = backbone
        exp_layout = [("expression", c["n_exp"])]
        if c["exp_deca_global_pose"]:
            exp_layout.append(("global_pose", 3))
        if c["exp_deca_jaw_pose"]:
            exp_layout.append(("jaw_pose", 3))
        c["expression_layout"] = exp_layout
        c["e_expression_out"] = sum(s for _, s in exp_layout)
    else:
        c["expression_backbone"] = None
        c["expression_layout"] = []
        c["e_expression_out"] = 0
    return c


def import_emoca(model_dir: str | os.PathLike, stage: str = "detail") -> EmocaModules:
    """Import an EMOCA release folder; ``stage`` selects ``cfg.yaml[stage]`` and ``<dir>/<stage>/checkpoints``."""
    if stage not in ("coarse", "detail"):
        raise ValueError(f"import_emoca: stage must be 'coarse' or 'detail', got {stage!r}")
    d = require_dir(Path(model_dir), "EMOCA model folder")
    cfg_path = d / "cfg.yaml"
    config = read_emoca_config(cfg_path, stage)
    ckpt_path = select_best_checkpoint(d / stage / "checkpoints")
    ckpt = load_checkpoint(ckpt_path, allow_objects=True)
    state = get_state_dict(ckpt, str(ckpt_path), "state_dict")

    targets: dict[str, nn.Module] = {"deca.E_flame.": ResnetEncoder(config["e_flame_out"])}
    E_expression = E_detail = D_detail = None
    if config["deca_class"] == "ExpDECA":
        E_expression = targets["deca.E_expression."] = ResnetEncoder(config["e_expression_out"])
    ignore = list(IGNORED_KEYS)
    if stage == "detail":
        E_detail = targets["deca.E_detail."] = ResnetEncoder(config["n_detail"] + config["n_detail_emo"])
        D_detail = targets["deca.D_detail."] = DetailDecoder(config["detail_latent_dim"])
    else:
        ignore += list(_DETAIL_KEYS)
    ignored = load_mapped(str(ckpt_path), state, targets, ignore=ignore)
    for m in targets.values():
        m.eval()
    prov = {
        "importer": "emoca",
        "stage": stage,
        "files": [file_record(cfg_path, d), file_record(ckpt_path, d)],
        "checkpoint": str(ckpt_path.relative_to(d)),
        "ignored_key_count": len(ignored),
    }
    if isinstance(ckpt, dict):
        for k in ("epoch", "global_step", "pytorch-lightning_version"):
            if isinstance(ckpt.get(k), (int, str)):
                prov[k] = ckpt[k]
    return EmocaModules(E_flame=targets["deca.E_flame."], E_expression=E_expression, E_detail=E_detail,
                        D_detail=D_detail, config=config, provenance=prov)
