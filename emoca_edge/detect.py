"""Face detection with MediaPipe's BlazeFace models (converted to ONNX), decoded in NumPy.

Frames are RGB uint8 (H,W,3). All coordinates are frame pixels, x right, y down, with the
centre of pixel column j at x = j + 0.5 (so the frame spans [0,W] x [0,H]).

Pipeline: letterbox the frame into the model's square input (aspect kept, symmetric black
padding, ``cv2.INTER_AREA`` downscaling), scale to [-1,1], run the network, decode the SSD
anchors (box centre/size and 6 keypoints relative to fixed-size anchors), score =
sigmoid(clip(logit, -100, 100)), then weighted non-maximum suppression (MediaPipe's
blending: each kept face is the score-weighted mean of the boxes/keypoints that overlap it by
more than ``nms_iou``; its score is the best score of that group).

The default model is the full-range detector (192x192 input, faces down to about 100 px
across in a 1280x720 frame, i.e. arm's length to a few metres); ``model="short_range"``
(128x128, faces within about 2 m) is faster.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .assets import asset_path
from .providers import create_session

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")

# SSD anchor layouts of the two BlazeFace models (fixed anchor size, offset 0.5):
# (input size, [(stride, anchors per cell), ...]).
_MODELS = {
    "full_range": ("mediapipe/face_detection_full_range.onnx", 192, [(4, 1)]),
    "short_range": ("mediapipe/face_detection_short_range.onnx", 128, [(8, 2), (16, 6)]),
}


def check_frame(frame, what: str = "frame") -> np.ndarray:
    """Return ``frame`` if it is an RGB uint8 (H,W,3) array, else raise a ValueError saying why."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (H,W,3) uint8 RGB, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"{what} must have shape (H,W,3) (RGB), got {frame.shape}; convert grey/RGBA frames first")
    if frame.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got {frame.dtype}; convert 16-bit/float frames to 8-bit first")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(f"{what} is too small: {frame.shape}")
    return frame


@dataclass
class Detection:
    """One detected face.

    box: (4,) float32 [x0, y0, x1, y1] frame pixels; score: detection confidence in [0,1];
    keypoints: (6,2) float32 frame pixels in BlazeFace order: right eye, left eye, nose tip,
    mouth centre, right ear tragion, left ear tragion ("right" = the subject's right, which
    appears on the image's left for a frontal face).
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray


def ssd_anchors(input_size: int, layout) -> np.ndarray:
    """(N,2) anchor centres, normalised to the square input, in the models' output order."""
    centres = []
    for stride, per_cell in layout:
        n = -(-input_size // stride)
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs, ys], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def iou_matrix(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) against boxes (N,4), [x0,y0,x1,y1]."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float):
    """MediaPipe-style blending NMS. Returns (boxes (K,4), keypoints (K,6,2), scores (K,)) by score."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), bool)
    out_b, out_k, out_s = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cand = np.flatnonzero(remaining)
        overlap = iou_matrix(boxes[i], boxes[cand])
        group = cand[overlap > iou]
        group = np.union1d(group, [i])
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        remaining[group] = False
    if not out_s:
        return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
    return np.array(out_b, np.float32), np.array(out_k, np.float32), np.array(out_s, np.float32)


class FaceDetector:
    """BlazeFace face detector: ``detector(frame) -> list[Detection]`` sorted by score.

    ``score_threshold``: minimum face score; ``nms_iou``: IoU above which detections are merged;
    ``max_faces``: keep at most this many (0 = all); ``model``: "full_range" (default) or
    "short_range"; ``threads``: ONNX Runtime intra-op threads (1: these models are small, and
    one thread is the fastest on small CPUs; 0 = ONNX Runtime's default).
    """

    def __init__(self, device: str = "cpu", score_threshold: float = 0.5, nms_iou: float = 0.3,
                 max_faces: int = 0, *, model: str = "full_range", threads: int = 1):
        if model not in _MODELS:
            raise ValueError(f"unknown detector model {model!r}; expected one of {', '.join(_MODELS)}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0,1], got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0,1], got {nms_iou}")
        if max_faces < 0:
            raise ValueError(f"max_faces must be >= 0, got {max_faces}")
        name, self.input_size, layout = _MODELS[model]
        self.model = model
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_faces = int(max_faces)
        self.anchors = ssd_anchors(self.input_size, layout)
        self.session = create_session(asset_path(name), device, threads=threads)
        self._input = self.session.get_inputs()[0].name
        outs = self.session.get_outputs()
        # the regressor output has 16 values per anchor, the classifier 1
        self._order = [0, 1] if outs[0].shape[-1] == 16 else [1, 0]

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Letterboxed input (1,S,S,3) float32 in [-1,1] and the (2,3) map input px -> frame px."""
        h, w = frame.shape[:2]
        s = self.input_size
        scale = s / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        px, py = (s - nw) // 2, (s - nh) // 2
        canvas = np.zeros((s, s, 3), np.uint8)
        canvas[py:py + nh, px:px + nw] = resized
        x = canvas.astype(np.float32) * (2.0 / 255.0) - 1.0
        # continuous coordinates: input = (frame * (nw/w, nh/h)) + (px, py)
        sx, sy = nw / w, nh / h
        to_frame = np.array([[1 / sx, 0, -px / sx], [0, 1 / sy, -py / sy]], np.float64)
        return x[None], to_frame

    def decode(self, regressors: np.ndarray, logits: np.ndarray, to_frame: np.ndarray) -> list[Detection]:
        """Detections from raw outputs (N,16) and (N,) for an input mapped to the frame by ``to_frame``."""
        s = float(self.input_size)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = np.flatnonzero(scores >= self.score_threshold)
        if keep.size == 0:
            return []
        r = regressors[keep].astype(np.float64)
        anchors = self.anchors[keep].astype(np.float64) * s  # anchor centres in input pixels
        cx, cy = anchors[:, 0] + r[:, 0], anchors[:, 1] + r[:, 1]
        w, h = r[:, 2], r[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        kps = anchors[:, None, :] + r[:, 4:16].reshape(-1, 6, 2)
        a, t = to_frame[:, :2], to_frame[:, 2]
        boxes = np.concatenate([boxes[:, :2] @ a.T + t, boxes[:, 2:] @ a.T + t], 1)
        kps = kps @ a.T + t
        boxes, kps, sc = weighted_nms(boxes, kps, scores[keep], self.nms_iou)
        if self.max_faces:
            boxes, kps, sc = boxes[:self.max_faces], kps[:self.max_faces], sc[:self.max_faces]
        return [Detection(box=b.astype(np.float32), score=float(c), keypoints=k.astype(np.float32))
                for b, k, c in zip(boxes, kps, sc)]

    def run_raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw network outputs for an input tensor: regressors (N,16), logits (N,)."""
        outs = self.session.run(None, {self._input: x})
        return outs[self._order[0]].reshape(-1, 16), outs[self._order[1]].reshape(-1)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        check_frame(frame)
        x, to_frame = self.preprocess(frame)
        regressors, logits = self.run_raw(x)
        return self.decode(regressors, logits, to_frame)
