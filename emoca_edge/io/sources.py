"""Frame sources: an image, a folder or glob of images, a video file, a camera index, a stream URL.

Every source yields :class:`SourceItem` objects. An item that cannot be used carries ``frame=None``
and an ``error`` that names the file and what is wrong (unreadable, corrupt, unsupported pixel
format ...), so the caller can count it and go on. Frames come out as RGB uint8 (H,W,3):
:func:`to_rgb_uint8` converts grey, grey+alpha, RGBA, 16-bit and float images.
"""
from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                    ".pbm", ".pgm", ".ppm", ".pnm", ".jp2", ".sr", ".ras", ".hdr", ".pic", ".exr"}
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".3gp", ".ts", ".mts", ".m2ts", ".ogv", ".gif", ".y4m"}


class FrameFormatError(ValueError):
    """A frame whose dtype, shape or channel count cannot be turned into an RGB uint8 image."""


def to_rgb_uint8(frame, assume_bgr: bool = False) -> np.ndarray:
    """Convert an image array to RGB uint8 (H,W,3), C-contiguous.

    Accepted: (H,W) or (H,W,1) grey; (H,W,2) grey + alpha; (H,W,3) colour; (H,W,4) colour + alpha
    (alpha is dropped, not composited); dtypes uint8, uint16 (scaled by 255/65535), other integer
    types in their full range, bool, and float in [0, 1] (clipped). ``assume_bgr``: the colour
    channels are in OpenCV's BGR order (files read by OpenCV). Raises :class:`FrameFormatError`.
    """
    if not isinstance(frame, np.ndarray):
        try:
            frame = np.asarray(frame)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise FrameFormatError(f"frame is not an array ({type(frame).__name__}): {exc}") from exc
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (2, 3, 4)):
        raise FrameFormatError(f"frame shape {frame.shape} is not (H,W), (H,W,1), (H,W,2), (H,W,3) or (H,W,4)")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameFormatError(f"frame is empty (shape {frame.shape})")
    dt = frame.dtype
    if dt == np.uint8:
        img = frame
    elif dt == np.bool_:
        img = frame.astype(np.uint8) * 255
    elif dt == np.uint16:
        img = ((frame.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        f = (frame.astype(np.float64) - info.min) / (float(info.max) - info.min)
        img = np.round(f * 255.0).astype(np.uint8)
    elif np.issubdtype(dt, np.floating):
        f = frame.astype(np.float64)
        if not np.isfinite(f).all():
            raise FrameFormatError("float frame contains NaN or infinity")
        img = np.round(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise FrameFormatError(f"unsupported frame dtype {dt}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 2:
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    if assume_bgr:
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8. Raises ``ValueError`` naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes)")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: cannot decode as an image (corrupt or unsupported format)")
    try:
        return to_rgb_uint8(img, assume_bgr=img.ndim == 3 and img.shape[2] >= 3)
    except FrameFormatError as exc:
        raise ValueError(f"{path}: {exc}") from exc


@dataclass
class SourceItem:
    """One frame (or one failed read) from a source.

    ``index``: running index over the whole source. ``stream``: name of the image or video it came
    from; ``stream_index``: frame number within that stream. ``time_s``: timestamp within the
    stream (None for still images). ``is_video``: from a video, camera or stream (tracking applies).
    ``frame``: RGB uint8 (H,W,3), or None with ``error`` saying why.
    """

    index: int
    stream: str
    stream_index: int
    time_s: float | None
    is_video: bool
    frame: np.ndarray | None = None
    error: str | None = None
    fps: float | None = None


@dataclass
class Source:
    """An iterable of :class:`SourceItem`. ``total``: known number of frames (for progress), or None.
    ``warnings``: problems found while reading (truncated video ...), filled during iteration."""

    description: str
    entries: list = field(default_factory=list)  # ("image", path) | ("video", path-or-index) | ("error", name, reason)
    total: int | None = None
    warnings: list = field(default_factory=list)
    max_frames: int | None = None

    def __iter__(self) -> Iterator[SourceItem]:
        index = 0
        for entry in self.entries:
            kind = entry[0]
            if kind == "error":
                yield SourceItem(index=index, stream=entry[1], stream_index=0, time_s=None, is_video=False,
                                 error=entry[2])
                index += 1
            elif kind == "image":
                path = entry[1]
                try:
                    frame, err = read_image(path), None
                except ValueError as exc:
                    frame, err = None, str(exc)
                yield SourceItem(index=index, stream=str(path), stream_index=0, time_s=None, is_video=False,
                                 frame=frame, error=err)
                index += 1
            else:
                for item in self._video(entry[1], index):
                    yield item
                    index += 1
            if self.max_frames is not None and index >= self.max_frames:
                return

    def _video(self, target, start_index: int) -> Iterator[SourceItem]:
        name = f"camera {target}" if isinstance(target, int) else str(target)
        if isinstance(target, str) and "://" not in target:
            p = Path(target)
            if not p.is_file():
                yield SourceItem(start_index, name, 0, None, True, error=f"{name}: no such file")
                return
            if p.stat().st_size == 0:
                yield SourceItem(start_index, name, 0, None, True, error=f"{name}: empty video file (0 bytes)")
                return
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            yield SourceItem(start_index, name, 0, None, True,
                             error=f"{name}: cannot open as a video (corrupt, unsupported codec or unreachable)")
            return
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if not np.isfinite(fps) or fps <= 0 or fps > 1000:
                fps = 30.0
                if not isinstance(target, int):
                    self.warnings.append(f"{name}: frame rate unknown, assuming 30 fps")
            expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            n = 0
            while True:
                if self.max_frames is not None and start_index + n >= self.max_frames:
                    return
                ok, img = cap.read()
                if not ok or img is None:
                    break
                try:
                    frame, err = to_rgb_uint8(img, assume_bgr=img.ndim == 3 and img.shape[2] >= 3), None
                except FrameFormatError as exc:
                    frame, err = None, f"{name} frame {n}: {exc}"
                yield SourceItem(start_index + n, name, n, n / fps, True, frame=frame, error=err, fps=fps)
                n += 1
            if n == 0:
                yield SourceItem(start_index, name, 0, None, True, error=f"{name}: video has no decodable frames")
            elif not isinstance(target, int) and "://" not in str(target) and expected > n:
                self.warnings.append(f"{name}: truncated or partly corrupt, decoded {n} of {expected} frames")
        finally:
            cap.release()


def _kind_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "unknown"


def _video_frame_count(path: Path) -> int | None:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return n if n > 0 else None
    finally:
        cap.release()


def _file_entry(path: Path) -> tuple:
    kind = _kind_of(path)
    if kind == "unknown":
        # decide by content: an image OpenCV can decode, else try it as a video
        try:
            data = np.fromfile(str(path), dtype=np.uint8)
            ok = data.size > 0 and cv2.imdecode(data, cv2.IMREAD_UNCHANGED) is not None
        except OSError:
            ok = False
        kind = "image" if ok else "video"
    return (kind, str(path))


def open_source(spec, max_frames: int | None = None) -> Source:
    """A :class:`Source` for ``spec``.

    ``spec``: an ``int`` or digit string (camera index), a URL containing ``://`` (stream opened
    by OpenCV), a directory (its image and video files, sorted by name, not recursive), a file
    (image or video, by extension, else by content), or a glob pattern (``*``, ``?``, ``[``).
    A path matching nothing raises ``FileNotFoundError``. ``max_frames`` stops after that many items.
    """
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        return Source(f"camera {idx}", [("video", idx)], None, max_frames=max_frames)
    spec = str(spec)
    if "://" in spec:
        return Source(f"stream {spec}", [("video", spec)], None, max_frames=max_frames)
    p = Path(spec)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        entries = []
        for f in files:
            kind = _kind_of(f)
            if kind == "unknown":
                entries.append(("error", str(f), f"{f}: not an image or video file (extension {f.suffix or 'none'})"))
            else:
                entries.append((kind, str(f)))
        if not entries:
            raise FileNotFoundError(f"{spec}: folder has no files")
        src = Source(f"folder {spec}", entries, max_frames=max_frames)
    elif p.is_file():
        src = Source(f"file {spec}", [_file_entry(p)], max_frames=max_frames)
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(f) for f in _glob.glob(spec, recursive=True) if Path(f).is_file())
        if not files:
            raise FileNotFoundError(f"{spec}: glob pattern matches no files")
        src = Source(f"glob {spec}", [_file_entry(f) for f in files], max_frames=max_frames)
    else:
        raise FileNotFoundError(f"{spec}: no such file, folder, camera index or URL")
    total = 0
    for e in src.entries:
        if e[0] == "video":
            n = _video_frame_count(Path(e[1]))
            if n is None:
                total += 1
            else:
                total += n
        else:
            total += 1
    src.total = total if max_frames is None else min(total, max_frames)
    return src


def iter_array_frames(frames, fps: float = 30.0, stream: str = "array") -> Iterator[SourceItem]:
    """SourceItems for an iterable of in-memory frames treated as one video at ``fps``."""
    for n, f in enumerate(frames):
        try:
            frame, err = to_rgb_uint8(f), None
        except FrameFormatError as exc:
            frame, err = None, f"{stream} frame {n}: {exc}"
        yield SourceItem(n, stream, n, n / fps, True, frame=frame, error=err, fps=fps)
