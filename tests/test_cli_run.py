"""`emoca-edge demo` and `emoca-edge run` end to end: outputs, schema, bad inputs, API == CLI."""
import csv
import json

import cv2
import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")

from emoca_edge.cli import main  # noqa: E402
from emoca_edge.commands.demo import clip_frames, sample_images, write_video  # noqa: E402
from emoca_edge.pipeline import Pipeline  # noqa: E402
from emoca_edge.schema import load_frame_record_schema  # noqa: E402


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    return out


def test_demo_outputs(demo_out, capsys):
    names = {p.name for p in demo_out.iterdir()}
    assert {"results.jsonl", "results.csv", "astronaut_annotated.png", "grace_hopper_annotated.png",
            "demo_clip_annotated.mp4"} <= names
    validator = jsonschema.Draft202012Validator(load_frame_record_schema())
    recs = _records(demo_out / "results.jsonl")
    for r in recs:
        validator.validate(r)
    by_source = {}
    for r in recs:
        by_source.setdefault(r["source"].split("/")[-1], []).append(r)
    assert len(by_source["demo_clip.mp4"]) == 36
    assert len(by_source["astronaut.png"][0]["faces"]) == 1
    assert by_source["astronaut.png"][0]["faces"][0]["label"] == "Happy"
    # the annotated video has every frame of the clip
    cap = cv2.VideoCapture(str(demo_out / "demo_clip_annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 36
    ok, frame = cap.read()
    assert ok and frame.shape == (720, 1280, 3)
    # annotated image differs from the input (overlay drawn) but has its size
    ann = cv2.imread(str(demo_out / "astronaut_annotated.png"))
    src = cv2.imread(str(demo_out / "inputs" / "astronaut.png"))
    assert ann.shape == src.shape and np.abs(ann.astype(int) - src).mean() > 1.0
    rows = list(csv.DictReader(open(demo_out / "results.csv")))
    assert {"frame", "track_id", "valence", "arousal", "p_Happy", "bs_jawOpen", "yaw_deg"} <= set(rows[0])
    assert len(rows) >= len(recs)


def _bad_folder(root):
    imgs = dict(sample_images())
    face = imgs["astronaut.jpg"]
    d = root / "inputs"
    d.mkdir()
    bgr = face[:, :, ::-1]
    cv2.imwrite(str(d / "a_ok.jpg"), bgr)
    cv2.imwrite(str(d / "b_grey.png"), cv2.cvtColor(face, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(d / "c_rgba.png"), np.concatenate([bgr, np.full(face.shape[:2] + (1,), 255, np.uint8)], 2))
    cv2.imwrite(str(d / "d_16bit.png"), bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(d / "e_tiny.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(d / "f_noface.png"), np.full((240, 320, 3), 90, np.uint8))
    (d / "g_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    (d / "h_empty.mp4").write_bytes(b"")
    vw = cv2.VideoWriter(str(d / "i_full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for k in range(12):
        vw.write(np.full((240, 320, 3), k * 10, np.uint8))
    vw.release()
    data = (d / "i_full.avi").read_bytes()
    (d / "i_full.avi").unlink()
    (d / "j_truncated.avi").write_bytes(data[: len(data) // 2])
    (d / "k_notes.txt").write_text("not media")
    big = np.zeros((6000, 8000, 3), np.uint8)
    cv2.imwrite(str(d / "l_huge.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 50])
    return d


def test_bad_inputs_counted(tmp_path, capsys):
    d = _bad_folder(tmp_path)
    out = tmp_path / "out"
    summ = tmp_path / "summary.json"
    assert main(["run", str(d), "--out", str(out), "--jsonl", "--csv", "--quiet", "--summary-json", str(summ)]) == 0
    s = json.loads(summ.read_text())
    printed = capsys.readouterr().out
    assert s["skipped"] == {"frame too small": 1, "unreadable or corrupt input": 1, "empty video": 1,
                            "not an image or video file": 1}
    assert any("g_corrupt.jpg" in m for m in s["messages"])
    assert any("j_truncated.avi" in w and "truncated" in w for w in s["warnings"])
    # a_ok, b_grey, c_rgba, d_16bit have the face; f_noface, l_huge and the video frames have none
    recs = _records(out / "results.jsonl")
    faces = {r["source"].split("/")[-1]: len(r["faces"]) for r in recs if not r["source"].endswith(".avi")}
    assert faces["a_ok.jpg"] == faces["b_grey.png"] == faces["c_rgba.png"] == faces["d_16bit.png"] == 1
    assert faces["f_noface.png"] == 0 and faces["l_huge.jpg"] == 0
    n_video = sum(1 for r in recs if r["source"].endswith("j_truncated.avi"))
    assert 0 < n_video < 12
    assert s["frames"] == 6 + n_video and s["faces"] == 4
    assert s["frames_without_face"] == 2 + n_video
    # every item has a JSONL record, skipped ones with their reason
    assert len(recs) == s["items"] == s["frames"] + sum(s["skipped"].values())
    assert "skipped: 4" in printed and "latency per stage" in printed and "p90" in printed


def test_show_needs_gui(tmp_path, capsys):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((40, 40, 3), np.uint8))
    import re

    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui is not None and gui.group(1).upper() != "NONE":
        pytest.skip(f"this OpenCV has a GUI backend ({gui.group(1)})")
    assert main(["run", str(img), "--show", "--out", str(tmp_path / "o")]) == 2
    assert "opencv-python-headless" in capsys.readouterr().err


def test_cli_equals_api_on_clip(tmp_path):
    imgs = dict(sample_images())
    frames = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA)
              for f in clip_frames(imgs["astronaut.jpg"], imgs["grace_hopper.jpg"])[18:30]]
    video = write_video(tmp_path / "clip.mp4", frames, fps=15)
    out = tmp_path / "out"
    assert main(["run", str(video), "--out", str(out), "--jsonl", "--every", "4", "--smoothing", "1",
                 "--quiet"]) == 0
    cli = _records(out / "results.jsonl")
    p = Pipeline(detect_every=4, smoothing=1.0)
    cap = cv2.VideoCapture(str(video))
    api, i = [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        api.append(json.loads(json.dumps(p.process(bgr[:, :, ::-1], frame_index=i, time_s=i / 15.0,
                                                   source=str(video)).to_record())))
        i += 1
    assert len(api) == len(cli) == 12
    for a, c in zip(api, cli):
        a.pop("timings_ms"), c.pop("timings_ms")
        assert a == c
    assert any(r["faces"] for r in cli) and any(not r["faces"] for r in cli)
