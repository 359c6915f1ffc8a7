"""One-Euro filter against a scalar reference, and track identity bookkeeping."""
import math

import numpy as np
import pytest

from emoca_edge.track import OneEuroFilter, SmoothingConfig, Tracker, box_iou, match_boxes


def _one_euro_reference(xs, ts, min_cutoff, beta, d_cutoff):
    """Scalar One-Euro filter written from the paper's equations (Casiez et al. 2012), float64."""
    out = []
    x_prev = dx_prev = t_prev = None
    for x, t in zip(xs, ts):
        if x_prev is None:
            x_prev, dx_prev, t_prev = x, 0.0, t
            out.append(x)
            continue
        te = t - t_prev
        r_d = 2 * math.pi * d_cutoff * te
        a_d = r_d / (r_d + 1)
        dx = (x - x_prev) / te
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        fc = min_cutoff + beta * abs(dx_hat)
        r = 2 * math.pi * fc * te
        a = r / (r + 1)
        x_hat = a * x + (1 - a) * x_prev
        out.append(x_hat)
        x_prev, dx_prev, t_prev = x_hat, dx_hat, t
    return np.array(out)


def test_one_euro_matches_reference():
    rng = np.random.default_rng(0)
    ts = np.cumsum(rng.uniform(0.02, 0.05, 80))
    sig = np.stack([np.sin(ts * 3) * 50 + rng.normal(0, 2, ts.size),
                    np.cos(ts) * 10 + rng.normal(0, 0.5, ts.size)], axis=1)
    cfg = SmoothingConfig(min_cutoff=0.7, beta=0.3, d_cutoff=1.3)
    f = OneEuroFilter(cfg)
    ours = np.array([f(x, t) for x, t in zip(sig, ts)])
    for ch in range(2):
        ref = _one_euro_reference(sig[:, ch], ts, 0.7, 0.3, 1.3)
        # same float64 recurrences written differently (alpha via tau vs via r): 1e-9
        np.testing.assert_allclose(ours[:, ch], ref, atol=1e-9)


def test_one_euro_reduces_jitter_and_resets():
    rng = np.random.default_rng(1)
    ts = np.arange(200) / 30.0
    noisy = 100 + rng.normal(0, 3, ts.size)
    f = OneEuroFilter(SmoothingConfig(min_cutoff=0.5, beta=0.0))
    out = np.array([f(x, t) for x, t in zip(noisy, ts)])
    assert out[50:].std() < 0.5 * noisy[50:].std()
    # a non-increasing timestamp restarts the filter: the sample passes unchanged
    assert f(7.0, 0.0) == 7.0


def test_strength_presets():
    assert SmoothingConfig.from_strength(0) is None
    a, b = SmoothingConfig.from_strength(1), SmoothingConfig.from_strength(4)
    assert b.min_cutoff < a.min_cutoff


def test_box_iou_and_matching():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    pairs = match_boxes([[0, 0, 10, 10], [100, 0, 110, 10]], [[101, 1, 111, 11], [1, 0, 11, 10], [50, 50, 60, 60]])
    assert sorted(pairs) == [(0, 1), (1, 0)]


def test_tracker_keeps_ids():
    tr = Tracker()
    a = tr.update([[0, 0, 10, 10], [100, 0, 110, 10]])
    assert [t.track_id for t in a] == [0, 1]
    b = tr.update([[102, 1, 112, 11], [1, 1, 11, 11]])  # order swapped, moved a little
    assert [t.track_id for t in b] == [1, 0]
    c = tr.update([[300, 300, 310, 310]])  # both gone, a new face
    assert [t.track_id for t in c] == [2]
    tr.reset()
    assert [t.track_id for t in tr.update([[0, 0, 5, 5]])] == [0]
