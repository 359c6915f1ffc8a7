"""Test frames that have reference outputs of the original MediaPipe models in
tests/fixtures/mediapipe/<name>.npz (written by tools/convert_models/make_fixtures.py)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emoca_edge.assets import asset_path

FIX = Path(__file__).parent / "fixtures" / "mediapipe"


def load_rgb(path) -> np.ndarray:
    """An image file as RGB uint8 (H,W,3)."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


FRAMES = {
    "astronaut": lambda: load_rgb(asset_path("samples/astronaut.jpg")),
    "grace_hopper": lambda: load_rgb(asset_path("samples/grace_hopper.jpg")),
    "kiosk_two_faces": lambda: load_rgb(FIX / "kiosk_two_faces.png"),
}
