"""DECA importer: ``deca_model.tar`` -> E_flame, E_detail, D_detail.

The file is a ``torch.save`` dict with the plain state dicts ``E_flame``, ``E_detail`` and
``D_detail`` (official key names, identical to ours); training snapshots may add ``opt`` and
``global_step``, which are ignored. Any other top-level entry or any key mismatch is an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from emoca_edge.training.models.deca import DECA_CODE_DIM, DETAIL_DIM, DETAIL_LATENT_DIM, DetailDecoder, ResnetEncoder
from .common import CheckpointError, file_record, get_state_dict, load_checkpoint, load_mapped

_PARTS = ("E_flame", "E_detail", "D_detail")
_IGNORED_TOP = ("opt", "global_step")


@dataclass
class DecaModules:
    """Imported DECA networks (eval mode): E_flame images -> 236-d code, E_detail images -> 128-d
    detail code, D_detail latent 181 -> (N, 1, 256, 256) displacement."""

    E_flame: nn.Module
    E_detail: nn.Module
    D_detail: nn.Module
    provenance: dict = field(default_factory=dict)


def import_deca(tar_path: str | os.PathLike) -> DecaModules:
    """Load ``deca_model.tar`` (weights-only) into fresh modules; see the module docstring."""
    p = Path(tar_path)
    ckpt = load_checkpoint(p, allow_objects=False)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{p}: expected a dict with keys {_PARTS}, found {type(ckpt).__name__}")
    unknown = sorted(str(k) for k in ckpt if k not in _PARTS and k not in _IGNORED_TOP)
    if unknown:
        raise CheckpointError(f"{p}: unexpected top-level entries {unknown} (expected {_PARTS}, optionally {_IGNORED_TOP})")
    modules = {"E_flame": ResnetEncoder(DECA_CODE_DIM), "E_detail": ResnetEncoder(DETAIL_DIM),
               "D_detail": DetailDecoder(DETAIL_LATENT_DIM)}
    for name, module in modules.items():
        sd = get_state_dict(ckpt, str(p), name)
        load_mapped(f"{p} [{name}]", sd, {"": module})
        module.eval()
    prov = {"importer": "deca", "files": [file_record(p)], "checkpoint": p.name}
    if isinstance(ckpt.get("global_step"), int):
        prov["global_step"] = ckpt["global_step"]
    return DecaModules(provenance=prov, **modules)
