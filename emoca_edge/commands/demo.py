"""``emoca-edge demo``: the built-in default on shipped public-domain sample media, no network.

Processes the two sample portraits (NASA's astronaut photo, the US Navy portrait of Grace Hopper)
and a short 1280x720 clip generated from them (pan, zoom and roll, two faces, then a cut to a frame
with no face, then one face), and writes annotated PNGs, an annotated MP4, JSONL and CSV.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

HELP = "Run the built-in default on bundled public-domain sample photos and a generated clip."

SAMPLES = ("samples/astronaut.jpg", "samples/grace_hopper.jpg")


def add_arguments(p) -> None:
    p.add_argument("--out", default="emoca_edge_demo", help="output directory (default: %(default)s)")
    p.add_argument("--bundle", default=None, help="use an imported bundle instead of the built-in default")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "tensorrt"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def sample_images() -> list[tuple[str, np.ndarray]]:
    """[(name, RGB uint8 image)] of the shipped sample portraits (checksum-verified)."""
    from ..assets import asset_path
    from ..io import read_image

    return [(Path(name).name, read_image(asset_path(name))) for name in SAMPLES]


def _place(canvas: np.ndarray, img: np.ndarray, cx: float, cy: float, height: float, angle_deg: float) -> None:
    """Paste ``img`` scaled to ``height`` px, rotated by ``angle_deg`` (counter-clockwise), centred at (cx, cy)."""
    s = height / img.shape[0]
    m = cv2.getRotationMatrix2D((img.shape[1] / 2.0, img.shape[0] / 2.0), angle_deg, s)
    m[:, 2] += np.array([cx, cy]) - np.array([img.shape[1] / 2.0, img.shape[0] / 2.0])
    h, w = canvas.shape[:2]
    corners = np.array([[0, 0, 1], [img.shape[1], 0, 1], [0, img.shape[0], 1], [img.shape[1], img.shape[0], 1]], float)
    xy = corners @ m.T
    x0, y0 = np.maximum(np.floor(xy.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(xy.max(0)).astype(int) + 1, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    m[:, 2] -= [x0, y0]  # render only the covered rectangle
    size = (int(x1 - x0), int(y1 - y0))
    warped = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(np.full(img.shape[:2], 255, np.uint8), m, size, flags=cv2.INTER_NEAREST)
    np.copyto(canvas[y0:y1, x0:x1], warped, where=mask[:, :, None] > 0)


def _background(w: int, h: int) -> np.ndarray:
    """A smooth colour gradient (RGB uint8 (h, w, 3)) so the clip has no flat black border."""
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    r = 60 + 50 * x + 10 * np.sin(6.0 * y)
    g = 70 + 40 * y + 0 * x
    b = 95 + 30 * (1 - x) * y
    return np.clip(np.stack(np.broadcast_arrays(r, g, b), -1), 0, 255).astype(np.uint8)


def clip_frames(astronaut: np.ndarray, hopper: np.ndarray, fps: int = 15, size=(1280, 720)) -> list[np.ndarray]:
    """The demo clip as RGB frames (36 frames = 2.4 s at 15 fps, ``size`` = (width, height)).

    Frames 0-23: both portraits, panning, zooming and rolling (up to 12 degrees); 24-26: background
    only (no face); 27-35: the astronaut alone, zooming in. Deterministic.
    """
    w, h = size
    frames = []
    bg = _background(w, h)
    for i in range(36):
        canvas = bg.copy()
        if i < 24:
            u = i / 23.0
            _place(canvas, astronaut, cx=300 + 120 * u, cy=360 + 20 * np.sin(2 * np.pi * u),
                   height=430 + 80 * u, angle_deg=12 * np.sin(2 * np.pi * u))
            _place(canvas, hopper, cx=980 - 100 * u, cy=370, height=520 - 60 * u, angle_deg=-8 * u)
        elif i >= 27:
            u = (i - 27) / 8.0
            _place(canvas, astronaut, cx=640, cy=380, height=560 + 140 * u, angle_deg=-5 + 10 * u)
        frames.append(canvas)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write RGB frames as an MP4 (mp4v)."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write mp4 (mp4v)")
    for f in frames:
        vw.write(np.ascontiguousarray(f[:, :, ::-1]))
    vw.release()
    return path


def run(args) -> int:
    from ..io import AnnotatedSink, CsvSink, JsonlSink, open_source
    from ..io.progress import ProgressBar
    from ..pipeline import Pipeline

    t0 = time.perf_counter()
    out = Path(args.out)
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    images = sample_images()
    for name, img in images:
        cv2.imwrite(str(inputs / name.replace(".jpg", ".png")), np.ascontiguousarray(img[:, :, ::-1]))
    clip = write_video(inputs / "demo_clip.mp4", clip_frames(images[0][1], images[1][1]), fps=15)

    try:
        pipe = Pipeline(bundle=args.bundle, device=args.device, detect_every=10, smoothing=1.0)
    except Exception as exc:
        print(f"emoca-edge demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    sinks = [JsonlSink(out / "results.jsonl"), CsvSink(out / "results.csv"), AnnotatedSink(out)]
    source = open_source(str(inputs))
    progress = None if args.quiet else ProgressBar(source.total)
    summary = pipe.run(source, sinks, progress=progress)
    print(summary.format())
    print(f"Outputs in {out}/:")
    for p in sorted(out.glob("*")):
        if p.is_file():
            print(f"  {p.name}")
    print(f"Done in {time.perf_counter() - t0:.1f} s. The inputs are in {inputs}/ (the clip is {clip.name}).")
    print("This is the built-in default (MediaPipe landmarks, blendshapes, head pose, image-based emotion): "
          "not EMOCA-grade 3D reconstruction. Import licensed EMOCA/DECA/SMIRK checkpoints "
          "(emoca-edge import) and pass --bundle for FLAME geometry.")
    return 0
