"""FaceDetector: anchors, NMS, decoding, and agreement with the original BlazeFace model.

Fixtures (tests/fixtures/mediapipe/*.npz) hold the detections of the ORIGINAL .tflite model
(run in ai-edge-litert by tools/convert_models/make_fixtures.py on our pre-processed input and
decoded by our decoder), so they test the ONNX conversion and the run-time path end to end.
"""
from __future__ import annotations


import numpy as np
import pytest

from emoca_edge.detect import Detection, FaceDetector, iou_matrix, ssd_anchors, weighted_nms

from mediapipe_frames import FIX, FRAMES


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.mark.parametrize("name", list(FRAMES))
def test_detections_match_original_model(detector, name):
    frame = FRAMES[name]()
    ref = np.load(FIX / f"{name}.npz")
    dets = detector(frame)
    assert len(dets) == len(ref["det_scores"]) >= 1
    for d, box, kp, score in zip(dets, ref["det_boxes"], ref["det_keypoints"], ref["det_scores"]):
        assert isinstance(d, Detection) and d.box.dtype == np.float32 and d.keypoints.shape == (6, 2)
        # ONNX vs original differ by ~1e-4 in raw outputs (see MANIFEST.json); 0.5 px is far
        # below any detection-level difference and above float rounding of the decode.
        np.testing.assert_allclose(d.box, box, atol=0.5)
        np.testing.assert_allclose(d.keypoints, kp, atol=0.5)
        assert abs(d.score - score) < 1e-3


def test_small_rolled_faces_are_found(detector):
    """Two ~100 px faces rolled by +-20 degrees in a 1280x720 frame (built from the samples)."""
    frame = FRAMES["kiosk_two_faces"]()
    assert frame.shape == (720, 1280, 3)
    dets = detector(frame)
    assert len(dets) == 2
    centres = sorted(((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2) for d in dets)
    # faces were pasted around x = 420 and x = 900 (see make_fixtures.kiosk_frame)
    assert 330 < centres[0][0] < 510 and 810 < centres[1][0] < 990
    rolls = []
    for d in sorted(dets, key=lambda d: d.box[0]):
        width = d.box[2] - d.box[0]
        assert 60 < width < 140, width
        dx, dy = d.keypoints[1] - d.keypoints[0]
        rolls.append(np.degrees(np.arctan2(-dy, dx)))
    # the eye keypoints (about 14 px apart at this size) show the sign of the roll: the left
    # face was turned counter-clockwise on screen (+20), the right one clockwise (-20); the
    # landmark tests check the angle itself
    assert rolls[0] > 3 and rolls[1] < -3, rolls


def test_sorted_and_max_faces():
    frame = FRAMES["kiosk_two_faces"]()
    dets = FaceDetector()(frame)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    one = FaceDetector(max_faces=1)(frame)
    assert len(one) == 1 and one[0].score == pytest.approx(dets[0].score)


def test_no_face_gives_empty_list(detector):
    assert detector(np.full((720, 1280, 3), 90, np.uint8)) == []
    rng = np.random.default_rng(0)
    assert detector(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []


@pytest.mark.parametrize("bad,msg", [
    (np.zeros((64, 64), np.uint8), "(H,W,3)"),
    (np.zeros((64, 64, 4), np.uint8), "(H,W,3)"),
    (np.zeros((64, 64, 3), np.uint16), "uint8"),
    (np.zeros((64, 64, 3), np.float32), "uint8"),
    ([[0, 0, 0]], "numpy array"),
])
def test_rejects_bad_frames(detector, bad, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        detector(bad)


def test_anchor_layouts():
    """Anchor centres, built independently: full range = 48x48 grid of stride 4, one per cell;
    short range = 16x16 (stride 8) x2 then 8x8 (stride 16) x6, row-major, x fastest."""
    full = ssd_anchors(192, [(4, 1)])
    assert full.shape == (2304, 2)
    i = np.arange(2304)
    np.testing.assert_allclose(full[:, 0], ((i % 48) + 0.5) / 48, atol=1e-7)
    np.testing.assert_allclose(full[:, 1], ((i // 48) + 0.5) / 48, atol=1e-7)
    short = ssd_anchors(128, [(8, 2), (16, 6)])
    assert short.shape == (896, 2)
    expected = []
    for n, per in ((16, 2), (8, 6)):
        for y in range(n):
            for x in range(n):
                expected += [((x + 0.5) / n, (y + 0.5) / n)] * per
    np.testing.assert_allclose(short, np.array(expected), atol=1e-7)


def test_decode_against_float64_reference():
    """Decoding with known raw outputs: a face at a chosen anchor, with a letterboxed frame."""
    det = FaceDetector(score_threshold=0.5)
    frame = np.zeros((360, 640, 3), np.uint8)
    _, to_frame = det.preprocess(frame)
    n = len(det.anchors)
    reg = np.zeros((n, 16), np.float32)
    logits = np.full(n, -10.0, np.float32)
    k = 30 * 48 + 20  # anchor at column 20, row 30
    reg[k, :4] = [3.0, -2.0, 40.0, 50.0]
    reg[k, 4:] = np.arange(12, dtype=np.float32) - 6
    logits[k] = 2.0
    dets = det.decode(reg, logits, to_frame)
    assert len(dets) == 1
    # independent float64 reference: input px = anchor * 192 + raw; frame = (input - pad) / scale
    scale = 192 / 640
    pad_y = (192 - round(360 * scale)) // 2
    ax, ay = (20 + 0.5) / 48 * 192, (30 + 0.5) / 48 * 192
    cx, cy = ax + 3.0, ay - 2.0
    box_in = np.array([cx - 20, cy - 25, cx + 20, cy + 25])
    sy = round(360 * scale) / 360
    box = np.array([box_in[0] / scale, (box_in[1] - pad_y) / sy, box_in[2] / scale, (box_in[3] - pad_y) / sy])
    np.testing.assert_allclose(dets[0].box, box, rtol=0, atol=1e-3)
    kp_in = np.array([ax, ay]) + (np.arange(12) - 6).reshape(6, 2)
    kp = np.stack([kp_in[:, 0] / scale, (kp_in[:, 1] - pad_y) / sy], 1)
    np.testing.assert_allclose(dets[0].keypoints, kp, atol=1e-3)
    assert dets[0].score == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-6)


def test_weighted_nms_against_reference():
    """Blending NMS vs a direct float64 implementation on random overlapping boxes."""
    rng = np.random.default_rng(3)
    centres = rng.uniform(50, 250, (5, 2))
    boxes, scores = [], []
    for c in centres:
        for _ in range(4):
            cc = c + rng.normal(0, 3, 2)
            s = rng.uniform(30, 40)
            boxes.append([cc[0] - s, cc[1] - s, cc[0] + s, cc[1] + s])
            scores.append(rng.uniform(0.5, 1))
    boxes, scores = np.array(boxes), np.array(scores)
    kps = rng.uniform(0, 300, (len(boxes), 6, 2))
    got_b, got_k, got_s = weighted_nms(boxes, kps, scores, 0.3)

    def iou(a, b):
        iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    left = list(np.argsort(-scores, kind="stable"))
    exp_b, exp_k, exp_s = [], [], []
    while left:
        top = left[0]
        group = [j for j in left if j == top or iou(boxes[top], boxes[j]) > 0.3]
        w = scores[group]
        exp_b.append((boxes[group] * w[:, None]).sum(0) / w.sum())
        exp_k.append((kps[group] * w[:, None, None]).sum(0) / w.sum())
        exp_s.append(scores[top])
        left = [j for j in left if j not in group]
    np.testing.assert_allclose(got_b, np.array(exp_b), atol=1e-4)  # float32 output
    np.testing.assert_allclose(got_k, np.array(exp_k), atol=1e-4)
    np.testing.assert_allclose(got_s, np.array(exp_s), atol=1e-6)
    assert iou_matrix(np.array([0, 0, 10, 10.]), np.array([[5, 0, 15, 10.]]))[0] == pytest.approx(1 / 3)


def test_short_range_model_runs():
    frame = FRAMES["astronaut"]()
    dets = FaceDetector(model="short_range")(frame)
    assert len(dets) == 1
    ref = np.load(FIX / "astronaut.npz")["det_boxes"][0]
    # a different model: same face, boxes agree to a fraction of the face size
    assert np.abs(dets[0].box - ref).max() < 0.25 * (ref[2] - ref[0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown detector model"):
        FaceDetector(model="tiny")
    with pytest.raises(ValueError, match="score_threshold"):
        FaceDetector(score_threshold=2)
    with pytest.raises(ValueError, match="max_faces"):
        FaceDetector(max_faces=-1)
