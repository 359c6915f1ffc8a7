"""Per-stage and end-to-end latency of the default pipeline on a 1280x720 frame.

Frame: frame 0 of the demo clip (1280x720, the two shipped public-domain portraits, faces about
90 and 120 px across). Stages: detection, landmarks (per face), head pose, emotion, the annotated
output (mesh overlay + drawing), and the whole ``Pipeline.process`` on a frame where the detector
runs and on a tracked frame (landmark regions from the previous frame, no detector).

Run: ``pytest benchmarks/bench_pipeline.py --benchmark-only`` (the front end against MediaPipe's
runtime is in ``bench_frontend.py``).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from emoca_edge.commands.demo import clip_frames, sample_images  # noqa: E402
from emoca_edge.pipeline import Pipeline  # noqa: E402


@pytest.fixture(scope="module")
def frame():
    imgs = dict(sample_images())
    return clip_frames(imgs["astronaut.jpg"], imgs["grace_hopper.jpg"])[0]


@pytest.fixture(scope="module")
def pipe(frame):
    p = Pipeline(detect_every=1_000_000)
    p.reset()
    r = p.process(frame)
    assert len(r.faces) == 2, "benchmark frame must show both faces"
    return p


@pytest.fixture(scope="module")
def faces(pipe, frame):
    pipe.reset()
    return pipe.process(frame)


def test_detect(benchmark, pipe, frame):
    dets = benchmark(pipe.detector, frame)
    assert len(dets) == 2


def test_landmarks_one_face(benchmark, pipe, frame, faces):
    region = pipe.landmarker.region_from_landmarks(faces.faces[0].landmarks)
    lm = benchmark(pipe.landmarker, frame, region)
    assert lm.presence > 0.5


def test_head_pose(benchmark, faces, frame):
    from emoca_edge.head_pose import estimate_head_pose

    pts = faces.faces[0].landmarks
    benchmark(estimate_head_pose, pts, frame.shape[1], frame.shape[0])


def test_emotion_two_faces(benchmark, pipe, frame, faces):
    pts = [f.landmarks for f in faces.faces]
    out = benchmark(pipe.emotion_classifier.classify_batch, frame, pts)
    assert len(out) == 2


def test_annotate(benchmark, frame, faces):
    from emoca_edge.annotate import annotate

    out = benchmark(annotate, frame, faces)
    assert out.shape == frame.shape


def test_process_detection_frame(benchmark, pipe, frame):
    def run():
        pipe.reset()
        return pipe.process(frame)

    r = benchmark(run)
    assert r.detector_ran and len(r.faces) == 2
    benchmark.extra_info["stage_ms"] = {k: round(v, 2) for k, v in r.timings.items()}


def test_process_tracked_frame(benchmark, pipe, frame):
    pipe.reset()
    pipe.process(frame)
    i = iter(range(1, 10**9))

    def run():
        return pipe.process(frame, frame_index=next(i))

    r = benchmark(run)
    assert not r.detector_ran and len(r.faces) == 2
    benchmark.extra_info["stage_ms"] = {k: round(v, 2) for k, v in r.timings.items()}
    assert np.isfinite(r.timings["total"])
