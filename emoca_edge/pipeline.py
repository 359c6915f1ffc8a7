"""The frame -> faces pipeline: detection, tracking, landmarks, head pose, emotion, optional bundle.

Frames in (RGB uint8 (H,W,3) NumPy arrays; grey, RGBA, 16-bit and float frames are converted),
typed results out: :class:`FrameResult` with one :class:`FaceResult` per face. All points are frame
pixels (x right, y down, edge coordinates: the centre of pixel column j is x = j + 0.5).

Without a bundle (the built-in default) a face has its box, score, 478 MediaPipe landmarks with
depth, 52 ARKit blendshape scores, head pose (fit of MediaPipe's canonical face mesh), emotion from
the built-in image classifier, and the face mesh (canonical topology) for rendering. This is not
EMOCA-grade reconstruction: importing licensed EMOCA/DECA/SMIRK checkpoints as a bundle adds FLAME
shape/expression/pose/camera parameters and the FLAME mesh (and EMOCA's emotion regressor when the
bundle has it).

Consecutive :meth:`Pipeline.process` calls are treated as frames of one video: faces keep their
``track_id``, the landmark region of a tracked face comes from its previous landmarks (the detector
runs every ``detect_every`` frames and when a face is lost), and outputs are smoothed over time with
a One-Euro filter when ``smoothing`` is set. Call :meth:`Pipeline.reset` between unrelated images.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from . import crop as crop_mod
from .io.sources import FrameFormatError, Source, iter_array_frames, open_source, to_rgb_uint8
from .track import SmoothingConfig, Tracker, box_iou

SCHEMA_VERSION = "1.0"
MIN_FRAME_SIDE = 32          # px; smaller frames are skipped with a reason
MAX_FRAME_PIXELS = 100_000_000  # 100 MP; larger frames are skipped with a reason
PRESENCE_THRESHOLD = 0.5     # landmarker face presence below this = face lost
STAGES = ("detect", "landmarks", "head_pose", "crop", "reconstruct", "emotion", "smooth", "total")


@dataclass
class FaceResult:
    """One face in one frame.

    ``box``: (4,) [x0, y0, x1, y1] frame px (extent of the landmarks). ``score``: face presence
    from the landmark model in [0,1]. ``detection_score``: the detector's score for this face on the
    last frame the detector ran (None before). ``landmarks``: (478,3) frame px, z in the same pixel
    scale (smaller = nearer). ``blendshapes``: {ARKit name: score in [0,1]}. ``pose``: HeadPose.
    ``emotion``: Emotion (AffectNet probabilities, valence, arousal in [-1,1]).
    ``mesh_vertices``/``mesh_faces``: the mesh drawn on the frame, vertices (V,3) in crop pixels of
    ``mesh_to_frame`` (a (2,3) crop -> frame map; identity for the default mesh, which is in frame px).
    ``params``: bundle outputs for this face (``shape``, ``expression``, ``global_pose``, ``jaw_pose``,
    ``camera``, ``vertices`` model space, ``landmarks2d`` frame px ...); empty without a bundle.
    ``crop``: the bundle crop (CropTransform) or None.
    """

    track_id: int
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    blendshapes: dict
    pose: Any
    emotion: Any
    detection_score: float | None = None
    mesh_vertices: np.ndarray | None = None
    mesh_faces: np.ndarray | None = None
    mesh_to_frame: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    crop: crop_mod.CropTransform | None = None

    @property
    def valence(self) -> float | None:
        return None if self.emotion is None else float(self.emotion.valence)

    @property
    def arousal(self) -> float | None:
        return None if self.emotion is None else float(self.emotion.arousal)

    @property
    def expression(self) -> dict:
        return {} if self.emotion is None else {k: float(v) for k, v in self.emotion.as_dict().items()}

    @property
    def label(self) -> str | None:
        return None if self.emotion is None else str(self.emotion.label)

    def to_record(self) -> dict:
        """This face as a JSON-ready dict (JSONL schema, see ``emoca_edge/schema``)."""
        rec = {
            "track_id": int(self.track_id),
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "detection_score": None if self.detection_score is None else round(float(self.detection_score), 4),
            "landmarks": np.round(np.asarray(self.landmarks, dtype=np.float64), 2).tolist(),
            "blendshapes": {k: round(float(v), 4) for k, v in self.blendshapes.items()},
            "pose": None,
            "valence": None if self.emotion is None else round(float(self.emotion.valence), 4),
            "arousal": None if self.emotion is None else round(float(self.emotion.arousal), 4),
            "expression": {k: round(v, 4) for k, v in self.expression.items()},
            "label": self.label,
            "emotion_source": None if self.emotion is None else str(self.emotion.source),
        }
        if self.pose is not None:
            rec["pose"] = {
                "rotation": np.round(np.asarray(self.pose.rotation, dtype=np.float64), 6).tolist(),
                "rotation_vector": np.round(np.asarray(self.pose.rotation_vector, dtype=np.float64), 6).tolist(),
                "translation": np.round(np.asarray(self.pose.translation, dtype=np.float64), 4).tolist(),
                "euler_deg": np.round(np.asarray(self.pose.euler_deg, dtype=np.float64), 3).tolist(),
            }
        if self.params:
            rec["params"] = {k: np.round(np.asarray(v, dtype=np.float64), 6).tolist()
                             for k, v in self.params.items() if k in RECORD_PARAMS}
        if self.crop is not None:
            rec["crop"] = {"center": np.round(self.crop.center, 3).tolist(), "size": float(self.crop.box_size),
                           "frame_to_crop": np.round(self.crop.matrix, 8).tolist()}
        return rec


# bundle outputs written to JSONL per face (large arrays such as vertices go to .npz / .obj only)
RECORD_PARAMS = ("shape", "expression", "global_pose", "jaw_pose", "camera", "eyelids", "landmarks2d",
                 "albedo", "light", "detail")


@dataclass
class FrameResult:
    """The faces of one frame. ``timings``: milliseconds per stage (keys from :data:`STAGES` that ran).
    ``skipped``: why the frame was not processed (too small ...) or None. ``detector_ran``: whether the
    face detector ran on this frame (False on tracked frames)."""

    frame_index: int
    time_s: float | None
    width: int
    height: int
    faces: list[FaceResult] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    detector_ran: bool = False
    skipped: str | None = None
    source: str | None = None
    bundle: str | None = None

    def to_record(self) -> dict:
        """This frame as one JSON Lines record (schema version :data:`SCHEMA_VERSION`)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "frame": int(self.frame_index),
            "time_s": None if self.time_s is None else round(float(self.time_s), 6),
            "source": self.source,
            "width": int(self.width),
            "height": int(self.height),
            "bundle": self.bundle,
            "detector_ran": bool(self.detector_ran),
            "skipped": self.skipped,
            "faces": [f.to_record() for f in self.faces],
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
        }


class Pipeline:
    """Frames in, faces out.

    ``bundle``: path of an imported bundle directory (EMOCA/DECA/SMIRK) or None for the built-in
    default. ``device``: cpu | cuda | tensorrt. ``max_faces``: keep at most this many faces per frame
    (0 = all). ``detect_every``: run the detector at least every N frames of a video (1 = every
    frame); in between, faces are tracked from their previous landmarks. ``smoothing``: None/0 (off),
    a strength (1 = default One-Euro settings, larger = smoother) or a :class:`SmoothingConfig`.
    ``score_threshold``: detector threshold. ``refine_crop`` (bundles with the ``deca68`` crop):
    reconstruct twice, the second time from the crop given by the bundle's own 68 landmarks
    (``landmarks2d`` of the first pass mapped to the frame) instead of the MediaPipe approximation
    of the 68-point box; twice the reconstruction cost.
    """

    def __init__(self, bundle=None, device: str = "cpu", max_faces: int = 0, detect_every: int = 10,
                 smoothing: float | SmoothingConfig | None = None, score_threshold: float = 0.5,
                 refine_crop: bool = False):
        from .detect import FaceDetector
        from .landmarks import FACE_MESH_TRIANGLES, FaceLandmarker

        if max_faces < 0:
            raise ValueError(f"max_faces must be >= 0, got {max_faces}")
        self.device = device
        self.max_faces = int(max_faces)
        self.detect_every = max(1, int(detect_every))
        if isinstance(smoothing, SmoothingConfig) or smoothing is None:
            self.smoothing = smoothing
        else:
            self.smoothing = SmoothingConfig.from_strength(float(smoothing))
        self.detector = FaceDetector(device=device, score_threshold=score_threshold, max_faces=max_faces)
        self.landmarker = FaceLandmarker(device=device)
        self.mesh_triangles = np.asarray(FACE_MESH_TRIANGLES, dtype=np.int32)
        self.bundle_path = None if bundle is None else str(bundle)
        self.reconstructor = None
        self.crop_convention = None
        self.refine_crop = bool(refine_crop)
        if bundle is not None:
            from .reconstruct import Reconstructor

            self.reconstructor = Reconstructor(bundle, device=device)
            self.crop_convention = _bundle_crop_convention(self.reconstructor.bundle)
        self._emotion = None
        self.tracker = Tracker()
        self.detector_calls = 0
        self.frames_seen = 0
        self._frames_since_detect = 0
        self._det_scores: dict[int, float] = {}
        self._auto_index = 0

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget all tracks and filters (call between unrelated images or videos)."""
        self.tracker.reset()
        self._frames_since_detect = 0
        self._det_scores = {}

    @property
    def emotion_classifier(self):
        if self._emotion is None:
            from .emotion import ImageEmotionClassifier

            self._emotion = ImageEmotionClassifier(device=self.device)
        return self._emotion

    # ------------------------------------------------------------------ per frame
    def process(self, frame, frame_index: int | None = None, time_s: float | None = None,
                source: str | None = None) -> FrameResult:
        """Process one frame (RGB). Raises :class:`FrameFormatError` for frames that cannot be
        converted; frames too small or too large give a result with ``skipped`` set and no faces."""
        t_start = time.perf_counter()
        if frame_index is None:
            frame_index = self._auto_index
        self._auto_index = frame_index + 1
        frame = to_rgb_uint8(frame)
        h, w = frame.shape[:2]
        res = FrameResult(frame_index=int(frame_index), time_s=time_s, width=w, height=h, source=source,
                          bundle=self.bundle_path)
        if min(h, w) < MIN_FRAME_SIDE:
            res.skipped = f"frame too small ({w}x{h} px); faces need at least {MIN_FRAME_SIDE} px on each side"
            self.reset()
            return res
        if h * w > MAX_FRAME_PIXELS:
            res.skipped = f"frame too large ({w}x{h} px > {MAX_FRAME_PIXELS // 1_000_000} MP)"
            self.reset()
            return res
        self.frames_seen += 1
        timings: dict[str, float] = {}
        t_smooth = float(time_s) if time_s is not None else float(frame_index) / 30.0

        # 1. which regions to run the landmarker on
        # tracked faces: landmark region from the previous frame's landmarks
        tracked = []
        lost = False
        if self.tracker.tracks:
            t0 = time.perf_counter()
            for tr in self.tracker.tracks:
                region = self.landmarker.region_from_landmarks(tr.points)
                lm = self.landmarker(frame, region)
                if lm.presence >= PRESENCE_THRESHOLD:
                    tracked.append(lm)
                else:
                    lost = True  # a face was lost: re-detect on this frame
            timings["landmarks"] = (time.perf_counter() - t0) * 1e3
        need_detect = (not self.tracker.tracks) or lost or self._frames_since_detect + 1 >= self.detect_every
        if need_detect:
            t0 = time.perf_counter()
            dets = self.detector(frame)
            self.detector_calls += 1
            res.detector_ran = True
            self._frames_since_detect = 0
            timings["detect"] = (time.perf_counter() - t0) * 1e3
            # detections not already covered by a tracked face, and tracks to refresh
            t0 = time.perf_counter()
            tracked_boxes = [_points_box(lm.points) for lm in tracked]
            new = []
            for d in dets:
                if any(box_iou(d.box, b) > 0.3 for b in tracked_boxes):
                    continue
                lm = self.landmarker(frame, self.landmarker.region_from_detection(d))
                if lm.presence >= PRESENCE_THRESHOLD:
                    new.append((lm, float(d.score)))
            timings["landmarks"] = timings.get("landmarks", 0.0) + (time.perf_counter() - t0) * 1e3
            det_boxes = [np.asarray(d.box, dtype=np.float64) for d in dets]
        else:
            self._frames_since_detect += 1
            new, det_boxes, dets = [], [], []
        candidates = [(lm, None) for lm in tracked] + new
        # 2. drop duplicates (two regions converged on one face), keep the best max_faces
        candidates.sort(key=lambda c: -float(c[0].presence))
        kept = []
        for lm, ds in candidates:
            b = _points_box(lm.points)
            if all(box_iou(b, _points_box(k[0].points)) <= 0.5 for k in kept):
                kept.append((lm, ds))
        if self.max_faces > 0:
            kept = kept[: self.max_faces]
        # stable output order: left to right
        kept.sort(key=lambda c: float(_points_box(c[0].points)[0]))
        boxes = [_points_box(lm.points) for lm, _ in kept]
        tracks = self.tracker.update(boxes, [np.asarray(lm.points, dtype=np.float64) for lm, _ in kept])
        live = {tr.track_id for tr in tracks}
        self._det_scores = {k: v for k, v in self._det_scores.items() if k in live}
        for tr, (lm, ds) in zip(tracks, kept):
            if ds is None and det_boxes:
                # a tracked face on a detection frame: take the matching detection's score
                ious = [box_iou(tr.box, db) for db in det_boxes]
                j = int(np.argmax(ious))
                if ious[j] > 0.3:
                    ds = float(dets[j].score)
            if ds is not None:
                self._det_scores[tr.track_id] = ds

        # 3. head pose
        from .head_pose import estimate_head_pose

        t0 = time.perf_counter()
        poses = [estimate_head_pose(np.asarray(lm.points), w, h) for lm, _ in kept]
        timings["head_pose"] = (time.perf_counter() - t0) * 1e3

        # 4. bundle reconstruction (all faces in one batch)
        recon_out, crops_t = None, []
        if self.reconstructor is not None and kept:
            t0 = time.perf_counter()
            crops = []
            for lm, _ in kept:
                ct = crop_mod.crop_transform(np.asarray(lm.points), self.crop_convention)
                crops_t.append(ct)
                crops.append(crop_mod.warp(frame, ct))
            timings["crop"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            recon_out = self.reconstructor(np.stack(crops, axis=0))
            timings["reconstruct"] = (time.perf_counter() - t0) * 1e3
            if self.refine_crop and self.crop_convention == "deca68" and "landmarks2d" in recon_out:
                t0 = time.perf_counter()
                lmk = [crop_mod.to_frame(np.asarray(recon_out["landmarks2d"][i], np.float64), ct)
                       for i, ct in enumerate(crops_t)]
                crops_t = [crop_mod.crop_transform(p, "deca68") for p in lmk]
                crops = [crop_mod.warp(frame, ct) for ct in crops_t]
                timings["crop"] += (time.perf_counter() - t0) * 1e3
                t0 = time.perf_counter()
                recon_out = self.reconstructor(np.stack(crops, axis=0))
                timings["reconstruct"] += (time.perf_counter() - t0) * 1e3

        # 5. emotion
        t0 = time.perf_counter()
        emotions = [None] * len(kept)
        if kept:
            if recon_out is not None and "expression_logits" in recon_out:
                from .emotion import emotion_from_emorec

                emotions = emotion_from_emorec(recon_out["expression_logits"], recon_out.get("valence"),
                                               recon_out.get("arousal"))
            else:
                emotions = self.emotion_classifier.classify_batch(frame, [np.asarray(lm.points) for lm, _ in kept])
        timings["emotion"] = (time.perf_counter() - t0) * 1e3

        # 6. assemble, smoothing per track
        t0 = time.perf_counter()
        cfg = self.smoothing
        for i, (tr, (lm, _), pose, emo) in enumerate(zip(tracks, kept, poses, emotions)):
            pts = tr.smooth("landmarks", np.asarray(lm.points, dtype=np.float64), t_smooth, cfg)
            bs_names = list(lm.blendshapes.keys())
            bs = tr.smooth("blendshapes", np.array([lm.blendshapes[k] for k in bs_names], dtype=np.float64),
                           t_smooth, cfg) if bs_names else np.zeros(0)
            if cfg is not None:
                pose = _smooth_pose(tr, pose, t_smooth, cfg)
                if emo is not None:
                    emo = _smooth_emotion(tr, emo, t_smooth, cfg)
            face = FaceResult(
                track_id=tr.track_id,
                box=_points_box(pts),
                score=float(lm.presence),
                landmarks=pts.astype(np.float32),
                blendshapes={k: float(np.clip(v, 0.0, 1.0)) for k, v in zip(bs_names, bs)},
                pose=pose,
                emotion=emo,
                detection_score=self._det_scores.get(tr.track_id),
                mesh_vertices=pts.astype(np.float32),
                mesh_faces=self.mesh_triangles,
                mesh_to_frame=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
            )
            if recon_out is not None:
                self._attach_bundle(face, recon_out, i, crops_t[i], tr, t_smooth, cfg)
            res.faces.append(face)
        timings["smooth"] = (time.perf_counter() - t0) * 1e3
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        res.timings = timings
        return res

    def _attach_bundle(self, face: FaceResult, out: dict, i: int, ct: crop_mod.CropTransform, tr, t, cfg) -> None:
        from .camera import project_to_pixels

        params = {}
        for k, v in out.items():
            a = np.asarray(v)
            if a.ndim >= 1 and a.shape[0] > i:
                params[k] = a[i]
        for k in ("shape", "expression", "global_pose", "jaw_pose", "camera", "eyelids"):
            if k in params and cfg is not None:
                params[k] = tr.smooth("p_" + k, params[k], t, cfg).astype(np.float32)
        if "landmarks2d" in params:
            params["landmarks2d_crop"] = params["landmarks2d"]
            params["landmarks2d"] = crop_mod.to_frame(params["landmarks2d"], ct).astype(np.float32)
        face.params = params
        face.crop = ct
        if "vertices" in params and "camera" in params:
            verts_crop = project_to_pixels(params["vertices"][None], params["camera"][None], size=ct.size)[0]
            face.mesh_vertices = np.asarray(verts_crop, dtype=np.float32)
            face.mesh_faces = np.asarray(self.reconstructor.bundle.faces, dtype=np.int32)
            face.mesh_to_frame = ct.inverse

    # ------------------------------------------------------------------ whole sources
    def run(self, source, sinks: Iterable = (), progress=None, stride: int = 1) -> "RunSummary":
        """Process a source (path/glob/URL/camera index, a :class:`Source`, or an iterable of frames
        treated as one video) and feed every result to ``sinks``. Unusable items are counted in the
        returned :class:`RunSummary` with their reasons; the run goes on. ``stride``: process every
        Nth frame of videos (the others are counted as ``skipped by stride``)."""
        if isinstance(source, (str, int)) or hasattr(source, "__fspath__"):
            source = open_source(str(source) if hasattr(source, "__fspath__") else source)
        items = iter(source) if isinstance(source, Source) else iter_array_frames(source)
        summary = RunSummary(description=getattr(source, "description", "frames"))
        sinks = list(sinks)
        calls0 = self.detector_calls
        try:
            self._run_items(items, sinks, summary, progress, stride)
        except KeyboardInterrupt:
            summary.warnings.append(f"interrupted by the user after {summary.items} items")
        finally:
            for s in sinks:
                s.close()
            if isinstance(source, Source):
                summary.warnings.extend(source.warnings)
            summary.detector_calls = self.detector_calls - calls0
            if progress is not None:
                progress.finish(summary)
        return summary

    def _run_items(self, items, sinks, summary: "RunSummary", progress, stride: int) -> None:
        stream = None
        for item in items:
            summary.items += 1
            if item.stream != stream or not item.is_video:
                self.reset()
                stream = item.stream
            if item.error is not None:
                summary.skip(_reason_kind(item.error), item.error)
                for s in sinks:
                    s.skip(item, item.error)
            elif item.is_video and stride > 1 and item.stream_index % stride:
                summary.skip("skipped by stride", None)
            else:
                self._run_one(item, sinks, summary)
            if progress is not None:
                progress.update(summary)

    def _run_one(self, item, sinks, summary: "RunSummary") -> None:
        where = item.stream if not item.is_video else f"{item.stream} frame {item.stream_index}"
        try:
            result = self.process(item.frame, frame_index=item.index, time_s=item.time_s, source=item.stream)
        except FrameFormatError as exc:
            msg = f"{where}: {exc}"
            summary.skip("unsupported frame format", msg)
            for s in sinks:
                s.skip(item, msg)
            return
        except Exception as exc:  # a failure on one frame must not end the batch: count it, go on
            msg = f"{where}: processing failed: {type(exc).__name__}: {exc}"
            summary.skip("processing error", msg)
            self.reset()
            for s in sinks:
                s.skip(item, msg)
            return
        if result.skipped is not None:
            summary.skip(_reason_kind(result.skipped), f"{where}: {result.skipped}")
        else:
            summary.add(result)
        t0 = time.perf_counter()
        for s in sinks:
            s.write(item, item.frame, result)
        if sinks:
            summary.timings.setdefault("outputs", []).append((time.perf_counter() - t0) * 1e3)


def _reason_kind(msg: str) -> str:
    m = msg.lower()
    if "too small" in m:
        return "frame too small"
    if "too large" in m:
        return "frame too large"
    if "no decodable frames" in m or "empty video" in m:
        return "empty video"
    if "not an image or video" in m:
        return "not an image or video file"
    if "frame shape" in m or "dtype" in m or "nan" in m or "frame is empty" in m:
        return "unsupported frame format"
    return "unreadable or corrupt input"


@dataclass
class RunSummary:
    """Counts and latencies of one :meth:`Pipeline.run`.

    ``frames``: frames processed; ``faces``: faces found in them; ``frames_without_face``;
    ``skipped``: {reason: count}; ``messages``: the individual messages of skipped items;
    ``warnings``: source-level problems (truncated video ...); ``timings``: {stage: [ms per frame]}.
    """

    description: str = ""
    items: int = 0
    frames: int = 0
    faces: int = 0
    frames_without_face: int = 0
    skipped: Counter = field(default_factory=Counter)
    messages: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    detector_calls: int = 0
    wall_s: float = 0.0
    _t0: float = field(default_factory=time.perf_counter)

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.faces += len(result.faces)
        if not result.faces:
            self.frames_without_face += 1
        for k, v in result.timings.items():
            self.timings.setdefault(k, []).append(float(v))

    def skip(self, reason: str, message: str | None) -> None:
        self.skipped[reason] += 1
        if message:
            self.messages.append(message)

    def latency(self) -> dict:
        """{stage: (mean ms, p90 ms, count)} over the frames where the stage ran."""
        out = {}
        for k, v in self.timings.items():
            a = np.asarray(v, dtype=np.float64)
            if a.size:
                out[k] = (float(a.mean()), float(np.percentile(a, 90)), int(a.size))
        return out

    def format(self) -> str:
        """Human-readable summary (frames, faces, skipped with reasons, mean/p90 latency per stage)."""
        self.wall_s = time.perf_counter() - self._t0
        lines = [f"Summary for {self.description}:",
                 f"  frames processed: {self.frames} (of {self.items} items), faces: {self.faces}, "
                 f"frames without a face: {self.frames_without_face}, detector runs: {self.detector_calls}",
                 f"  wall time: {self.wall_s:.2f} s" + (f" ({self.frames / self.wall_s:.1f} frames/s)"
                                                         if self.wall_s > 0 and self.frames else "")]
        n_skip = sum(self.skipped.values())
        lines.append(f"  skipped: {n_skip}" + ("" if not n_skip else " (" + ", ".join(
            f"{k}: {v}" for k, v in sorted(self.skipped.items())) + ")"))
        for m in self.messages[:20]:
            lines.append(f"    - {m}")
        if len(self.messages) > 20:
            lines.append(f"    ... and {len(self.messages) - 20} more")
        for wmsg in self.warnings:
            lines.append(f"  warning: {wmsg}")
        lat = self.latency()
        if lat:
            lines.append("  latency per stage (ms): mean / p90")
            order = [s for s in STAGES if s in lat] + [s for s in lat if s not in STAGES]
            for k in order:
                mean, p90, n = lat[k]
                lines.append(f"    {k:<12} {mean:8.2f} / {p90:8.2f}  (n={n})")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"frames": self.frames, "items": self.items, "faces": self.faces,
                "frames_without_face": self.frames_without_face, "skipped": dict(self.skipped),
                "messages": list(self.messages), "warnings": list(self.warnings),
                "detector_calls": self.detector_calls,
                "latency_ms": {k: {"mean": m, "p90": p, "n": n} for k, (m, p, n) in self.latency().items()}}


def _points_box(points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return np.concatenate([p.min(axis=0), p.max(axis=0)])


def _smooth_pose(tr, pose, t, cfg):
    """Smooth a HeadPose through the track's filters (rotation vector, translation)."""
    import dataclasses

    import cv2

    rv = np.asarray(pose.rotation_vector, dtype=np.float64)
    prev = tr.filters.get("pose_r")
    if prev is not None and prev._x is not None:
        # keep the axis-angle on the same branch as the filtered state
        ang = np.linalg.norm(rv)
        if ang > 1e-9 and np.dot(rv, prev._x) < 0 and ang > np.pi / 2:
            rv = rv / ang * (ang - 2 * np.pi)
    rv_s = tr.smooth("pose_r", rv, t, cfg)
    tv_s = tr.smooth("pose_t", np.asarray(pose.translation, dtype=np.float64), t, cfg)
    rot = cv2.Rodrigues(rv_s.reshape(3, 1))[0]
    try:
        from .head_pose import euler_from_rotation

        euler = euler_from_rotation(rot)
    except ImportError:
        euler = tr.smooth("pose_e", np.asarray(pose.euler_deg, dtype=np.float64), t, cfg)
    return dataclasses.replace(pose, rotation=rot, rotation_vector=rv_s, translation=tv_s,
                               euler_deg=np.asarray(euler, dtype=np.float64))


def _smooth_emotion(tr, emo, t, cfg):
    import dataclasses

    p = tr.smooth("emo_p", np.asarray(emo.probabilities, dtype=np.float64), t, cfg)
    p = np.clip(p, 0.0, None)
    p = p / p.sum() if p.sum() > 0 else np.asarray(emo.probabilities, dtype=np.float64)
    va = tr.smooth("emo_va", np.array([emo.valence, emo.arousal], dtype=np.float64), t, cfg)
    return dataclasses.replace(emo, probabilities=p.astype(np.float32), valence=float(np.clip(va[0], -1, 1)),
                               arousal=float(np.clip(va[1], -1, 1)))


def _bundle_crop_convention(bundle) -> str:
    conv = getattr(bundle, "crop_convention", None)
    if conv is None:
        conv = (bundle.manifest.get("crop") or {}).get("convention")
    if conv not in crop_mod.CONVENTIONS:
        raise ValueError(f"bundle manifest crop convention {conv!r} is not one of {crop_mod.CONVENTIONS}")
    return conv
