"""SMIRK importer: ``SMIRK_em1.pt`` (flat state dict) -> :class:`SmirkEncoder`.

Keys ``smirk_encoder.<ours>`` map to our encoder; ``smirk_generator.*`` (the image generator used
only for training and demos) is ignored; anything else is an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from emoca_edge.training.models.smirk import SmirkEncoder
from .common import file_record, get_state_dict, load_checkpoint, load_mapped

IGNORED_KEYS = ("smirk_generator.*",)


@dataclass
class SmirkModules:
    """Imported SMIRK encoder (eval mode) and provenance."""

    encoder: nn.Module
    provenance: dict = field(default_factory=dict)


def import_smirk(pt_path: str | os.PathLike) -> SmirkModules:
    """Load ``SMIRK_em1.pt`` (weights-only) into a fresh :class:`SmirkEncoder` (shape 300, expression 50)."""
    p = Path(pt_path)
    state = get_state_dict(load_checkpoint(p, allow_objects=False), str(p))
    enc = SmirkEncoder()
    ignored = load_mapped(str(p), state, {"smirk_encoder.": enc}, ignore=IGNORED_KEYS)
    enc.eval()
    return SmirkModules(encoder=enc, provenance={"importer": "smirk", "files": [file_record(p)],
                                                 "checkpoint": p.name, "ignored_key_count": len(ignored)})
