"""Augmentations of EMOCA's default training config, on uint8 RGB crops.

Geometric (one similarity, composed with the crop so the image is warped once and the landmarks
are mapped exactly): scale in [0.9, 1.1], rotation in [-10, 10] degrees, translation in
[-5, 5] % of the crop side, optional horizontal flip (off by default, as in EMOCA).
Photometric: one of JPEG compression (quality 50-90), additive Gaussian noise (sigma 0-10 grey
levels), Gaussian blur (sigma 0-1.5), sharpening (alpha 0-0.5), identity, chosen uniformly.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


class Augmentation:
    def __init__(self, scale=(0.9, 1.1), rotate=(-10.0, 10.0), translate=(-0.05, 0.05), flip: bool = False,
                 photometric: bool = True):
        self.scale, self.rotate, self.translate = tuple(scale), tuple(rotate), tuple(translate)
        self.flip = bool(flip)
        self.use_photometric = bool(photometric)

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Augmentation | None":
        if not cfg or not cfg.get("enabled", True):
            return None
        keys = ("scale", "rotate", "translate", "flip", "photometric")
        return cls(**{k: cfg[k] for k in keys if k in cfg})

    def similarity(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        """(2, 3) crop-pixel similarity about the crop centre, and whether it mirrors."""
        s = rng.uniform(*self.scale)
        a = math.radians(rng.uniform(*self.rotate))
        tx, ty = rng.uniform(*self.translate, size=2) * size
        flip = bool(self.flip and rng.random() < 0.5)
        c = size / 2.0
        r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * s
        if flip:
            r = r @ np.diag([-1.0, 1.0])
        t = np.array([c + tx, c + ty]) - r @ np.array([c, c])
        return np.concatenate([r, t[:, None]], 1), flip

    def photometric(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.use_photometric:
            return img
        k = int(rng.integers(0, 5))
        if k == 0:
            q = int(rng.integers(50, 91))
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
            return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else img
        if k == 1:
            sigma = rng.uniform(0, 10)
            return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
        if k == 2:
            sigma = rng.uniform(0, 1.5)
            return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0.05 else img
        if k == 3:
            alpha = rng.uniform(0, 0.5)
            kernel = np.array([[-1, -1, -1], [-1, 9, -1], [-1, -1, -1]], np.float32)
            sharp = cv2.filter2D(img.astype(np.float32), -1, kernel)
            return np.clip((1 - alpha) * img + alpha * sharp, 0, 255).astype(np.uint8)
        return img
