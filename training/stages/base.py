"""Common machinery of the training targets (see ``training/trainer.py`` for the loop)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from emoca_edge.training.data import AffectNetDataset, Augmentation, ImageFolderDataset


class Stage:
    """A training target. Subclasses set ``self.nets`` (name -> module, all checkpointed), list the
    trainable ones in ``self.trainable`` and implement :meth:`training_step` and :meth:`validate`."""

    name = ""

    def __init__(self, cfg: dict, data_dir, device: str):
        self.cfg, self.data_dir, self.device = cfg, Path(data_dir), torch.device(device)
        self.nets: dict[str, nn.Module] = {}
        self.trainable: list[str] = []

    # ------------------------------------------------------------------ data
    def datasets(self):
        d = self.cfg["data"]
        aug = Augmentation.from_config(d.get("augmentation"))
        seed = int(self.cfg["train"].get("seed", 0))
        image_dir = d.get("image_dir")
        if image_dir is not None:
            image_dir = Path(image_dir) if Path(image_dir).is_absolute() else self.data_dir / image_dir
        if d["format"] == "affectnet":
            train = AffectNetDataset(self.data_dir, d.get("train_split", "training"), image_dir=image_dir,
                                     augmentation=aug, seed=seed, max_samples=d.get("max_samples"))
            val = None
            vs = d.get("val_split", "validation")
            if vs and (self.data_dir / f"{vs}.csv").is_file():
                val = AffectNetDataset(self.data_dir, vs, image_dir=image_dir, augmentation=None, seed=seed,
                                       max_samples=self.cfg["train"].get("val_max_samples"))
            return train, val
        if d["format"] == "folder":
            return ImageFolderDataset(image_dir or self.data_dir, augmentation=aug, seed=seed,
                                      max_samples=d.get("max_samples")), None
        raise ValueError(f"data.format {d['format']!r}: expected 'affectnet' or 'folder'")

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    # ------------------------------------------------------------------ modules
    def modules(self) -> dict[str, nn.Module]:
        return self.nets

    def trainable_parameters(self) -> list:
        return [p for n in self.trainable for p in self.nets[n].parameters() if p.requires_grad]

    def _place(self) -> None:
        for name, m in self.nets.items():
            m.to(self.device)
            if name not in self.trainable:
                m.requires_grad_(False)

    def train_mode(self) -> None:
        freeze_bn = bool(self.cfg["train"].get("freeze_batchnorm", False))
        for name, m in self.nets.items():
            m.train(name in self.trainable)
            if freeze_bn and name in self.trainable:
                for sub in m.modules():
                    if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                        sub.eval()

    def eval_mode(self) -> None:
        for m in self.nets.values():
            m.eval()

    def extra_state(self) -> dict:
        return {}

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict):
        raise NotImplementedError

    def validate(self, batches) -> dict:
        raise NotImplementedError
