"""Shared dataset machinery: image reading with skip-and-report, EMOCA crop, sample dicts, collate."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from emoca_edge import crop as crop_mod

log = logging.getLogger("emoca_edge.training.data")

# Horizontal mirror of the 68-point iBUG layout (0-based): index i of the flipped face = FLIP68[i].
FLIP68 = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
                  + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
                  + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65], np.int64)


class BadSamples:
    """Records unreadable samples (reported once each, never fatal)."""

    def __init__(self):
        self.items: dict[str, str] = {}

    def report(self, key: str, reason: str) -> None:
        if key not in self.items:
            self.items[key] = reason
            log.warning("skipping sample: %s", reason)


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); raises ValueError naming the file if missing or undecodable."""
    if not path.is_file():
        raise ValueError(f"{path}: no such image file")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f"{path}: not a readable image (OpenCV could not decode it)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop_sample(image: np.ndarray, landmarks: np.ndarray | None, size: int, augmentation, rng) -> tuple:
    """EMOCA crop (``deca68``: box of the 68 landmarks, x1.1 then x1.25, similarity to size x size)
    composed with the augmentation's similarity; landmarks mapped exactly by the same transform.

    Without landmarks the central square of the image is used. Returns (crop uint8 (size, size, 3),
    landmarks (68, 2) crop pixels or None, flipped: bool)."""
    if landmarks is not None:
        t = crop_mod.crop_transform(landmarks, "deca68", size)
    else:
        h, w = image.shape[:2]
        t = crop_mod.square_transform(np.array([w / 2.0, h / 2.0]), float(min(h, w)), size)
    m = t.matrix
    flipped = False
    if augmentation is not None:
        aug, flipped = augmentation.similarity(size, rng)
        m = np.concatenate([aug[:, :2] @ m[:, :2], (aug[:, :2] @ m[:, 2:3]) + aug[:, 2:3]], 1)
    tr = crop_mod.CropTransform(m, crop_mod.invert_affine(m), size, t.center, t.box_size)
    out = crop_mod.warp(image, tr)
    lmk = None
    if landmarks is not None:
        lmk = crop_mod.apply(np.asarray(landmarks, np.float64)[:, :2], m)
        if flipped:
            lmk = lmk[FLIP68]
    if augmentation is not None:
        out = augmentation.photometric(out, rng)
    return out, lmk, flipped


def make_sample(img: np.ndarray, lmk, index: int, path: str, expression: int = -1, valence: float = -2.0,
                arousal: float = -2.0) -> dict:
    """Sample dict: ``image`` (3, S, S) float32 [0, 1]; ``landmarks`` (68, 3) float32 crop pixels +
    confidence (0 when absent); ``expression`` int64 (-1 missing); ``valence``/``arousal`` float32
    (-2 missing); ``index``; ``path``."""
    land = np.zeros((68, 3), np.float32)
    if lmk is not None:
        land[:, :2] = lmk
        land[:, 2] = 1.0
    return {"image": np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0),
            "landmarks": land, "expression": np.int64(expression), "valence": np.float32(valence),
            "arousal": np.float32(arousal), "index": np.int64(index), "path": path}


def collate_skip(samples):
    """Stack sample dicts into tensors, dropping the ``None`` of skipped samples (None if all were)."""
    import torch

    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        out[k] = vals if isinstance(vals[0], str) else torch.from_numpy(np.stack(vals))
    return out


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Per-sample generator: augmentations depend only on (seed, epoch, index), so any worker count
    and any resume point give the same images."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])
