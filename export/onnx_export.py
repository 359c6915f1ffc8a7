"""ONNX export with verification against the PyTorch module.

:func:`export_verified` exports a module whose ``forward`` returns a dict of tensors to ONNX
(opset 17 by default, dynamic batch on axis 0 of every input and output), runs the graph in ONNX
Runtime on CPU on each given input batch and compares each output with the module's, and only then
moves the file to its destination. Comparison metric: relative error ``||a - b|| / ||b||`` over the
whole output array (absolute ``||a - b||`` where ``||b|| = 0``).

Exporters: ``"torchscript"`` (``torch.onnx.export(..., dynamo=False)``) and ``"dynamo"``
(``torch.export``-based, opset >= 18). Which one a family uses by default, and why, is in
docs/importing.md (``import_cli.EXPORTER_PREFERENCE``); both are verified the same way.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

DEFAULT_OPSET = 17
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"


class ExportVerificationError(RuntimeError):
    """The exported graph disagrees with the PyTorch module beyond the tolerance."""


@dataclass
class VerificationReport:
    """Per-output worst relative error over all checked input batches, and what was checked."""

    errors: dict[str, float] = field(default_factory=dict)
    batches: list[str] = field(default_factory=list)
    tolerance: float = 1e-4

    def as_dict(self) -> dict:
        return {"max_relative_error": {k: float(v) for k, v in self.errors.items()},
                "checked_inputs": list(self.batches), "tolerance": self.tolerance,
                "metric": "||onnx - torch|| / ||torch|| per output, ONNX Runtime CPU"}


class _TupleOutputs(nn.Module):
    """Wraps a dict-returning module so the traced outputs come in a fixed name order."""

    def __init__(self, module: nn.Module, output_names: Sequence[str]):
        super().__init__()
        self.module = module
        self.output_names = list(output_names)

    def forward(self, *inputs):
        out = self.module(*inputs)
        missing = [n for n in self.output_names if n not in out]
        if missing:
            raise KeyError(f"module output lacks {missing}; it returned {sorted(out)}")
        return tuple(out[n] for n in self.output_names)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / ||b||`` in float64 (``||a - b||`` where ``||b|| == 0``)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    num = float(np.linalg.norm((a - b).ravel()))
    den = float(np.linalg.norm(b.ravel()))
    return num / den if den > 0 else num


def torch_outputs(module: nn.Module, inputs: Sequence[np.ndarray], output_names: Sequence[str]) -> dict:
    """Run ``module`` (eval, no grad) on numpy inputs; returns ``{name: np.ndarray}``."""
    with torch.no_grad():
        out = module(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    return {n: out[n].detach().cpu().numpy() for n in output_names}


def onnx_outputs(path: str | os.PathLike, inputs: Sequence[np.ndarray], session=None) -> dict:
    """Run the ONNX file on CPU; returns ``{output name: array}``."""
    import onnxruntime as ort

    if session is None:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    res = session.run(None, {n: np.ascontiguousarray(x) for n, x in zip(names, inputs)})
    return {o.name: r for o, r in zip(session.get_outputs(), res)}


def compare(onnx_out: Mapping[str, np.ndarray], torch_out: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Relative error per output name present in ``torch_out``."""
    return {n: relative_error(onnx_out[n], torch_out[n]) for n in torch_out}


def export_onnx(module: nn.Module, example_inputs: Sequence[torch.Tensor], path: str | os.PathLike,
                input_names: Sequence[str], output_names: Sequence[str], *, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True, exporter: str = DEFAULT_EXPORTER) -> Path:
    """Export ``module`` (eval mode; dict outputs) to ``path`` without verification.

    ``example_inputs`` should have a batch of at least 2 so no size is specialised to 1.
    The ``dynamo`` exporter writes opset ``max(opset, 18)`` (its native minimum).
    Axis 0 of every input and output is the dynamic ``batch`` axis when ``dynamic_batch``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; expected one of {EXPORTERS}")
    if opset < 17:
        raise ValueError(f"opset {opset} is too old; emoca-edge graphs need opset 17 or newer")
    path = Path(path)
    module = module.eval()
    wrapped = _TupleOutputs(module, output_names).eval()
    example = tuple(example_inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            axes = {n: {0: "batch"} for n in list(input_names) + list(output_names)} if dynamic_batch else None
            torch.onnx.export(wrapped, example, str(path), input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=axes, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
        else:
            dyn = None
            if dynamic_batch:
                batch = torch.export.Dim("batch", min=1, max=4096)
                dyn = (tuple({0: batch} for _ in example),)  # forward(*inputs): one varargs entry
            # The torch.export-based exporter implements opset >= 18; asking for 17 runs ONNX's version
            # converter, which has no down-adapter for Pad (MobileNetV3's TF padding). Use >= 18.
            torch.onnx.export(wrapped, example, str(path), input_names=list(input_names),
                              output_names=list(output_names), dynamic_shapes=dyn, opset_version=max(opset, 18),
                              dynamo=True, external_data=False, verbose=False)
    return path


def check_onnx(path: str | os.PathLike) -> None:
    """Structural check with the ONNX checker (file-based, works above 2 GB)."""
    import onnx

    onnx.checker.check_model(str(path), full_check=False)


def verify_against_torch(module: nn.Module, path: str | os.PathLike, input_batches: Sequence[Sequence[np.ndarray]],
                         output_names: Sequence[str], *, tolerance: float = 1e-4,
                         batch_labels: Sequence[str] | None = None) -> VerificationReport:
    """Compare the ONNX graph with ``module`` on each input batch; raise if any output's relative
    error exceeds ``tolerance``. Returns the per-output worst error."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    got_names = [o.name for o in sess.get_outputs()]
    if list(got_names) != list(output_names):
        raise ExportVerificationError(f"{path}: graph outputs {got_names} != expected {list(output_names)}")
    report = VerificationReport(tolerance=tolerance)
    labels = list(batch_labels) if batch_labels is not None else [f"batch{i}" for i in range(len(input_batches))]
    for label, inputs in zip(labels, input_batches):
        ref = torch_outputs(module, inputs, output_names)
        try:
            got = onnx_outputs(path, inputs, session=sess)
        except Exception as exc:  # onnxruntime's own exception types
            shapes = [tuple(x.shape) for x in inputs]
            raise ExportVerificationError(
                f"{path}: ONNX Runtime cannot run the exported graph on {label} inputs {shapes} ({exc}); "
                "if the batch size is the problem, the exporter specialised the batch axis") from exc
        for name, err in compare(got, ref).items():
            report.errors[name] = max(report.errors.get(name, 0.0), err)
        n = int(inputs[0].shape[0])
        report.batches.append(f"{label} (N={n})")
    bad = {k: v for k, v in report.errors.items() if not v <= tolerance}
    if bad:
        detail = ", ".join(f"{k}: {v:.3g}" for k, v in bad.items())
        raise ExportVerificationError(f"{path}: ONNX Runtime disagrees with PyTorch beyond relative error "
                                      f"{tolerance:g} on {detail}")
    return report


def export_verified(module: nn.Module, path: str | os.PathLike, input_names: Sequence[str],
                    output_names: Sequence[str], example_inputs: Sequence[torch.Tensor],
                    check_batches: Sequence[Sequence[np.ndarray]], *, check_labels: Sequence[str] | None = None,
                    opset: int = DEFAULT_OPSET, exporter: str = DEFAULT_EXPORTER,
                    tolerance: float = 1e-4) -> VerificationReport:
    """Export to a temporary file next to ``path``, verify on ``check_batches`` (each a sequence of
    numpy arrays, one per input; use batches of different sizes to exercise the dynamic batch), and
    move it to ``path`` only when every output is within ``tolerance``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", prefix=".export-", dir=str(path.parent))
    os.close(fd)
    try:
        export_onnx(module, example_inputs, tmp, input_names, output_names, opset=opset, exporter=exporter)
        check_onnx(tmp)
        report = verify_against_torch(module, tmp, check_batches, output_names, tolerance=tolerance,
                                      batch_labels=check_labels)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        data = Path(tmp + ".data")
        if data.exists():
            data.unlink()
    return report


def sample_crops(size: int = 224) -> tuple[np.ndarray, list[str]]:
    """Real photo crops for verification: the shipped sample portraits, centre-square cropped on the
    upper part (where the face is) and resized to ``size``. Returns (N, size, size, 3) uint8 RGB and
    the asset names. Empty when the package ships no samples."""
    import cv2

    from emoca_edge.assets import AssetError, manifest, asset_path

    crops, names = [], []
    try:
        files = sorted(manifest("samples").get("assets", {}))
    except AssetError:
        return np.zeros((0, size, size, 3), np.uint8), []
    for name in files:
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        img = cv2.imread(str(asset_path(f"samples/{name}")), cv2.IMREAD_COLOR)
        if img is None:
            continue
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        side = min(h, w) * 3 // 4
        x0 = (w - side) // 2
        y0 = max(0, min(h - side, h // 10))
        crop = img[y0:y0 + side, x0:x0 + side]
        crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
        names.append(f"samples/{name}")
    if not crops:
        return np.zeros((0, size, size, 3), np.uint8), []
    return np.stack(crops), names


def default_check_batches(size: int = 224, seed: int = 0) -> tuple[list[list[np.ndarray]], list[str]]:
    """Verification inputs for an image graph: a random batch of 3 (uniform [0,1]) and, when shipped,
    the sample photo crops as one batch. Each entry is ``[images (N,3,size,size) float32]``."""
    rng = np.random.default_rng(seed)
    batches = [[rng.random((3, 3, size, size), dtype=np.float32)]]
    labels = ["random uniform [0,1]"]
    crops, names = sample_crops(size)
    if len(crops):
        batches.append([np.ascontiguousarray(crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)])
        labels.append("photo crops " + ", ".join(names))
    return batches, labels
