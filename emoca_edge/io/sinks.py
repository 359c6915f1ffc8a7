"""Result sinks: JSON Lines, CSV, annotated images and videos, ``.npz`` arrays, ``.obj`` meshes.

Every sink has ``write(item, frame, result)`` (a :class:`~emoca_edge.io.sources.SourceItem`, the RGB
frame and its :class:`~emoca_edge.pipeline.FrameResult`), ``skip(item, message)`` for items that could
not be processed, and ``close()``.
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np

AFFECTNET = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")


def _safe_stem(name: str) -> str:
    stem = Path(str(name)).stem if "://" not in str(name) else "stream"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "frames"
    return stem


class Sink:
    def write(self, item, frame, result) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def skip(self, item, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class JsonlSink(Sink):
    """One JSON record per frame (schema ``emoca_edge/schema/frame_record.schema.json``).
    Items that could not be read get a record with ``skipped`` set and no faces."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w", encoding="utf-8")

    def write(self, item, frame, result) -> None:
        rec = result.to_record()
        try:
            line = json.dumps(rec, allow_nan=False)
        except ValueError:  # NaN / infinity somewhere (e.g. a failed fit): JSON has no such numbers -> null
            line = json.dumps(_finite_or_none(rec), allow_nan=False)
        self._f.write(line + "\n")

    def skip(self, item, message: str) -> None:
        from ..pipeline import SCHEMA_VERSION

        rec = {"schema_version": SCHEMA_VERSION, "frame": int(item.index), "time_s": item.time_s,
               "source": item.stream, "width": None, "height": None, "bundle": None, "detector_ran": False,
               "skipped": message, "faces": [], "timings_ms": {}}
        self._f.write(json.dumps(rec, allow_nan=False) + "\n")

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


def csv_columns(blendshape_names=()) -> list[str]:
    cols = ["frame", "time_s", "source", "skipped", "track_id", "x0", "y0", "x1", "y1", "score",
            "detection_score", "pitch_deg", "yaw_deg", "roll_deg", "rot_x", "rot_y", "rot_z", "tx", "ty", "tz",
            "valence", "arousal", "label"]
    cols += [f"p_{c}" for c in AFFECTNET]
    cols += [f"bs_{n}" for n in blendshape_names]
    return cols


def _finite_or_none(obj):
    """``obj`` with every non-finite float replaced by None (recursively through dicts and lists)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


class CsvSink(Sink):
    """Scalar columns, one row per face (one row with empty face columns for a frame without faces
    or a skipped item). Blendshape columns (``bs_<ARKit name>``) follow the first face seen."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict] = []
        self._bs_names: list[str] | None = None

    def write(self, item, frame, result) -> None:
        base = {"frame": result.frame_index, "time_s": "" if result.time_s is None else f"{result.time_s:.6f}",
                "source": result.source or item.stream, "skipped": result.skipped or ""}
        if not result.faces:
            self._rows.append(base)
            return
        for f in result.faces:
            row = dict(base)
            row.update(track_id=f.track_id, score=f"{f.score:.4f}",
                       detection_score="" if f.detection_score is None else f"{f.detection_score:.4f}")
            row.update({k: f"{v:.2f}" for k, v in zip(("x0", "y0", "x1", "y1"), f.box)})
            if f.pose is not None:
                e = np.asarray(f.pose.euler_deg, dtype=np.float64)
                r = np.asarray(f.pose.rotation_vector, dtype=np.float64)
                t = np.asarray(f.pose.translation, dtype=np.float64)
                row.update(pitch_deg=f"{e[0]:.3f}", yaw_deg=f"{e[1]:.3f}", roll_deg=f"{e[2]:.3f}",
                           rot_x=f"{r[0]:.6f}", rot_y=f"{r[1]:.6f}", rot_z=f"{r[2]:.6f}",
                           tx=f"{t[0]:.4f}", ty=f"{t[1]:.4f}", tz=f"{t[2]:.4f}")
            if f.emotion is not None:
                row.update(valence=f"{f.valence:.4f}", arousal=f"{f.arousal:.4f}", label=f.label)
                row.update({f"p_{k}": f"{v:.4f}" for k, v in f.expression.items()})
            if self._bs_names is None and f.blendshapes:
                self._bs_names = list(f.blendshapes.keys())
            row.update({f"bs_{k}": f"{v:.4f}" for k, v in f.blendshapes.items()})
            self._rows.append(row)

    def skip(self, item, message: str) -> None:
        self._rows.append({"frame": item.index, "time_s": "" if item.time_s is None else f"{item.time_s:.6f}",
                           "source": item.stream, "skipped": message})

    def close(self) -> None:
        cols = csv_columns(self._bs_names or ())
        with open(self.path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in self._rows:
                w.writerow(r)
        self._rows = []


class AnnotatedSink(Sink):
    """Annotated outputs in ``out_dir``: ``<name>_annotated.png`` per still image and
    ``<name>_annotated.mp4`` per video/camera/stream (cv2.VideoWriter, mp4v, at the source's fps).
    ``images``/``video`` switch the two kinds on or off. ``show``: also display frames in a window
    (needs an OpenCV build with GUI support)."""

    def __init__(self, out_dir, images: bool = True, video: bool = True, show: bool = False,
                 mesh: bool = True, landmarks: bool = True):
        self.out_dir = Path(out_dir)
        self.images, self.video, self.show = images, video, show
        self.mesh, self.landmarks = mesh, landmarks
        self._writer = None
        self._writer_stream = None
        self._writer_size = None
        self._used: set[str] = set()
        self.written: list[Path] = []
        if show:
            check_gui()

    def _unique(self, stem: str, ext: str) -> Path:
        name, k = f"{stem}_annotated{ext}", 1
        while name in self._used:
            k += 1
            name = f"{stem}_{k}_annotated{ext}"
        self._used.add(name)
        return self.out_dir / name

    def write(self, item, frame, result) -> None:
        from ..annotate import annotate

        if not (self.show or (self.images and not item.is_video) or (self.video and item.is_video)):
            return
        img = annotate(frame, result, mesh=self.mesh, landmarks=self.landmarks)
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        if item.is_video and self.video:
            if self._writer is None or self._writer_stream != item.stream:
                self._close_writer()
                path = self._unique(_safe_stem(item.stream), ".mp4")
                path.parent.mkdir(parents=True, exist_ok=True)
                h, w = bgr.shape[:2]
                fps = float(item.fps or 30.0)
                self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not self._writer.isOpened():
                    raise RuntimeError(f"{path}: OpenCV cannot open an mp4 (mp4v) video writer")
                self._writer_stream, self._writer_size = item.stream, (w, h)
                self.written.append(path)
            if (bgr.shape[1], bgr.shape[0]) != self._writer_size:
                bgr = cv2.resize(bgr, self._writer_size, interpolation=cv2.INTER_AREA)
            self._writer.write(bgr)
        elif not item.is_video and self.images:
            path = self._unique(_safe_stem(item.stream), ".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), bgr):
                raise RuntimeError(f"{path}: cannot write the annotated image")
            self.written.append(path)
        if self.show:
            cv2.imshow("emoca-edge", bgr)
            cv2.waitKey(1)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.release()
        self._writer = self._writer_stream = self._writer_size = None

    def close(self) -> None:
        self._close_writer()
        if self.show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass


def check_gui() -> None:
    """Raise a clear error if this OpenCV build cannot open windows (opencv-python-headless)."""
    info = cv2.getBuildInformation()
    m = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    if m is None or m.group(1).upper() == "NONE":
        raise RuntimeError("--show needs an OpenCV build with GUI support, but this one has none "
                           "(opencv-python-headless). Install opencv-python instead of "
                           "opencv-python-headless to display frames, or drop --show and use --video.")


class NpzSink(Sink):
    """All per-face arrays of the run in one ``.npz`` (no pickled objects; load with ``np.load``).

    Per frame (N rows): ``frame_index``, ``frame_time_s`` (NaN for still images), ``frame_num_faces``,
    ``frame_source``. Per face (F rows, in frame order): ``face_frame`` (row's frame index),
    ``track_id``, ``box`` (F,4), ``score``, ``landmarks`` (F,478,3) frame px, ``blendshapes`` (F,52)
    with ``blendshape_names``, ``pose_rotation`` (F,3,3), ``pose_rotation_vector`` (F,3),
    ``pose_translation`` (F,3), ``pose_euler_deg`` (F,3), ``valence``, ``arousal``, ``expression``
    (F,8) with ``expression_names``; ``mesh_faces`` (triangles of the mesh drawn); with a bundle
    ``param_<output name>`` for every reconstruction output (``param_vertices`` (F,5023,3) model space).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._frames: list[tuple] = []
        self._faces: list = []
        self._mesh_faces = None

    def write(self, item, frame, result) -> None:
        self._frames.append((result.frame_index, math.nan if result.time_s is None else result.time_s,
                             len(result.faces), str(result.source or item.stream)))
        for f in result.faces:
            self._faces.append((result.frame_index, f))
            if self._mesh_faces is None and f.mesh_faces is not None:
                self._mesh_faces = np.asarray(f.mesh_faces, dtype=np.int32)

    def close(self) -> None:
        arrays: dict[str, np.ndarray] = {
            "frame_index": np.array([r[0] for r in self._frames], dtype=np.int64),
            "frame_time_s": np.array([r[1] for r in self._frames], dtype=np.float64),
            "frame_num_faces": np.array([r[2] for r in self._frames], dtype=np.int64),
            "frame_source": np.array([r[3] for r in self._frames], dtype=np.str_),
            "expression_names": np.array(AFFECTNET, dtype=np.str_),
        }
        faces = [f for _, f in self._faces]
        arrays["face_frame"] = np.array([i for i, _ in self._faces], dtype=np.int64)
        arrays["track_id"] = np.array([f.track_id for f in faces], dtype=np.int64)
        arrays["box"] = np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4)
        arrays["score"] = np.array([f.score for f in faces], dtype=np.float32)
        arrays["landmarks"] = np.array([f.landmarks for f in faces], dtype=np.float32).reshape(-1, 478, 3)
        names = list(faces[0].blendshapes.keys()) if faces and faces[0].blendshapes else []
        arrays["blendshape_names"] = np.array(names, dtype=np.str_)
        arrays["blendshapes"] = np.array([[f.blendshapes.get(n, np.nan) for n in names] for f in faces],
                                         dtype=np.float32).reshape(len(faces), len(names))
        nan3 = np.full(3, np.nan)
        arrays["pose_rotation"] = np.array([f.pose.rotation if f.pose is not None else np.full((3, 3), np.nan)
                                            for f in faces], dtype=np.float64).reshape(-1, 3, 3)
        for key in ("rotation_vector", "translation", "euler_deg"):
            arrays[f"pose_{key}"] = np.array([getattr(f.pose, key) if f.pose is not None else nan3 for f in faces],
                                             dtype=np.float64).reshape(-1, 3)
        arrays["valence"] = np.array([np.nan if f.valence is None else f.valence for f in faces], dtype=np.float32)
        arrays["arousal"] = np.array([np.nan if f.arousal is None else f.arousal for f in faces], dtype=np.float32)
        arrays["expression"] = np.array([f.emotion.probabilities if f.emotion is not None else np.full(8, np.nan)
                                         for f in faces], dtype=np.float32).reshape(-1, 8)
        if self._mesh_faces is not None:
            arrays["mesh_faces"] = self._mesh_faces
        if faces and faces[0].params:
            for k in faces[0].params:
                try:
                    arrays[f"param_{k}"] = np.stack([np.asarray(f.params[k]) for f in faces])
                except (KeyError, ValueError):
                    continue
        np.savez_compressed(self.path, **arrays)


def write_obj(path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as Wavefront OBJ (1-based indices)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64) + 1
    with open(path, "w", encoding="ascii") as fh:
        fh.write("# emoca-edge mesh\n")
        fh.write("\n".join(f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v))
        fh.write("\n")
        fh.write("\n".join(f"f {a} {b} {c}" for a, b, c in f))
        fh.write("\n")


class ObjSink(Sink):
    """One ``.obj`` per face per frame in ``out_dir``: ``<source>_f<frame>_t<track>.obj``.

    With a bundle: the FLAME mesh in model space (metres, +y up, +z towards the camera). Without:
    the MediaPipe face mesh (canonical triangles) from the frame landmarks as (x, -y, -z) in frame
    pixels, so that +y is up and +z points towards the camera.
    """

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.written: list[Path] = []

    def write(self, item, frame, result) -> None:
        for f in result.faces:
            if "vertices" in f.params and f.mesh_faces is not None:
                verts = np.asarray(f.params["vertices"], dtype=np.float64)
            elif f.mesh_faces is not None:
                verts = np.asarray(f.landmarks, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
            else:
                continue
            path = self.out_dir / f"{_safe_stem(item.stream)}_f{result.frame_index:06d}_t{f.track_id}.obj"
            write_obj(path, verts, f.mesh_faces)
            self.written.append(path)
