"""Photometric loss and code regularisers (DECA / EMOCA)."""
from __future__ import annotations

import torch


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over all elements of mask * |pred - target| (DECA's 'mean' normalisation).

    pred, target: (N, C, H, W) images in [0, 1]; mask: (N, 1, H, W) in [0, 1] (rendered face
    region times an optional skin segmentation)."""
    return (mask * (pred - target).abs()).mean()


def code_regulariser(code: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """sum((code - reference)^2) / 2 (DECA's expression / shape regulariser, summed over the batch)."""
    d = code if reference is None else code - reference
    return (d * d).sum() / 2.0
