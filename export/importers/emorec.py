"""Importer of EMOCA's emotion regressor on 3D parameters (EMOCA-emorec folders).

Folder: ``<dir>/cfg.yaml`` and ``<dir>/checkpoints/**.ckpt`` (Lightning; best pick as in
:func:`select_best_checkpoint`). The MLP head is ``state_dict["mlp.model.*"]``; released files may
also carry the whole reconstruction network under ``deca.*``, which is ignored (import it from its
own EMOCA folder). Anything else is an error.

Read from ``cfg.yaml`` (``model`` section): ``use_identity``, ``use_expression``, ``use_global_pose``,
``use_jaw_pose``, ``use_detail_code`` (input order is fixed: identity, expression, global pose, jaw
pose, detail code), widths from ``model.deca_cfg.model`` (``n_shape``, ``n_exp``, ``n_detail``),
``mlp_dim`` or ``mlp_dimension_factor`` (default: input width), ``num_mlp_layers``,
``mlp_norm_layer`` (BatchNorm1d or none), ``predict_expression/valence/arousal``,
``data.n_expression`` (default 9 as in the official code), and the activations ``exp_activation``
(default log_softmax), ``v_activation``, ``a_activation`` (default none).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from torch import nn

from emoca_edge.training.models.emorec import EmoRecMLP
from .common import (CheckpointError, file_record, get_state_dict, load_checkpoint, load_mapped, require_dir,
                     require_file)
from .emoca import select_best_checkpoint

IGNORED_KEYS = ("deca.*",)
_ACTIVATION_NAMES = {None: "none", "none": "none", "None": "none", "log_softmax": "log_softmax",
                     "softmax": "softmax", "tanh": "tanh", "sigmoid": "sigmoid"}


@dataclass
class EmorecModules:
    """Imported emotion MLP (eval mode), its input/output configuration and provenance."""

    mlp: nn.Module
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def read_emorec_config(cfg_path: Path) -> dict:
    """Switches of an emorec ``cfg.yaml`` needed to rebuild and feed the MLP (see module docstring)."""
    require_file(cfg_path, "emotion regressor config cfg.yaml")
    try:
        conf = yaml.safe_load(cfg_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not valid YAML ({e})") from e
    if not isinstance(conf, dict) or not isinstance(conf.get("model"), dict):
        raise CheckpointError(f"{cfg_path}: missing 'model' section")
    m = conf["model"]
    data = conf.get("data") if isinstance(conf.get("data"), dict) else {}
    etype = m.get("emodeca_type", "EmoDECA")
    if etype != "EmoDECA":
        raise CheckpointError(f"{cfg_path}: unsupported model.emodeca_type {etype!r} (only EmoDECA)")
    if m.get("use_emonet") or m.get("predict_AUs") or m.get("use_detail_emo_code"):
        raise CheckpointError(f"{cfg_path}: unsupported switches (use_emonet / predict_AUs / use_detail_emo_code)")
    if "use_mlp" in m and not m["use_mlp"]:
        raise CheckpointError(f"{cfg_path}: model.use_mlp is false: no MLP head to import")
    deca_model = ((m.get("deca_cfg") or {}).get("model") or {}) if isinstance(m.get("deca_cfg"), dict) else {}
    widths = {"shape": int(deca_model.get("n_shape", 100)), "expression": int(deca_model.get("n_exp", 50)),
              "global_pose": 3, "jaw_pose": 3, "detail": int(deca_model.get("n_detail", 128))}
    flags = {"shape": "use_identity", "expression": "use_expression", "global_pose": "use_global_pose",
             "jaw_pose": "use_jaw_pose", "detail": "use_detail_code"}
    inputs = {name: widths[name] for name, flag in flags.items() if bool(m.get(flag, False))}
    if not inputs:
        raise CheckpointError(f"{cfg_path}: no input enabled (use_identity/use_expression/... all false)")
    in_size = sum(inputs.values())
    if m.get("mlp_dimension_factor") is not None:
        hidden = int(in_size * m["mlp_dimension_factor"])
    elif m.get("mlp_dim") is not None:
        hidden = int(m["mlp_dim"])
    else:
        hidden = in_size
    norm = m.get("mlp_norm_layer")
    if norm not in (None, "BatchNorm1d", "None", "none"):
        raise CheckpointError(f"{cfg_path}: unsupported model.mlp_norm_layer {norm!r} (BatchNorm1d or none)")
    acts = {}
    for key, default in (("exp_activation", "log_softmax"), ("v_activation", None), ("a_activation", None)):
        v = m.get(key, default)
        if v not in _ACTIVATION_NAMES:
            raise CheckpointError(f"{cfg_path}: unsupported model.{key} {v!r} (one of {sorted(map(str, _ACTIVATION_NAMES))})")
        acts[key] = _ACTIVATION_NAMES[v]
    n_expression = int(data.get("n_expression", 9)) if m.get("predict_expression", True) else 0
    return {
        "input_dims": inputs,
        "input_order": list(inputs),
        "hidden": hidden,
        "num_layers": int(m.get("num_mlp_layers", 1)),
        "batch_norm": norm == "BatchNorm1d",
        "n_expression": n_expression,
        "predict_valence": bool(m.get("predict_valence", True)),
        "predict_arousal": bool(m.get("predict_arousal", True)),
        **acts,
    }


def import_emorec(emorec_dir: str | os.PathLike) -> EmorecModules:
    """Import an emorec folder into :class:`EmoRecMLP` (keys ``mlp.model.N.*`` -> ``model.N.*``)."""
    d = require_dir(Path(emorec_dir), "emotion regressor folder")
    cfg_path = d / "cfg.yaml"
    config = read_emorec_config(cfg_path)
    ckpt_path = select_best_checkpoint(d / "checkpoints")
    ckpt = load_checkpoint(ckpt_path, allow_objects=True)
    state = get_state_dict(ckpt, str(ckpt_path), "state_dict")
    mlp = EmoRecMLP(**{k: config[k] for k in ("input_dims", "hidden", "num_layers", "batch_norm", "n_expression",
                                              "predict_valence", "predict_arousal", "exp_activation",
                                              "v_activation", "a_activation")})
    ignored = load_mapped(str(ckpt_path), state, {"mlp.": mlp}, ignore=IGNORED_KEYS)
    mlp.eval()
    prov = {"importer": "emorec", "files": [file_record(cfg_path, d), file_record(ckpt_path, d)],
            "checkpoint": str(ckpt_path.relative_to(d)), "ignored_key_count": len(ignored)}
    return EmorecModules(mlp=mlp, config=config, provenance=prov)
