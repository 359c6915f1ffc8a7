"""Annotated frames: mesh overlay, landmarks, box, label and a valence/arousal gauge per face.

The mesh overlay is rendered by ``emoca_edge.render.overlay_mesh`` (our rasterizer); boxes, points,
text and gauges are drawn with OpenCV. Frames are RGB uint8 (H,W,3); the input is not modified.
"""
from __future__ import annotations

import cv2
import numpy as np

# RGB colours
_BOX = (80, 220, 120)
_POINT = (255, 230, 60)
_TEXT_BG = (20, 20, 20)
_GAUGE = (235, 235, 235)
_GAUGE_DOT = (255, 70, 70)


def _scale(frame: np.ndarray) -> float:
    return max(0.5, min(frame.shape[:2]) / 720.0)


def draw_mesh(frame: np.ndarray, face) -> np.ndarray:
    """``frame`` with the face's mesh rendered over it (shaded, blended) by our renderer."""
    if face.mesh_vertices is None or face.mesh_faces is None:
        return frame
    m = face.mesh_to_frame if face.mesh_to_frame is not None else np.array([[1.0, 0, 0], [0, 1.0, 0]])
    try:
        from .render import overlay_mesh
    except ImportError:  # renderer build without overlays: draw the wireframe instead
        return draw_wireframe(frame, face.mesh_vertices, face.mesh_faces, m)
    return overlay_mesh(frame, np.asarray(face.mesh_vertices, dtype=np.float32),
                        np.asarray(face.mesh_faces, dtype=np.int32), np.asarray(m, dtype=np.float64))


def draw_wireframe(frame: np.ndarray, vertices: np.ndarray, faces: np.ndarray, to_frame: np.ndarray,
                   color=(200, 200, 255)) -> np.ndarray:
    """A copy of ``frame`` with the triangle edges of a mesh drawn (vertices mapped by ``to_frame``)."""
    out = frame.copy()
    v = np.asarray(vertices, dtype=np.float64)[:, :2] @ np.asarray(to_frame)[:, :2].T + np.asarray(to_frame)[:, 2]
    tri = np.round(v[np.asarray(faces)] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    cv2.polylines(out, list(tri), True, color, 1, cv2.LINE_AA, shift=2)
    return out


def draw_landmarks(frame: np.ndarray, points: np.ndarray, color=_POINT, radius: int = 1) -> None:
    """Draw (P,>=2) frame-pixel points in place."""
    h, w = frame.shape[:2]
    pts = np.asarray(points)[:, :2]
    ij = np.floor(pts).astype(np.int64)  # edge coordinates -> pixel indices
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
    ij = ij[ok]
    if radius <= 1:
        frame[ij[:, 1], ij[:, 0]] = color
    else:
        for x, y in ij:
            cv2.circle(frame, (int(x), int(y)), radius, color, -1, cv2.LINE_AA)


def draw_label(frame: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """Text on a dark background with its bottom-left corner at ``org`` (kept inside the frame)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = 0.5 * scale
    th = max(1, int(round(scale)))
    (tw, tht), base = cv2.getTextSize(text, font, fs, th)
    h, w = frame.shape[:2]
    x = int(np.clip(org[0], 0, max(0, w - tw - 4)))
    y = int(np.clip(org[1], tht + base + 4, h - 2))
    cv2.rectangle(frame, (x, y - tht - base - 4), (x + tw + 4, y), _TEXT_BG, -1)
    cv2.putText(frame, text, (x + 2, y - base - 1), font, fs, (255, 255, 255), th, cv2.LINE_AA)


def draw_gauge(frame: np.ndarray, valence: float, arousal: float, center: tuple[int, int], radius: int) -> None:
    """Valence (x, right = positive) / arousal (y, up = positive) disc with the face's point."""
    cx, cy = int(center[0]), int(center[1])
    overlay = frame.copy()
    cv2.circle(overlay, (cx, cy), radius, _TEXT_BG, -1, cv2.LINE_AA)
    cv2.addWeighted(overlay, 0.55, frame, 0.45, 0, dst=frame)
    cv2.circle(frame, (cx, cy), radius, _GAUGE, 1, cv2.LINE_AA)
    cv2.line(frame, (cx - radius, cy), (cx + radius, cy), _GAUGE, 1, cv2.LINE_AA)
    cv2.line(frame, (cx, cy - radius), (cx, cy + radius), _GAUGE, 1, cv2.LINE_AA)
    v = float(np.clip(valence, -1, 1))
    a = float(np.clip(arousal, -1, 1))
    px, py = int(round(cx + v * radius)), int(round(cy - a * radius))
    cv2.circle(frame, (px, py), max(2, radius // 7), _GAUGE_DOT, -1, cv2.LINE_AA)
    fs = max(0.3, radius / 90.0)
    cv2.putText(frame, "V", (cx + radius - int(12 * fs * 2), cy - 3), cv2.FONT_HERSHEY_SIMPLEX, fs, _GAUGE, 1, cv2.LINE_AA)
    cv2.putText(frame, "A", (cx + 3, cy - radius + int(22 * fs)), cv2.FONT_HERSHEY_SIMPLEX, fs, _GAUGE, 1, cv2.LINE_AA)


def annotate(frame: np.ndarray, result, mesh: bool = True, landmarks: bool = True) -> np.ndarray:
    """A copy of ``frame`` (RGB uint8) with every face of ``result`` (a FrameResult) drawn on it."""
    out = np.ascontiguousarray(frame.copy())
    sc = _scale(out)
    for face in result.faces:
        if mesh:
            out = np.ascontiguousarray(draw_mesh(out, face))
    for face in result.faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), _BOX, max(1, int(round(2 * sc))), cv2.LINE_AA)
        if landmarks:
            pts = face.params.get("landmarks2d") if face.params else None
            draw_landmarks(out, face.landmarks, radius=1)
            if pts is not None:
                draw_landmarks(out, np.asarray(pts), color=(255, 120, 255), radius=max(1, int(round(2 * sc))))
        text = f"#{face.track_id}"
        if face.emotion is not None:
            p = float(np.max(face.emotion.probabilities))
            text += f" {face.label} {p * 100:.0f}%  V {face.valence:+.2f} A {face.arousal:+.2f}"
        draw_label(out, text, (x0, y0 - 2), sc)
        if face.emotion is not None:
            r = int(max(22, min(90, 0.3 * (x1 - x0))))
            cx = x1 + r + 6 if x1 + 2 * r + 6 < out.shape[1] else x0 - r - 6
            cx = int(np.clip(cx, r, out.shape[1] - r - 1))
            cy = int(np.clip(y0 + r, r, out.shape[0] - r - 1))
            draw_gauge(out, face.valence, face.arousal, (cx, cy), r)
    if result.skipped:
        draw_label(out, f"skipped: {result.skipped}", (4, out.shape[0] - 4), sc)
    return out
