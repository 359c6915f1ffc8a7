"""Metric functions and emotion/landmark losses against hand-computed values."""
import math

import numpy as np
import pytest

from emoca_edge.training import metrics


def test_metrics_hand_computed():
    x = [1.0, 2.0, 3.0, 4.0]
    y = [2.0, 4.0, 5.0, 4.0]
    # By hand: mean x 2.5, mean y 3.75; deviations x (-1.5,-.5,.5,1.5), y (-1.75,.25,1.25,.25)
    # cov = (2.625 - 0.125 + 0.625 + 0.375)/4 = 0.875; var x = 1.25; var y = (3.0625+.0625+1.5625+.0625)/4 = 1.1875
    assert metrics.pcc(x, y) == pytest.approx(0.875 / math.sqrt(1.25 * 1.1875), abs=1e-12)
    assert metrics.ccc(x, y) == pytest.approx(2 * 0.875 / (1.25 + 1.1875 + 1.25 ** 2), abs=1e-12)
    # squared errors 1, 4, 4, 0 -> mean 2.25
    assert metrics.rmse(x, y) == pytest.approx(1.5, abs=1e-12)
    assert metrics.sagr([0.5, -0.2, 0.1, -0.9], [0.3, 0.4, -0.1, -0.2]) == pytest.approx(0.5)
    assert metrics.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
    logits = np.array([[3.0, 1.0], [0.0, 2.0], [5.0, 1.0]])
    assert metrics.accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert metrics.ccc(x, x) == pytest.approx(1.0)
    assert metrics.ccc(x, [v + 1 for v in x]) < 1.0  # a bias lowers CCC but not PCC
    assert metrics.pcc(x, [v + 1 for v in x]) == pytest.approx(1.0)


def test_metric_errors_and_missing():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.ccc([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        metrics.rmse([], [])
    out = metrics.emotion_metrics(np.eye(3), [0, -1, 2], [0.1, 0.2, 0.3], [0.1, -2.0, 0.3], None, None)
    assert out["accuracy"] == 1.0  # the missing label (-1) is skipped
    assert out["valence_rmse"] == pytest.approx(0.0)  # the -2 entry is skipped
    assert "arousal_ccc" not in out


def test_ccc_loss_matches_metric():
    torch = pytest.importorskip("torch")
    from emoca_edge.training.losses import ccc_loss, emotion_recognition_loss

    rng = np.random.default_rng(0)
    p, t = rng.uniform(-1, 1, 16), rng.uniform(-1, 1, 16)
    got = float(ccc_loss(torch.tensor(p), torch.tensor(t)))
    # float64; the loss adds 1e-8 to a denominator of about 0.6, a relative change of ~2e-8
    assert got == pytest.approx(1 - metrics.ccc(p, t), abs=1e-7)
    out = {"expression_logits": torch.tensor([[2.0, 0.0], [0.0, 1.0]]), "valence": torch.tensor([0.5, 0.0]),
           "arousal": torch.tensor([0.1, 0.2])}
    terms = emotion_recognition_loss(out, torch.tensor([0, -1]), torch.tensor([0.0, -2.0]),
                                     torch.tensor([-2.0, -2.0]),
                                     {"expression": 1.0, "valence_mse": 1.0, "arousal_mse": 1.0})
    # CE of the one labelled row: -log softmax([2,0])[0] = log(1 + e^-2); MSE of the one valence: 0.25
    assert float(terms["expression_ce"]) == pytest.approx(math.log1p(math.exp(-2)), abs=1e-6)
    assert float(terms["valence_mse"]) == pytest.approx(0.25, abs=1e-7)
    assert "arousal_mse" not in terms


def test_landmark_losses_hand_computed():
    torch = pytest.importorskip("torch")
    from emoca_edge.training import losses

    gt = torch.zeros(1, 68, 2, dtype=torch.float64)
    pred = gt.clone()
    pred[0, 0] = torch.tensor([1.0, 2.0])  # weight 1 point moved by |1|+|2| = 3
    w = losses.landmark_weights(dtype=torch.float64)
    assert float(losses.weighted_landmark_loss(pred, gt)) == pytest.approx(3.0 / (2 * float(w.sum())))
    # eyes: open the first pair 37-41 by 4 px in the prediction -> mean over 4 pairs = 1
    gt2 = torch.zeros(1, 68, 2, dtype=torch.float64)
    pred2 = gt2.clone()
    pred2[0, 37, 1] = -4.0
    assert float(losses.eye_closure_loss(pred2, gt2)) == pytest.approx(1.0, abs=1e-5)
    assert float(losses.lip_closure_loss(pred2, gt2)) == pytest.approx(0.0, abs=1e-5)
    pred3 = gt2.clone()
    pred3[0, 8, 0] = 7.0  # chin moves: only the 57-8 relative pair changes (1 of 7 pairs)
    assert float(losses.relative_landmark_loss(pred3, gt2)) == pytest.approx(1.0, abs=1e-5)
    conf = torch.cat([gt2, torch.zeros(1, 68, 1, dtype=torch.float64)], -1)  # confidence 0 -> no loss
    assert float(losses.weighted_landmark_loss(pred, conf)) == 0.0
