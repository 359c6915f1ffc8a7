"""Unlabelled image folder for reconstruction training (e.g. VGGFace2 / VoxCeleb frames).

Every image under ``root`` (recursive; .jpg .jpeg .png .bmp .webp). Optional landmarks: a text file
with the image's stem and suffix ``.txt`` next to it holding 136 numbers (68 x, y pairs in image
pixels, separated by spaces, commas, semicolons or newlines); with them the image is cropped with
the ``deca68`` convention, without them the central square is used and the landmark confidence is 0.
Missing or corrupt images are reported and skipped.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .common import BadSamples, crop_sample, make_sample, read_image, sample_rng

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageFolderDataset:
    def __init__(self, root, size: int = 224, augmentation=None, seed: int = 0, max_samples: int | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: image folder not found")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if max_samples is not None:
            self.files = self.files[:max_samples]
        if not self.files:
            raise ValueError(f"{self.root}: no images ({', '.join(EXTENSIONS)}) found")
        self.size, self.augmentation, self.seed, self.epoch = int(size), augmentation, int(seed), 0
        self.bad = BadSamples()

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _landmarks(self, path: Path):
        side = path.with_suffix(".txt")
        if not side.is_file():
            return None
        try:
            vals = [float(x) for x in re.split(r"[\s,;]+", side.read_text().strip()) if x]
        except ValueError as e:
            raise ValueError(f"{side}: landmarks must be 136 numbers ({e})")
        if len(vals) != 136 or not np.all(np.isfinite(vals)):
            raise ValueError(f"{side}: {len(vals)} landmark numbers, expected 136 (68 x, y pairs)")
        return np.asarray(vals, np.float64).reshape(68, 2)

    def __getitem__(self, index: int):
        path = self.files[index]
        try:
            img = read_image(path)
            lmk = self._landmarks(path)
            crop, lmk_c, _ = crop_sample(img, lmk, self.size, self.augmentation,
                                         sample_rng(self.seed, self.epoch, index))
        except ValueError as e:
            self.bad.report(str(path), str(e))
            return None
        return make_sample(crop, lmk_c, index, str(path.relative_to(self.root)))
