"""Tests of emoca_edge.emotion: the default fer mini-Xception classifier and the emotion records.

References
- ``tests/fixtures/fer/reference.npz``, made once by ``tools/convert_fer/convert_fer.py`` with the
  ORIGINAL model and code: the fer 25.10.3 package's own preprocessing (``fer_crops_u8``) and
  the Keras model run by TensorFlow (``*keras_probabilities``) on a region of the public-domain
  astronaut photograph (``region_rgb``), on more astronaut crops and on random inputs.
- Float64 NumPy re-implementations below of fer's crop rules, bilinear resizing and BT.601 grey.
- Hand-computed values for the class mapping and the valence/arousal formula.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoca_edge import emotion as E

FIXTURE = Path(__file__).parent / "fixtures" / "fer" / "reference.npz"

# ONNX vs Keras probabilities: the converted graph performs the same float32 operations; the
# conversion tool measured <= 1.5e-6 (random inputs) and <= 9e-7 (real faces). 1e-5 leaves room
# for other CPU kernels (different summation order) while catching any wrong weight/layout,
# which changes probabilities by > 1e-2.
PROB_ATOL = 1e-5


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def clf():
    return E.ImageEmotionClassifier()


def _xyxy(xywh) -> np.ndarray:
    x, y, w, h = (float(v) for v in xywh)
    return np.array([x, y, x + w, y + h])


# ----------------------------------------------------------------------------- model parity
def test_onnx_matches_keras_on_fer_crops(ref, clf):
    p = clf.probabilities_fer(ref["fer_crops_u8"])
    np.testing.assert_allclose(p, ref["keras_probabilities"], atol=PROB_ATOL, rtol=0)
    p = clf.probabilities_fer(ref["real_crops_u8"])
    np.testing.assert_allclose(p, ref["real_keras_probabilities"], atol=PROB_ATOL, rtol=0)


def test_onnx_matches_keras_on_random_inputs(ref, clf):
    x = ref["random_inputs"][:, None].astype(np.float32)  # already in the model's [-1,1] range
    p = clf.session.run(None, {clf.session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(p, ref["random_keras_probabilities"], atol=PROB_ATOL, rtol=0)


# ----------------------------------------------------------------------------- preprocessing
def test_crops_match_fer_package(ref):
    # Same OpenCV operations as fer on the same pixels; different OpenCV versions may round the
    # fixed-point bilinear weights differently, so allow 1 grey level (out of 255).
    boxes = [_xyxy(b) for b in ref["boxes_xywh"]]
    crops = E.fer_crops(ref["region_rgb"], boxes)
    diff = np.abs(crops.astype(np.int16) - ref["fer_crops_u8"].astype(np.int16))
    assert diff.max() <= 1, f"max grey difference to fer's own crops: {diff.max()}"


def test_normalisation_matches_fer_package(ref):
    # fer: float32(u8) / 255.0, then (x - 0.5) * 2.0, in float32 -> bit-exact
    x = E.fer_normalise(ref["fer_crops_u8"])
    assert x.shape == (5, 1, 64, 64) and x.dtype == np.float32
    expected = ((ref["fer_crops_u8"].astype(np.float64) / 255.0) - 0.5) * 2.0
    np.testing.assert_allclose(x[:, 0], expected, atol=1e-6, rtol=0)  # float32 rounding of a float64 value
    assert x.min() >= -1.0 and x.max() <= 1.0


def _ref_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """Float64 bilinear resize with pixel-centre alignment, edge samples clamped (INTER_LINEAR semantics)."""
    h, w = img.shape

    def axis(n_in):
        c = (np.arange(size) + 0.5) * (n_in / size) - 0.5
        c = np.clip(c, 0.0, n_in - 1)
        i0 = np.floor(c).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, c - i0

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    img = img.astype(np.float64)
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bot = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


def _ref_fer_crop(grey: np.ndarray, xywh) -> np.ndarray:
    """fer's rules written out on an explicitly padded copy of the grey frame (float64 result)."""
    x, y, w, h = xywh
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    fill = np.rint(grey[-2:].astype(np.float64).mean())
    padded = np.pad(grey.astype(np.float64), 40, mode="constant", constant_values=fill)
    y0, y1, x0, x1 = y - 10 + 40, y + h + 10 + 40, x - 10 + 40, x + w + 10 + 40
    crop = padded[max(y0, 0):y1, max(x0, 0):x1]
    return _ref_bilinear(crop, 64)


def test_crop_rules_match_numpy_reference():
    rng = np.random.default_rng(7)
    for trial in range(6):
        h, w = rng.integers(60, 200, size=2)
        # grey-valued RGB (R=G=B): OpenCV's grey conversion is then exact, so only the crop rules
        # and the resize are compared here
        g = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        frame = np.repeat(g[..., None], 3, axis=2)
        boxes = []
        for _ in range(5):
            bw, bh = rng.integers(8, 120, size=2)
            bx, by = rng.integers(-bw + 1, w), rng.integers(-bh + 1, h)  # overlapping the frame
            boxes.append((int(bx), int(by), int(bw), int(bh)))
        ours = E.fer_crops(frame, [_xyxy(b) for b in boxes]).astype(np.float64)
        for k, b in enumerate(boxes):
            expected = _ref_fer_crop(g, b)
            # OpenCV's uint8 INTER_LINEAR uses 11-bit fixed-point weights and rounds once: its result
            # is within 1 grey level of the exact float64 value rounded to nearest. On white noise
            # (neighbour differences up to 255) the weight quantisation moves values by up to
            # 255/2^11 ~ 0.12 levels per tap, so roughly one pixel in eight rounds the other way;
            # a wrong crop rule or sampling convention gives errors of tens of levels.
            err = np.abs(ours[k] - np.rint(expected))
            assert err.max() <= 1, f"trial {trial} box {b}: max error {err.max()}"
            assert err.mean() < 0.3, f"trial {trial} box {b}: mean error {err.mean()}"


def test_grey_conversion_is_bt601():
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 256, size=(70, 70, 3), dtype=np.uint8)
    # a box covering a 50x50 interior area whose crop (50 + 2*10 = 70 px) is the whole frame:
    # squared box (10,10,50,50) -> crop rows/cols 0..69 of the frame; 70 -> 64 resize
    crop = E.fer_crops(frame, [np.array([10.0, 10.0, 60.0, 60.0])])[0].astype(np.float64)
    grey = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    expected = _ref_bilinear(np.rint(grey), 64)
    # 1 level from OpenCV's fixed-point grey conversion + 1 level from the resize rounding (see
    # test_crop_rules_match_numpy_reference for the mean); swapped R/B weights (BGR instead of
    # RGB) give errors of tens of levels on random colours
    err = np.abs(crop - np.rint(expected))
    assert err.max() <= 2 and err.mean() < 0.3, (err.max(), err.mean())
    swapped = _ref_bilinear(np.rint(frame.astype(np.float64) @ np.array([0.114, 0.587, 0.299])), 64)
    assert np.abs(crop - swapped).max() > 10


def test_box_rounding_and_points():
    rng = np.random.default_rng(9)
    frame = rng.integers(0, 256, size=(120, 140, 3), dtype=np.uint8)
    # a float box rounds its edges to the nearest pixel boundary (floor(v + 0.5))
    a = E.fer_crops(frame, [np.array([20.4, 30.6, 80.5, 90.49])])
    b = E.fer_crops(frame, [np.array([20.0, 31.0, 81.0, 90.0])])
    np.testing.assert_array_equal(a, b)
    # points: the box is their x/y extent (z ignored)
    pts = np.stack([rng.uniform(20, 81, 478), rng.uniform(31, 90, 478), rng.normal(0, 50, 478)], 1)
    pts[0, :2], pts[1, :2] = (20.0, 31.0), (81.0, 90.0)
    np.testing.assert_array_equal(E.fer_crops(frame, [pts]), b)
    np.testing.assert_array_equal(E.box_from_points(pts), [20.0, 31.0, 81.0, 90.0])


# ----------------------------------------------------------------------------- mapping
def test_affectnet_mapping_hand_computed():
    # FER order: angry, disgust, fear, happy, sad, surprise, neutral
    p_fer = np.array([0.10, 0.05, 0.15, 0.30, 0.20, 0.10, 0.10])
    p8 = E.affectnet_from_fer(p_fer)
    # AffectNet order: Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt
    np.testing.assert_allclose(p8, [0.10, 0.30, 0.20, 0.10, 0.15, 0.05, 0.10, 0.0], atol=1e-15)
    va = E.valence_arousal_from_probabilities(p8)
    # valence = .1*0 + .3*.81 + .2*(-.63) + .1*.40 + .15*(-.64) + .05*(-.60) + .1*(-.51)
    #         = .243 - .126 + .040 - .096 - .030 - .051 = -0.020
    # arousal = .1*0 + .3*.51 + .2*(-.27) + .1*.67 + .15*.60 + .05*.35 + .1*.59
    #         = .153 - .054 + .067 + .090 + .0175 + .059 = 0.3325
    np.testing.assert_allclose(va, [-0.020, 0.3325], atol=1e-12)


def test_one_hot_classes_give_table_coordinates():
    for j, fer_name in enumerate(E.FER_CLASSES):
        p = np.zeros(7)
        p[j] = 1.0
        p8 = E.affectnet_from_fer(p)
        name = E.AFFECTNET_CLASSES[int(np.argmax(p8))]
        assert name.lower().startswith({"angry": "anger"}.get(fer_name, fer_name)[:4])
        np.testing.assert_allclose(E.valence_arousal_from_probabilities(p8), E.VALENCE_AROUSAL[name], atol=0)
    assert E.affectnet_from_fer(np.full(7, 1 / 7))[7] == 0.0  # Contempt never appears


def test_mapping_renormalises_and_rejects_bad_input():
    p8 = E.affectnet_from_fer(np.array([[2.0, 0, 0, 2.0, 0, 0, 0]]))  # unnormalised -> /4
    np.testing.assert_allclose(p8, [[0, 0.5, 0, 0, 0, 0, 0.5, 0]])
    with pytest.raises(ValueError, match="last dimension 7"):
        E.affectnet_from_fer(np.ones(8))
    with pytest.raises(ValueError, match="Contempt"):
        E.valence_arousal_from_probabilities(np.full(8, 1 / 8))


# ----------------------------------------------------------------------------- EMOCA regressor
def test_emotion_from_emorec():
    logits = np.array([[2.0, 0.5, -1.0, 0.0, 0.3, -0.2, 1.0, -3.0], [0.0] * 8])
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    out = E.emotion_from_emorec(log_softmax, np.array([0.3, 1.7]), np.array([-0.2, -4.0]))
    assert len(out) == 2 and all(e.source == "emoca-emorec" for e in out)
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(out[0].probabilities, expected, rtol=1e-6)  # float32 storage
    np.testing.assert_allclose(out[1].probabilities, np.full(8, 1 / 8), rtol=1e-6)
    assert out[0].label == "Neutral" and out[0].valence == pytest.approx(0.3) and out[0].arousal == pytest.approx(-0.2)
    assert (out[1].valence, out[1].arousal) == (1.0, -1.0)  # clipped to [-1, 1]
    # raw (not log-softmax) logits give the same probabilities
    np.testing.assert_allclose(E.emotion_from_emorec(logits[:1], [0.3], [-0.2])[0].probabilities,
                               out[0].probabilities, rtol=1e-6)
    with pytest.raises(ValueError, match=r"K >= 8"):
        E.emotion_from_emorec(np.zeros((2, 7)), np.zeros(2), np.zeros(2))
    # a 9-class regressor (AffectNet code 8 = None): the 8 classes renormalised, hand-computed
    logits9 = np.array([[2.0, 0.5, -1.0, 0.0, 0.3, -0.2, 1.0, -3.0, 4.0]])
    p9 = np.exp(logits9[0]) / np.exp(logits9[0]).sum()
    expected9 = p9[:8] / p9[:8].sum()
    got9 = E.emotion_from_emorec(logits9, [0.0], [0.0])[0].probabilities
    np.testing.assert_allclose(got9, expected9, rtol=1e-6)
    np.testing.assert_allclose(got9, expected, rtol=1e-6)  # same as the 8 logits alone
    assert got9.sum() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="valence"):
        E.emotion_from_emorec(np.zeros((2, 8)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        E.emotion_from_emorec(np.full((1, 8), np.nan), np.zeros(1), np.zeros(1))


def test_emotion_record():
    p = np.zeros(8, np.float32)
    p[3] = 1.0
    e = E.Emotion(p, 0.4, 0.67, "test")
    assert e.label == "Surprise" and e.as_dict()["Surprise"] == 1.0 and list(e.as_dict()) == list(E.AFFECTNET_CLASSES)
    with pytest.raises(ValueError, match="shape"):
        E.Emotion(np.ones(7) / 7, 0, 0, "test")
    with pytest.raises(ValueError, match="sum to 1"):
        E.Emotion(np.ones(8), 0, 0, "test")
    with pytest.raises(ValueError, match="valence"):
        E.Emotion(p, 1.5, 0, "test")


# ----------------------------------------------------------------------------- real faces
def test_astronaut_region_is_happy(ref, clf):
    # astronaut_box_xywh: the box fer's own default detector (OpenCV haarcascade_frontalface_default,
    # fer's settings) returns on skimage's astronaut.png, recorded by the conversion tool and checked
    # by eye (the crop shows the whole smiling face); the fixture region starts at row 30, column 130.
    x, y, w, h = ref["astronaut_box_xywh"]
    e = clf.classify(ref["region_rgb"], _xyxy((x - 130, y - 30, w, h)))
    assert e.label == "Happy" and e.probabilities[1] > 0.9
    assert e.source == "fer-mini-xception" and e.probabilities[7] == 0.0
    assert e.valence > 0.5 and e.arousal > 0.3  # near Happy's (0.81, 0.51)


def _sample(name):
    from emoca_edge.assets import AssetError, asset_path

    try:
        path = asset_path(f"samples/{name}")
    except AssetError as exc:
        pytest.skip(f"sample image not shipped: {exc}")
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_astronaut_sample_is_happy_fixed_box(ref, clf):
    frame = _sample("astronaut.jpg")  # the same photograph, full 512x512, JPEG re-encoded
    e = clf.classify(frame, _xyxy(ref["astronaut_box_xywh"]))
    assert e.label == "Happy" and e.probabilities[1] > 0.9


def test_astronaut_sample_is_happy_detected(clf):
    detect = pytest.importorskip("emoca_edge.detect")
    frame = _sample("astronaut.jpg")
    dets = detect.FaceDetector()(frame)
    assert len(dets) >= 1
    e = clf.classify(frame, dets[0].box)
    assert e.label == "Happy" and e.probabilities[1] > 0.9
    landmarks = pytest.importorskip("emoca_edge.landmarks")
    lm = landmarks.FaceLandmarker()
    points = lm(frame, lm.region_from_detection(dets[0])).points
    e2 = clf.classify(frame, points)
    assert e2.label == "Happy" and e2.probabilities[1] > 0.9
    # a serious official portrait as the counter-example: not classified Happy
    hopper = _sample("grace_hopper.jpg")
    d2 = detect.FaceDetector()(hopper)
    assert len(d2) >= 1
    assert clf.classify(hopper, d2[0].box).label != "Happy"


def test_batch_equals_single(ref, clf):
    boxes = [_xyxy(b) for b in ref["boxes_xywh"]]
    batch = clf.classify_batch(ref["region_rgb"], boxes)
    for box, e in zip(boxes, batch):
        s = clf.classify(ref["region_rgb"], box)
        np.testing.assert_allclose(e.probabilities, s.probabilities, atol=1e-6)
        assert e.valence == pytest.approx(s.valence, abs=1e-6)
    assert clf.classify_batch(ref["region_rgb"], []) == []


# ----------------------------------------------------------------------------- errors
def test_bad_input_errors(clf):
    frame = np.zeros((100, 120, 3), np.uint8)
    box = np.array([10.0, 10.0, 50.0, 50.0])
    with pytest.raises(ValueError, match="uint8"):
        clf.classify(frame.astype(np.float32), box)
    with pytest.raises(ValueError, match=r"\(H,W,3\)"):
        clf.classify(np.zeros((100, 120), np.uint8), box)
    with pytest.raises(TypeError, match="numpy array"):
        clf.classify([[0]], box)
    with pytest.raises(ValueError, match="empty box"):
        clf.classify(frame, np.array([50.0, 10.0, 50.0, 60.0]))
    with pytest.raises(ValueError, match="empty box"):
        clf.classify(frame, np.array([50.0, 60.0, 60.0, 10.0]))
    with pytest.raises(ValueError, match="outside the 120x100 frame"):
        clf.classify(frame, np.array([130.0, 10.0, 150.0, 30.0]))
    with pytest.raises(ValueError, match="outside"):
        clf.classify(frame, np.array([-50.0, -50.0, -1.0, -1.0]))
    with pytest.raises(ValueError, match="less than one pixel"):
        clf.classify(frame, np.array([10.1, 10.0, 10.3, 30.0]))
    with pytest.raises(ValueError, match="non-finite"):
        clf.classify(frame, np.array([np.nan, 10.0, 50.0, 50.0]))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        clf.classify(frame, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="face 1"):  # batch errors name the item
        clf.classify_batch(frame, [box, np.array([200.0, 0.0, 210.0, 10.0])])
    with pytest.raises(ValueError, match="crops must be uint8"):
        clf.probabilities_fer(np.zeros((1, 48, 48), np.uint8))
