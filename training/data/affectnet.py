"""AffectNet-format dataset (manually annotated part): CSV + images.

CSV header (AffectNet's own): ``subDirectory_filePath,face_x,face_y,face_width,face_height,
facial_landmarks,expression,valence,arousal``. ``facial_landmarks``: 136 numbers ``x0;y0;x1;y1;...``
(68 points, image pixels); ``expression``: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust,
6 Anger, 7 Contempt; 8 None, 9 Uncertain, 10 No-Face are skipped; ``valence``/``arousal`` in
[-1, 1], -2 = missing. ``DIR/training.csv`` and ``DIR/validation.csv``; image paths relative to
``DIR/images/`` unless ``image_dir`` is given.

Crop: EMOCA's ``deca68`` convention from the landmarks (``emoca_edge.crop``). Malformed rows are
reported (row number and reason) and skipped when the CSV is read; missing or corrupt images are
reported and skipped when read (the sample is ``None``; :func:`collate_skip` drops it).
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from .common import BadSamples, crop_sample, make_sample, read_image, sample_rng

log = logging.getLogger("emoca_edge.training.data")

AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
                     "expression", "valence", "arousal")
SPLITS = {"train": "training.csv", "training": "training.csv", "val": "validation.csv",
          "validation": "validation.csv"}
N_CLASSES = 8


def parse_row(row: dict, where: str) -> tuple:
    """(path, landmarks (68,2) float64, expression, valence, arousal); ValueError on a bad row,
    ``None`` for a row with a skipped expression code (8, 9, 10)."""
    try:
        expression = int(float(row["expression"]))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expression {row.get('expression')!r} is not an integer")
    if expression in (8, 9, 10):
        return None
    if not 0 <= expression < N_CLASSES:
        raise ValueError(f"{where}: expression code {expression} is not 0-10")
    path = (row.get("subDirectory_filePath") or "").strip()
    if not path:
        raise ValueError(f"{where}: empty subDirectory_filePath")
    try:
        pts = np.array([float(x) for x in (row["facial_landmarks"] or "").split(";") if x.strip() != ""])
    except ValueError:
        raise ValueError(f"{where}: facial_landmarks must be numbers separated by ';'")
    if pts.size != 136 or not np.all(np.isfinite(pts)):
        raise ValueError(f"{where}: facial_landmarks has {pts.size} finite numbers, expected 136 (68 x, y pairs)")
    va = []
    for key in ("valence", "arousal"):
        try:
            v = float(row[key])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key} {row.get(key)!r} is not a number")
        if not (-1.0 <= v <= 1.0 or v == -2.0):
            raise ValueError(f"{where}: {key} {v} outside [-1, 1] (and not -2 = missing)")
        va.append(v)
    return path, pts.reshape(68, 2), expression, va[0], va[1]


class AffectNetDataset:
    """Samples (see ``make_sample``) of an AffectNet-format split.

    root: the ``--data`` folder; split: ``training``/``validation`` (or a CSV path); image_dir:
    default ``root/images``; augmentation: an :class:`Augmentation` or None; seed: augmentation seed.
    Attributes: ``rows`` (kept rows: path, None, expression, valence, arousal), :meth:`landmarks`, ``skipped_rows`` [(row number, reason)], ``bad`` (unreadable images).
    """

    def __init__(self, root, split: str = "training", image_dir=None, size: int = 224, augmentation=None,
                 seed: int = 0, max_samples: int | None = None):
        root = Path(root)
        csv_path = Path(split) if split.endswith(".csv") else root / SPLITS.get(split, split)
        if not csv_path.is_file():
            raise FileNotFoundError(f"{csv_path}: AffectNet CSV not found (expected {root}/training.csv and "
                                    f"{root}/validation.csv)")
        self.csv_path = csv_path
        self.image_dir = Path(image_dir) if image_dir is not None else root / "images"
        self.size, self.augmentation, self.seed, self.epoch = int(size), augmentation, int(seed), 0
        self.rows, self.skipped_rows, self.bad = [], [], BadSamples()
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in AFFECTNET_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{csv_path}: CSV header lacks columns {missing}; expected "
                                 f"{','.join(AFFECTNET_COLUMNS)}")
            ignored = 0
            for i, row in enumerate(reader, start=2):
                try:
                    parsed = parse_row(row, f"{csv_path}:{i}")
                except ValueError as e:
                    self.skipped_rows.append((i, str(e)))
                    log.warning("skipping row: %s", e)
                    continue
                if parsed is None:
                    ignored += 1
                    continue
                self.rows.append(parsed)
                if max_samples is not None and len(self.rows) >= max_samples:
                    break
        self.ignored_codes = ignored
        # Compact storage (one float32 array) so large CSVs stay small in memory and in workers.
        self._landmarks = np.stack([r[1] for r in self.rows]).astype(np.float32) if self.rows else None
        self.rows = [(r[0], None, r[2], r[3], r[4]) for r in self.rows]
        if not self.rows:
            raise ValueError(f"{csv_path}: no usable rows ({len(self.skipped_rows)} malformed, {ignored} with "
                             "expression codes 8-10)")

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def landmarks(self, index: int) -> np.ndarray:
        """The row's 68 landmarks (68, 2) in image pixels (stored as float32)."""
        return self._landmarks[index].astype(np.float64)

    def labels(self) -> dict:
        """All labels as arrays: expression (N,), valence (N,), arousal (N,)."""
        return {"expression": np.array([r[2] for r in self.rows], np.int64),
                "valence": np.array([r[3] for r in self.rows], np.float32),
                "arousal": np.array([r[4] for r in self.rows], np.float32)}

    def __getitem__(self, index: int):
        path, _, expression, valence, arousal = self.rows[index]
        lmk = self._landmarks[index].astype(np.float64)
        full = self.image_dir / path
        try:
            img = read_image(full)
            rng = sample_rng(self.seed, self.epoch, index)
            crop, lmk_c, _ = crop_sample(img, lmk, self.size, self.augmentation, rng)
        except ValueError as e:
            self.bad.report(str(full), str(e))
            return None
        return make_sample(crop, lmk_c, index, str(path), expression, valence, arousal)
