"""Importers of official checkpoints into our PyTorch modules (``training.models``).

* :func:`import_deca` — DECA ``deca_model.tar``;
* :func:`import_emoca` — an EMOCA release folder (``cfg.yaml`` + Lightning checkpoints);
* :func:`import_smirk` — SMIRK ``SMIRK_em1.pt``;
* :func:`import_emorec` — EMOCA's emotion regressor folder.

Every importer maps keys explicitly, fails naming the file and the keys on any mismatch, and
returns a ``provenance`` dict (source files with sha256, selected checkpoint).
"""
from .common import CheckpointError
from .deca import DecaModules, import_deca
from .emoca import EmocaModules, import_emoca, select_best_checkpoint
from .emorec import EmorecModules, import_emorec
from .smirk import SmirkModules, import_smirk

__all__ = [
    "CheckpointError", "DecaModules", "EmocaModules", "EmorecModules", "SmirkModules", "import_deca",
    "import_emoca", "import_emorec", "import_smirk", "select_best_checkpoint",
]
