"""Face tracking across video frames and One-Euro smoothing of per-track outputs.

Tracking reuses each face's landmarks from the previous frame to place its landmark region in
the next one, so the detector only runs on the first frame, every ``detect_every`` frames, and
when a track is lost. Identities are kept by matching boxes (intersection over union).

The One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) is a low-pass filter whose cut-off rises
with the signal's speed: still faces are smoothed strongly (less jitter), moving faces lightly
(less lag). ``min_cutoff`` (Hz) sets the smoothing at rest (smaller = smoother), ``beta`` how fast
the cut-off grows with speed (units of the signal per second), ``d_cutoff`` (Hz) the cut-off of
the speed estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SmoothingConfig:
    """One-Euro parameters shared by all smoothed outputs of a track.

    ``min_cutoff`` and ``d_cutoff`` in Hz; ``beta`` in 1/(signal unit). ``beta`` is applied to the
    speed of each channel in its own units: landmark pixels, pose radians/millimetres, scores.
    """

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    @classmethod
    def from_strength(cls, strength: float) -> "SmoothingConfig | None":
        """A preset from one number: 0 = off (None), 1 = default, larger = smoother."""
        if strength is None or strength <= 0:
            return None
        return cls(min_cutoff=1.0 / strength, beta=0.05 / strength, d_cutoff=1.0)


def _alpha(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over arrays of any fixed shape (each element filtered independently)."""

    def __init__(self, config: SmoothingConfig):
        self.config = config
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def __call__(self, x, t: float) -> np.ndarray:
        """Filtered value of sample ``x`` at time ``t`` seconds (first sample passes unchanged)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        c = self.config
        dx = (x - self._x) / dt
        a_d = _alpha(c.d_cutoff, dt)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = c.min_cutoff + c.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        x_hat = a * x + (1.0 - a) * self._x
        self._x, self._dx, self._t = x_hat, dx_hat, float(t)
        return x_hat.copy()


def box_iou(a, b) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = max(ax1 - ax0, 0.0) * max(ay1 - ay0, 0.0) + max(bx1 - bx0, 0.0) * max(by1 - by0, 0.0) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(tracks: list, detections: list, min_iou: float = 0.3) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by IoU: pairs (track index, detection index), best first."""
    pairs = []
    for i, tb in enumerate(tracks):
        for j, db in enumerate(detections):
            iou = box_iou(tb, db)
            if iou >= min_iou:
                pairs.append((iou, i, j))
    pairs.sort(key=lambda p: -p[0])
    used_t, used_d, out = set(), set(), []
    for _, i, j in pairs:
        if i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        out.append((i, j))
    return out


@dataclass
class Track:
    """One tracked face: identity, last box (frame px) and landmarks, per-output filters."""

    track_id: int
    box: np.ndarray
    points: np.ndarray | None = None
    age: int = 0
    filters: dict = field(default_factory=dict)

    def smooth(self, name: str, value, t: float, config: SmoothingConfig | None) -> np.ndarray:
        """``value`` passed through this track's One-Euro filter ``name`` (identity if config is None)."""
        if config is None:
            return np.asarray(value, dtype=np.float64)
        f = self.filters.get(name)
        if f is None:
            f = self.filters[name] = OneEuroFilter(config)
        return f(value, t)


class Tracker:
    """Keeps face identities across frames.

    ``update(boxes)`` assigns track ids to this frame's face boxes: a box overlapping a live track
    (IoU >= ``min_iou``) keeps its id, others get new ids, tracks without a box are dropped.
    """

    def __init__(self, min_iou: float = 0.3):
        self.min_iou = min_iou
        self.tracks: list[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 0

    def update(self, boxes: list, points: list | None = None) -> list[Track]:
        """Tracks for ``boxes`` (same order). ``points``: the faces' landmarks, kept for the next frame."""
        pairs = match_boxes([t.box for t in self.tracks], list(boxes), self.min_iou)
        by_det = {j: self.tracks[i] for i, j in pairs}
        out = []
        for j, box in enumerate(boxes):
            tr = by_det.get(j)
            if tr is None:
                tr = Track(track_id=self._next_id, box=np.asarray(box, dtype=np.float64))
                self._next_id += 1
            else:
                tr.age += 1
            tr.box = np.asarray(box, dtype=np.float64)
            tr.points = None if points is None else points[j]
            out.append(tr)
        self.tracks = out
        return out
