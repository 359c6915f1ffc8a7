"""Emotion losses: EMOCA's emotion consistency and the emotion-recognition training losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def emotion_consistency(features_input: torch.Tensor, features_render: torch.Tensor) -> torch.Tensor:
    """MSE between the pooled emotion features (N, D) of the input image (target, no gradient) and
    of the rendered reconstruction (EMOCA's emotion loss; the official default feature is the
    network's last pooled layer and the weight is set in the config)."""
    return F.mse_loss(features_render, features_input.detach())


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - CCC(pred, target) over the batch (population moments); pred, target (N,)."""
    mp, mt = pred.mean(), target.mean()
    vp, vt = pred.var(unbiased=False), target.var(unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean()
    return 1.0 - 2.0 * cov / (vp + vt + (mp - mt) ** 2 + 1e-8)


def emotion_recognition_loss(out: dict, expression: torch.Tensor, valence: torch.Tensor, arousal: torch.Tensor,
                             weights: dict, logits_are_log_probs: bool = False) -> dict:
    """Losses of the emotion networks (image network and 3D-parameter regressor).

    out: ``expression_logits`` (N, C), ``valence`` (N,), ``arousal`` (N,). expression: (N,) int64,
    -1 = missing; valence/arousal: (N,) in [-1, 1], values < -1.5 (AffectNet's -2) = missing.
    weights: ``expression`` (CE), ``valence_mse``, ``arousal_mse``, ``valence_ccc``, ``arousal_ccc``.
    Returns a dict of weighted terms and ``total``.
    """
    terms = {}
    ref = out["valence"] if "valence" in out else out["expression_logits"]
    zero = ref.sum() * 0.0
    logits = out.get("expression_logits")
    if logits is not None and weights.get("expression", 0):
        ok = expression >= 0
        if ok.any():
            if logits_are_log_probs:
                ce = F.nll_loss(logits[ok], expression[ok])
            else:
                ce = F.cross_entropy(logits[ok], expression[ok])
            terms["expression_ce"] = ce * weights["expression"]
    for name, gt in (("valence", valence), ("arousal", arousal)):
        if name not in out:
            continue
        ok = gt > -1.5
        if ok.sum() == 0:
            continue
        p, t = out[name][ok], gt[ok]
        if weights.get(f"{name}_mse", 0):
            terms[f"{name}_mse"] = F.mse_loss(p, t) * weights[f"{name}_mse"]
        if weights.get(f"{name}_ccc", 0) and int(ok.sum()) >= 2:
            terms[f"{name}_ccc"] = ccc_loss(p, t) * weights[f"{name}_ccc"]
    terms["total"] = sum(terms.values(), zero)
    return terms
