"""Landmark losses on the 68-point (iBUG/FAN) layout, points in crop pixels or NDC (any common unit).

``pred`` (N, 68, 2) and ``target`` (N, 68, 2) or (N, 68, 3) with a confidence in the last column
(1 where absent). All losses are L1-type and return a scalar tensor.

* :func:`weighted_landmark_loss`: per-point weighted L1, DECA's weights (jaw 5-6 and 10-11 x2, nose
  x1.5 with tip and wings x3, mouth x1.5 with corners x3), normalised by 2 * sum of weights x confidence.
* :func:`eye_closure_loss` (DECA "eyed"): |d_pred - d_gt| of the upper-lower eyelid distances
  (pairs 37-41, 38-40, 43-47, 44-46, 0-based).
* :func:`lip_closure_loss` (DECA "lipd"): the same for the inner lips (61-67, 62-66, 63-65).
* :func:`mouth_loss`: mouth-corner distances (48-54 outer, 60-64 inner, EMOCA) plus the weighted
  L1 restricted to the 20 mouth points 48..67.
* :func:`relative_landmark_loss`: distances of mouth points to the chin and nose (57-8, 51-33) and
  across the mouth (48-54, 60-64, 61-67, 62-66, 63-65), so the mouth is placed relative to the face.
"""
from __future__ import annotations

import torch

EYE_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
MOUTH_CORNER_PAIRS = ((48, 54), (60, 64))
RELATIVE_PAIRS = ((57, 8), (51, 33), (48, 54), (60, 64), (61, 67), (62, 66), (63, 65))
MOUTH = tuple(range(48, 68))


def landmark_weights(device=None, dtype=torch.float32) -> torch.Tensor:
    """DECA's 68 per-landmark weights (see module docstring)."""
    w = torch.ones(68, dtype=dtype, device=device)
    w[5:7] = 2
    w[10:12] = 2
    w[27:36] = 1.5
    w[[30, 31, 35]] = 3
    w[48:68] = 1.5
    w[[48, 54]] = 3
    return w


def _split(target: torch.Tensor):
    if target.shape[-1] == 3:
        return target[..., :2], target[..., 2]
    return target, torch.ones(target.shape[:-1], dtype=target.dtype, device=target.device)


def weighted_landmark_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                           points=None) -> torch.Tensor:
    """sum_i w_i c_i (|dx_i| + |dy_i|) / (2 sum_i w_i c_i + 1e-8) over the batch (``points``: subset)."""
    xy, conf = _split(target)
    w = landmark_weights(pred.device, pred.dtype) if weights is None else weights.to(pred)
    w = w.unsqueeze(0) * conf
    if points is not None:
        idx = torch.as_tensor(points, device=pred.device)
        pred, xy, w = pred[:, idx], xy[:, idx], w[:, idx]
    diff = (pred[..., :2] - xy).abs().sum(-1)
    return (diff * w).sum() / (2.0 * w.sum() + 1e-8)


def _pair_distances(points: torch.Tensor, pairs) -> torch.Tensor:
    p = torch.as_tensor(pairs, device=points.device)
    d = points[:, p[:, 0], :2] - points[:, p[:, 1], :2]
    return torch.sqrt((d * d).sum(-1) + 1e-12)


def closure_loss(pred: torch.Tensor, target: torch.Tensor, pairs) -> torch.Tensor:
    """mean |dist_pred - dist_gt| over the point pairs and the batch (confidence of the pair = min)."""
    xy, conf = _split(target)
    p = torch.as_tensor(pairs, device=pred.device)
    c = torch.minimum(conf[:, p[:, 0]], conf[:, p[:, 1]])
    diff = (_pair_distances(pred, pairs) - _pair_distances(xy, pairs)).abs()
    return (diff * c).sum() / (c.sum() + 1e-8)


def eye_closure_loss(pred, target) -> torch.Tensor:
    return closure_loss(pred, target, EYE_PAIRS)


def lip_closure_loss(pred, target) -> torch.Tensor:
    return closure_loss(pred, target, LIP_PAIRS)


def mouth_loss(pred, target) -> torch.Tensor:
    return closure_loss(pred, target, MOUTH_CORNER_PAIRS) + weighted_landmark_loss(pred, target, points=MOUTH)


def relative_landmark_loss(pred, target) -> torch.Tensor:
    return closure_loss(pred, target, RELATIVE_PAIRS)
