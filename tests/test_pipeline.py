"""End-to-end pipeline on the shipped public-domain portraits and a clip generated from them."""
import json

import cv2
import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")

from emoca_edge.commands.demo import clip_frames, sample_images  # noqa: E402
from emoca_edge.io import FrameFormatError  # noqa: E402
from emoca_edge.pipeline import Pipeline  # noqa: E402
from emoca_edge.schema import load_frame_record_schema  # noqa: E402


@pytest.fixture(scope="module")
def samples():
    return dict(sample_images())


@pytest.fixture(scope="module")
def pipe():
    return Pipeline(detect_every=10)


@pytest.fixture(scope="module")
def validator():
    schema = load_frame_record_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _single(pipe, img):
    pipe.reset()
    return pipe.process(img)


@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg"])
def test_face_found_and_record_valid(pipe, samples, validator, name):
    img = samples[name]
    res = _single(pipe, img)
    assert len(res.faces) == 1
    f = res.faces[0]
    # the face box must agree with the independent detector's box (different model, same face)
    det = pipe.detector(img)[0]
    from emoca_edge.track import box_iou

    assert box_iou(f.box, det.box) > 0.4
    assert f.landmarks.shape == (478, 3)
    assert len(f.blendshapes) == 52
    assert abs(sum(f.expression.values()) - 1.0) < 1e-3
    assert set(f.expression) == {"Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"}
    rec = json.loads(json.dumps(res.to_record()))
    validator.validate(rec)
    assert rec["faces"][0]["track_id"] == 0 and rec["time_s"] is None
    assert {"detect", "landmarks", "head_pose", "emotion", "total"} <= set(rec["timings_ms"])


def test_astronaut_is_happy(pipe, samples):
    f = _single(pipe, samples["astronaut.jpg"]).faces[0]
    assert f.label == "Happy"
    assert f.valence > 0


def test_frame_conversions_find_the_face(pipe, samples):
    img = samples["astronaut.jpg"]
    ref = _single(pipe, img).faces[0]
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    deep = img.astype(np.uint16) * 257  # exact 16-bit version of the 8-bit image
    for frame in (grey, grey[:, :, None], rgba, deep):
        res = _single(pipe, frame)
        assert len(res.faces) == 1
        np.testing.assert_allclose(res.faces[0].box, ref.box, atol=8)  # grey shifts landmarks a few px
    # RGBA with opaque alpha and exact 16-bit are the same pixels: identical results
    for frame in (rgba, deep):
        np.testing.assert_array_equal(_single(pipe, frame).faces[0].landmarks, ref.landmarks)
    with pytest.raises(FrameFormatError):
        pipe.process(np.zeros((64, 64, 5), np.uint8))


def test_tiny_huge_and_empty_frames(pipe, samples):
    tiny = _single(pipe, np.zeros((8, 8, 3), np.uint8))
    assert tiny.faces == [] and "too small" in tiny.skipped
    blank = _single(pipe, np.full((480, 640, 3), 127, np.uint8))
    assert blank.faces == [] and blank.skipped is None
    # 8000x6000 frame with the astronaut scaled x4 at a known place
    img = samples["astronaut.jpg"]
    big = np.zeros((6000, 8000, 3), np.uint8)
    up = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    big[1000:1000 + up.shape[0], 3000:3000 + up.shape[1]] = up
    ref = _single(pipe, img).faces[0].box
    res = _single(pipe, big)
    assert len(res.faces) == 1
    # expected box: the small-image box scaled x4 and shifted (edge coordinates scale exactly)
    np.testing.assert_allclose(res.faces[0].box, ref * 4 + np.array([3000, 1000, 3000, 1000]), atol=4 * 4)


@pytest.fixture(scope="module")
def clip(samples):
    frames = clip_frames(samples["astronaut.jpg"], samples["grace_hopper.jpg"])
    return [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames]


def test_tracking_on_clip(clip):
    p = Pipeline(detect_every=8, smoothing=1.0)
    results = [p.process(f, frame_index=i, time_s=i / 15) for i, f in enumerate(clip)]
    # frames 0-23: two faces (astronaut left, Hopper right) with stable ids
    for r in results[:24]:
        assert len(r.faces) == 2
        assert [f.track_id for f in r.faces] == [0, 1]
    # frames 24-26: no face
    assert all(r.faces == [] for r in results[24:27])
    # frames 27-35: the astronaut alone, a new identity after the cut
    ids = {tuple(f.track_id for f in r.faces) for r in results[27:]}
    assert ids == {(2,)}
    ran = [r.detector_ran for r in results]
    assert ran[0] and not any(ran[1:8]) and ran[8]  # detector skipped on tracked frames
    assert p.detector_calls == sum(ran) < len(clip)
    # while no face is tracked the detector runs on every frame
    assert all(ran[24:28])
    # smoothed poses stay consistent: rotation == Rodrigues(rotation_vector), Euler from rotation
    from emoca_edge.head_pose import euler_from_rotation

    for r in results[1:24]:
        for f in r.faces:
            np.testing.assert_allclose(cv2.Rodrigues(np.asarray(f.pose.rotation_vector, np.float64))[0],
                                       f.pose.rotation, atol=1e-9)
            np.testing.assert_allclose(f.pose.euler_deg, euler_from_rotation(f.pose.rotation), atol=1e-9)
            assert abs(sum(f.expression.values()) - 1) < 1e-4


def test_run_counts_bad_array_frames(clip):
    frames = [clip[0], np.zeros((64, 64, 5), np.uint8), np.zeros((8, 8), np.uint8),
              clip[1].astype(np.uint16) * 257, np.zeros((40, 40, 3), np.complex64), clip[2]]
    s = Pipeline(detect_every=10).run(frames)
    assert s.frames == 3 and s.faces == 6
    assert s.skipped == {"unsupported frame format": 2, "frame too small": 1}
    assert any("frame 1" in m and "shape" in m for m in s.messages)
    assert any("frame 4" in m and "dtype" in m for m in s.messages)
    assert "frame too small: 1" in s.format()


def test_smoothing_reduces_jitter(samples):
    rng = np.random.default_rng(0)
    img = samples["grace_hopper.jpg"]
    frames = [np.clip(img.astype(np.int16) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
              for _ in range(12)]

    def jitter(smoothing):
        p = Pipeline(detect_every=100, smoothing=smoothing)
        pts = np.stack([p.process(f, frame_index=i, time_s=i / 30).faces[0].landmarks for i, f in enumerate(frames)])
        return np.abs(np.diff(pts[:, :, :2], axis=0)).mean()

    raw, smooth = jitter(None), jitter(3.0)
    assert smooth < 0.7 * raw


def test_run_matches_process(clip, tmp_path):
    """Pipeline.run over a video file gives exactly the per-frame process() results."""
    path = tmp_path / "c.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 360))
    for f in clip[:14]:
        vw.write(f[:, :, ::-1].copy())
    vw.release()

    class Collect:
        def __init__(self):
            self.records = []

        def write(self, item, frame, result):
            self.records.append(result.to_record())

        def skip(self, item, msg):
            self.records.append(msg)

        def close(self):
            pass

    sink = Collect()
    s = Pipeline(detect_every=5, smoothing=1.0).run(str(path), [sink])
    assert s.frames == 14 and not s.skipped
    cap = cv2.VideoCapture(str(path))
    p = Pipeline(detect_every=5, smoothing=1.0)
    i, api = 0, []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        api.append(p.process(bgr[:, :, ::-1], frame_index=i, time_s=i / 15, source=str(path)).to_record())
        i += 1
    assert len(api) == len(sink.records)
    for a, b in zip(api, sink.records):
        a.pop("timings_ms"), b.pop("timings_ms")
        assert a == b


# ----------------------------------------------------------------------------- bundles
@pytest.fixture(scope="module")
def toy_pipe():
    import fixtures_bundles as fb

    return Pipeline(bundle=fb.toy_bundle(), detect_every=10)


def test_bundle_batch_crop_and_inverse_mapping(toy_pipe, clip, validator):
    from emoca_edge import crop as crop_mod

    calls = []
    rec = toy_pipe.reconstructor
    orig = type(rec).__call__

    def counting(self, crops):
        calls.append(np.asarray(crops).shape)
        return orig(self, crops)

    frame = clip[0]
    type(rec).__call__ = counting
    try:
        toy_pipe.reset()
        res = toy_pipe.process(frame)
    finally:
        type(rec).__call__ = orig
    assert len(res.faces) == 2
    assert calls == [(2, 224, 224, 3)]  # all faces of the frame in ONE batch
    for f in res.faces:
        # crop square from the deca68 rule on the MediaPipe subset, derived here independently
        sub = f.landmarks[crop_mod.MP_DECA68_EXTENT, :2].astype(np.float64)
        lo, hi = sub.min(0), sub.max(0)
        side = np.floor(((hi - lo).sum() / 2 * 1.1) * 1.25)
        np.testing.assert_allclose(f.crop.center, (lo + hi) / 2, atol=1e-3)  # landmarks stored as float32
        assert abs(f.crop.box_size - side) <= 1.0
        # crop px -> frame px: x = x0 + (u - 0.5) * side / 223 with x0 = centre - side / 2
        u = f.params["landmarks2d_crop"].astype(np.float64)
        x0 = f.crop.center - f.crop.box_size / 2
        ref = x0 + (u - 0.5) * f.crop.box_size / 223.0
        np.testing.assert_allclose(f.params["landmarks2d"], ref, atol=1e-3)  # float32 output
        assert f.mesh_vertices.shape == (5023, 3) and f.mesh_faces.shape == (9976, 3)
        np.testing.assert_allclose(f.mesh_to_frame, f.crop.inverse)
        assert f.emotion is not None and f.emotion.source == "fer-mini-xception"
    validator.validate(json.loads(json.dumps(res.to_record())))


def test_bundle_emotion_from_emorec_outputs(toy_pipe, clip, monkeypatch):
    from emoca_edge.emotion import AFFECTNET_CLASSES, emotion_from_emorec

    rec = toy_pipe.reconstructor
    orig = type(rec).__call__
    logits = np.log(np.array([[0.05, 0.6, 0.05, 0.1, 0.05, 0.05, 0.05, 0.05]], np.float32))

    def with_emorec(self, crops):
        out = dict(orig(self, crops))
        n = len(crops)
        out["expression_logits"] = np.repeat(logits, n, 0)
        out["valence"] = np.full(n, 0.4, np.float32)
        out["arousal"] = np.full(n, -0.2, np.float32)
        return out

    monkeypatch.setattr(type(rec), "__call__", with_emorec)
    toy_pipe.reset()
    res = toy_pipe.process(clip[0])
    ref = emotion_from_emorec(logits, np.array([0.4]), np.array([-0.2]))[0]
    for f in res.faces:
        assert f.label == "Happy" == AFFECTNET_CLASSES[1]
        np.testing.assert_allclose(f.emotion.probabilities, ref.probabilities, atol=1e-6)
        assert f.valence == pytest.approx(0.4, abs=1e-6) and f.arousal == pytest.approx(-0.2, abs=1e-6)
        assert f.emotion.source == "emoca-emorec"


def test_bundle_npz_and_obj(toy_pipe, clip, tmp_path):
    from emoca_edge.io import NpzSink, ObjSink
    from emoca_edge.io.sources import iter_array_frames

    s = toy_pipe.run(clip[0:3], [NpzSink(tmp_path / "r.npz"), ObjSink(tmp_path / "m")])
    assert s.frames == 3 and s.faces == 6
    with np.load(tmp_path / "r.npz") as z:
        assert z["param_vertices"].shape == (6, 5023, 3)
        assert z["landmarks"].shape == (6, 478, 3)
        assert z["track_id"].tolist() == [0, 1, 0, 1, 0, 1]
        assert z["expression_names"].tolist()[1] == "Happy"
        v0 = z["param_vertices"][0]
    objs = sorted((tmp_path / "m").glob("*.obj"))
    assert len(objs) == 6
    vs = np.array([[float(x) for x in ln.split()[1:]] for ln in objs[0].read_text().splitlines() if ln.startswith("v ")])
    np.testing.assert_allclose(vs, v0, atol=1e-6)
    assert iter_array_frames  # imported API


def test_max_faces(clip):
    full = Pipeline().process(clip[0])
    one = Pipeline(max_faces=1).process(clip[0])
    assert len(full.faces) == 2 and len(one.faces) == 1
    # the kept face is the detector's best one: its landmarks match that face in the full result
    match = [f for f in full.faces if np.abs(f.box - one.faces[0].box).max() < 1.0]
    assert len(match) == 1


def test_bundle_refine_crop_uses_bundle_landmarks(clip):
    import fixtures_bundles as fb

    from emoca_edge import crop as crop_mod

    frame = clip[0]
    base = Pipeline(bundle=fb.toy_bundle())
    first = base.process(frame)
    refined = Pipeline(bundle=fb.toy_bundle(), refine_crop=True).process(frame)
    assert len(first.faces) == len(refined.faces) == 2
    for f0, f1 in zip(first.faces, refined.faces):
        # second crop = official deca68 rule on the first pass's 68 landmarks (frame px), derived here
        p = f0.params["landmarks2d"].astype(np.float64)
        lo, hi = p.min(0), p.max(0)
        side = np.floor(((hi - lo).sum() / 2 * 1.1) * 1.25)
        np.testing.assert_allclose(f1.crop.center, (lo + hi) / 2, atol=1e-3)
        assert abs(f1.crop.box_size - side) <= 1.0
        # and the refined outputs are those of the bundle on that crop
        direct = base.reconstructor(crop_mod.warp(frame, f1.crop)[None])
        np.testing.assert_allclose(f1.params["camera"], direct["camera"][0], rtol=1e-5, atol=1e-6)
