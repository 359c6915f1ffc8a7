"""Frame sources (conversion, bad files, videos) and the file sinks that need no models."""
import json

import cv2
import numpy as np
import pytest

from emoca_edge.io import FrameFormatError, open_source, read_image, to_rgb_uint8, write_obj
from emoca_edge.io.progress import ProgressBar


def test_convert_grey_rgba_16bit_float():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    out = to_rgb_uint8(grey)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    assert (out == grey[:, :, None]).all()
    assert (to_rgb_uint8(grey[:, :, None]) == out).all()
    rgba = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    assert (to_rgb_uint8(rgba) == rgba[:, :, :3]).all()
    g16 = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    # 16-bit -> 8-bit is v * 255 / 65535 rounded: 0, 1, 255, 128
    assert to_rgb_uint8(g16)[0, :, 0].tolist() == [0, 1, 255, 128]
    f = np.array([[0.0, 0.5, 1.0, 2.0]], dtype=np.float32)
    assert to_rgb_uint8(f)[0, :, 0].tolist() == [0, 128, 255, 255]
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV order
    assert to_rgb_uint8(bgr, assume_bgr=True)[0, 0].tolist() == [0, 0, 200]


@pytest.mark.parametrize("bad,msg", [
    (np.zeros((4, 4, 5), np.uint8), "shape"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
    (np.zeros((4,), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.complex64), "dtype"),
    (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
])
def test_convert_rejects(bad, msg):
    with pytest.raises(FrameFormatError, match=msg):
        to_rgb_uint8(bad)


def test_read_image_errors(tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ValueError, match="corrupt.jpg: cannot decode"):
        read_image(corrupt)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: empty file"):
        read_image(empty)
    with pytest.raises(ValueError, match="no such file"):
        read_image(tmp_path / "missing.png")
    img16 = (np.arange(12 * 10 * 3).reshape(12, 10, 3) * 150).astype(np.uint16)
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), img16)  # written as BGR 16-bit
    out = read_image(p)
    ref = ((img16[:, :, ::-1].astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    assert (out == ref).all()


def _write_video(path, n, size=(64, 48), fps=10):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        vw.write(np.full((size[1], size[0], 3), (i * 10) % 256, np.uint8))
    vw.release()


def test_folder_with_bad_items(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 40, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    (tmp_path / "c.txt").write_text("hello")
    _write_video(tmp_path / "d.mp4", 5)
    (tmp_path / "e.mp4").write_bytes(b"")
    src = open_source(tmp_path)
    items = list(src)
    errs = {i.stream.split("/")[-1]: i.error for i in items if i.error}
    assert "cannot decode" in errs["b.jpg"]
    assert "not an image or video" in errs["c.txt"]
    assert "empty video file" in errs["e.mp4"]
    video = [i for i in items if i.stream.endswith("d.mp4")]
    assert len(video) == 5 and all(i.is_video and i.frame is not None for i in video)
    assert [i.stream_index for i in video] == list(range(5))
    np.testing.assert_allclose([i.time_s for i in video], np.arange(5) / 10.0)
    assert [i.index for i in items] == list(range(len(items)))


def test_truncated_video(tmp_path):
    # AVI/MJPG keeps its index at the front: a cut file still decodes its first frames
    vw = cv2.VideoWriter(str(tmp_path / "good.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(30):
        vw.write(np.full((120, 160, 3), (i * 8) % 256, np.uint8))
    vw.release()
    data = (tmp_path / "good.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 2 // 3])
    src = open_source(tmp_path / "cut.avi")
    items = list(src)
    assert 0 < len(items) < 30 and all(i.frame is not None for i in items)
    assert any("truncated" in w and f"decoded {len(items)} of 30" in w for w in src.warnings)
    # MP4 keeps its index (moov) at the end: a cut file cannot be opened -> one item with a reason
    _write_video(tmp_path / "good.mp4", 30, size=(160, 120))
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    items = list(open_source(tmp_path / "cut.mp4"))
    assert len(items) == 1 and "cut.mp4: cannot open as a video" in items[0].error


def test_glob_and_missing(tmp_path):
    for n in ("x1.png", "x2.png", "y.png"):
        cv2.imwrite(str(tmp_path / n), np.zeros((40, 40, 3), np.uint8))
    src = open_source(str(tmp_path / "x*.png"))
    assert [i.stream.split("/")[-1] for i in src] == ["x1.png", "x2.png"]
    assert src.total == 2
    with pytest.raises(FileNotFoundError, match="matches no files"):
        open_source(str(tmp_path / "z*.png"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_source(str(tmp_path / "nothing.mp4"))


def test_unopenable_stream():
    items = list(open_source("rtsp://127.0.0.1:9/nothing"))
    assert len(items) == 1 and "cannot open" in items[0].error


def test_write_obj(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.5]])
    f = np.array([[0, 1, 2]])
    write_obj(tmp_path / "m.obj", v, f)
    lines = (tmp_path / "m.obj").read_text().splitlines()
    vs = np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("v ")])
    fs = [ln for ln in lines if ln.startswith("f ")]
    np.testing.assert_allclose(vs, v)
    assert fs == ["f 1 2 3"]


def test_progress_line():
    class S:
        items = 5

    import io

    buf = io.StringIO()
    bar = ProgressBar(10, stream=buf)
    bar.update(S())
    bar.finish(S())
    text = buf.getvalue()
    assert "5/10" in text and "ETA" in text and "it/s" in text
    assert json.dumps(text)  # plain text


def test_jsonl_non_finite_becomes_null(tmp_path):
    from types import SimpleNamespace

    from emoca_edge.io import JsonlSink

    class R:
        def to_record(self):
            return {"frame": 0, "faces": [{"valence": float("nan"), "box": [1.0, float("inf"), 2.0, 3.0]}]}

    sink = JsonlSink(tmp_path / "r.jsonl")
    sink.write(SimpleNamespace(), None, R())
    sink.close()
    rec = json.loads((tmp_path / "r.jsonl").read_text())
    assert rec["faces"][0] == {"valence": None, "box": [1.0, None, 2.0, 3.0]}
