"""Reconstruction of aligned face crops with a bundle's ONNX graph (ONNX Runtime; no torch).

>>> rec = Reconstructor("bundles/emoca", device="cpu")
>>> out = rec(crops)                 # crops: (N, 224, 224, 3) uint8 RGB, or float32 in [0, 1]
>>> out["vertices"].shape            # (N, 5023, 3) metres, FLAME model space
>>> rec.bundle.faces                 # (9976, 3) int32 triangles for rendering

One session call per chunk of at most ``batch_size`` crops returns every output of the bundle
(parameters, FLAME vertices and landmarks, projected 2D landmarks, detail and emotion when the
bundle has them); output names, shapes and units are listed in ``rec.bundle.manifest["outputs"]``
and docs/design.md. Crops must already be aligned with the bundle's crop convention
(``rec.bundle.crop_convention``; see ``emoca_edge.crop``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .bundle import Bundle, BundleError
from .providers import create_session, providers_for


class InputError(ValueError):
    """Crops of the wrong shape, dtype or value range."""


class Reconstructor:
    """Runs a bundle's ``reconstruct`` graph on batches of aligned crops.

    ``bundle``: a bundle directory or a loaded :class:`~emoca_edge.bundle.Bundle`.
    ``device``: ``cpu``, ``cuda`` or ``tensorrt`` (``ProviderUnavailableError`` if the installed
    onnxruntime lacks the provider). ``threads``: intra-op threads (0 = onnxruntime default).
    ``batch_size``: largest batch sent in one session call (bounds memory; results are concatenated).
    """

    def __init__(self, bundle: str | os.PathLike | Bundle, device: str = "cpu", threads: int = 0,
                 batch_size: int = 16, verify: bool = True):
        providers_for(device)  # unknown device -> ValueError, missing provider -> ProviderUnavailableError
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle, verify=verify)
        self.device = device
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.session = create_session(self.bundle.graph_path(), device=device, threads=threads)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise BundleError(f"bundle {self.bundle.path}: reconstruct graph must have one input, has "
                              f"{[i.name for i in inputs]}")
        self._input_name = inputs[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        expected = self.bundle.output_names
        if self.output_names != expected:
            raise BundleError(f"bundle {self.bundle.path}: graph outputs {self.output_names} do not match the "
                              f"manifest's {expected}")
        self.size = self.bundle.input_size

    def prepare(self, crops: np.ndarray, what: str = "crops") -> np.ndarray:
        """Validate crops and convert to the graph input: (N, 3, size, size) float32 in [0, 1].

        Accepts (N, size, size, 3) or a single (size, size, 3) crop, uint8 (0..255) or float32/float64
        in [0, 1], RGB. Raises :class:`InputError` naming ``what`` on anything else.
        """
        a = np.asarray(crops)
        s = self.size
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[1:] != (s, s, 3):
            raise InputError(f"{what}: expected aligned RGB crops of shape (N, {s}, {s}, 3) or ({s}, {s}, 3), "
                             f"got {a.shape}")
        if a.dtype == np.uint8:
            x = a.astype(np.float32) * np.float32(1.0 / 255.0)
        elif a.dtype in (np.float32, np.float64):
            if not np.all(np.isfinite(a)):
                raise InputError(f"{what}: contains NaN or infinite values")
            lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
            if lo < 0.0 or hi > 1.0:
                raise InputError(f"{what}: float crops must be in [0, 1], found values in [{lo:g}, {hi:g}] "
                                 "(pass uint8 for 0..255 images)")
            x = a.astype(np.float32, copy=False)
        else:
            raise InputError(f"{what}: dtype {a.dtype} not supported (uint8 0..255 or float32 in [0, 1])")
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def run_prepared(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on prepared images (N, 3, size, size) float32, chunked by ``batch_size``."""
        n = int(images.shape[0])
        if n == 0:
            return {name: np.zeros(self._empty_shape(name), np.float32) for name in self.output_names}
        parts: list[list[np.ndarray]] = []
        for start in range(0, n, self.batch_size):
            parts.append(self.session.run(None, {self._input_name: images[start:start + self.batch_size]}))
        if len(parts) == 1:
            return dict(zip(self.output_names, parts[0]))
        return {name: np.concatenate([p[i] for p in parts], axis=0) for i, name in enumerate(self.output_names)}

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Reconstruct aligned crops; returns ``{output name: float32 array with leading N}``."""
        return self.run_prepared(self.prepare(crops))

    def _empty_shape(self, name: str) -> tuple:
        spec = self.bundle.manifest["outputs"][name]["shape"]
        return (0,) + tuple(int(s) for s in spec[1:])

    def __repr__(self) -> str:
        return f"Reconstructor({str(self.bundle.path)!r}, family={self.bundle.family!r}, device={self.device!r})"


def load_aligned_image(path: str | os.PathLike, size: int = 224) -> np.ndarray:
    """Read an aligned crop image file as (size, size, 3) uint8 RGB.

    Greyscale is expanded to RGB and an alpha channel dropped; anything that is not an 8-bit
    image of exactly ``size`` x ``size`` raises :class:`InputError` naming the file.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputError(f"{p}: not a readable image (OpenCV could not decode it)")
    if img.dtype != np.uint8:
        raise InputError(f"{p}: {img.dtype} image; expected 8-bit RGB")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise InputError(f"{p}: {img.shape[2]}-channel image; expected RGB")
    if img.shape[:2] != (size, size):
        raise InputError(f"{p}: image is {img.shape[1]}x{img.shape[0]}, expected an aligned {size}x{size} crop "
                         "(use `emoca-edge run` for unaligned photos)")
    return img


def load_aligned_npy(path: str | os.PathLike, size: int = 224) -> np.ndarray:
    """Read an ``.npy`` of aligned crops, shape (N, size, size, 3) uint8; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        a = np.load(p, allow_pickle=False)
    except Exception as exc:  # ValueError / EOFError / OSError from a corrupt header or payload
        raise InputError(f"{p}: not a readable .npy file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(a, np.ndarray):
        raise InputError(f"{p}: expected a single .npy array, found {type(a).__name__}")
    if a.dtype != np.uint8:
        raise InputError(f"{p}: dtype {a.dtype}, expected uint8 crops of shape (N, {size}, {size}, 3)")
    if a.ndim != 4 or a.shape[1:] != (size, size, 3):
        raise InputError(f"{p}: shape {a.shape}, expected (N, {size}, {size}, 3) uint8")
    return a
