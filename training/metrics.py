"""Evaluation metrics of emotion recognition as EMOCA reports them (NumPy, float64).

All functions take 1-D arrays of equal length N (predictions first, ground truth second) and
return Python floats. Valence and arousal live in [-1, 1].

* ``accuracy``: fraction of predicted class indices (or argmax of (N, C) scores) equal to the labels.
* ``pcc``: Pearson correlation coefficient, cov(x, y) / (std(x) std(y)) (population moments).
* ``ccc``: concordance correlation coefficient (Lin 1989),
  2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2), population moments.
* ``rmse``: sqrt(mean((x - y)^2)).
* ``sagr``: sign agreement, mean(sign(x) == sign(y)) (AffectNet / EMOCA; sign(0) = 0).
"""
from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "pcc", "ccc", "rmse", "sagr", "emotion_metrics"]


def _pair(pred, target, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64).reshape(-1)
    y = np.asarray(target, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{name}: predictions ({x.size}) and targets ({y.size}) differ in length")
    if x.size == 0:
        raise ValueError(f"{name}: empty input")
    return x, y


def accuracy(pred, labels) -> float:
    """pred: (N,) class indices or (N, C) scores (argmax taken); labels: (N,) integers."""
    p = np.asarray(pred)
    if p.ndim == 2:
        p = p.argmax(axis=1)
    lab = np.asarray(labels).reshape(-1)
    if p.reshape(-1).shape != lab.shape or lab.size == 0:
        raise ValueError(f"accuracy: {p.shape} predictions vs {lab.shape} labels")
    return float(np.mean(p.reshape(-1).astype(np.int64) == lab.astype(np.int64)))


def pcc(pred, target) -> float:
    x, y = _pair(pred, target, "pcc")
    xm, ym = x - x.mean(), y - y.mean()
    den = np.sqrt((xm * xm).sum() * (ym * ym).sum())
    return float((xm * ym).sum() / den) if den > 0 else 0.0


def ccc(pred, target) -> float:
    x, y = _pair(pred, target, "ccc")
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    den = x.var() + y.var() + (mx - my) ** 2
    return float(2.0 * cov / den) if den > 0 else 1.0


def rmse(pred, target) -> float:
    x, y = _pair(pred, target, "rmse")
    return float(np.sqrt(np.mean((x - y) ** 2)))


def sagr(pred, target) -> float:
    x, y = _pair(pred, target, "sagr")
    return float(np.mean(np.sign(x) == np.sign(y)))


def emotion_metrics(logits=None, labels=None, valence=None, valence_gt=None, arousal=None,
                    arousal_gt=None) -> dict:
    """All metrics available from the given predictions; entries whose ground truth is missing
    (label < 0, valence/arousal < -1.5, i.e. AffectNet's -2) are left out per metric."""
    out = {}
    if logits is not None and labels is not None:
        lab = np.asarray(labels).reshape(-1)
        ok = lab >= 0
        if ok.any():
            out["accuracy"] = accuracy(np.asarray(logits)[ok], lab[ok])
    for name, p, t in (("valence", valence, valence_gt), ("arousal", arousal, arousal_gt)):
        if p is None or t is None:
            continue
        p = np.asarray(p, np.float64).reshape(-1)
        t = np.asarray(t, np.float64).reshape(-1)
        ok = t > -1.5
        if ok.sum() >= 2:
            for fn in (ccc, pcc, rmse, sagr):
                out[f"{name}_{fn.__name__}"] = fn(p[ok], t[ok])
    return out
