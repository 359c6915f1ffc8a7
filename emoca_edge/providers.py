"""ONNX Runtime execution providers: the user's ``device`` choice -> session options.

Devices: ``cpu``, ``cuda`` (CUDAExecutionProvider), ``tensorrt`` (TensorrtExecutionProvider,
falling back to CUDA then CPU for nodes TensorRT does not take). Asking for a device whose
provider is not in this onnxruntime build raises :class:`ProviderUnavailableError`.
"""
from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

DEVICES = ("cpu", "cuda", "tensorrt")

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class ProviderUnavailableError(RuntimeError):
    """The requested device has no execution provider in the installed onnxruntime."""


def providers_for(device: str) -> list:
    """Provider list for ``device``; raises if its first provider is not available."""
    if device not in _PROVIDERS:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    wanted = _PROVIDERS[device]
    available = ort.get_available_providers()
    if wanted[0] not in available:
        hint = {
            "cuda": "install onnxruntime-gpu (and a matching CUDA/cuDNN) instead of onnxruntime",
            "tensorrt": "install onnxruntime-gpu built with TensorRT and the TensorRT libraries",
        }.get(device, "")
        raise ProviderUnavailableError(
            f"device {device!r} needs {wanted[0]}, which this onnxruntime "
            f"({ort.__version__}) does not provide; available: {', '.join(available)}"
            + (f". To use it, {hint}." if hint else "")
        )
    providers: list = []
    for name in wanted:
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            cache = os.environ.get("EMOCA_EDGE_TRT_CACHE", str(Path.home() / ".cache" / "emoca_edge" / "trt"))
            providers.append((name, {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                                     "trt_fp16_enable": False}))
        else:
            providers.append(name)
    return providers


def create_session(model_path: str | os.PathLike, device: str = "cpu", threads: int = 0) -> ort.InferenceSession:
    """An InferenceSession for ``model_path`` on ``device``.

    ``threads``: intra-op threads (0 = onnxruntime's default, one per physical core).
    Errors name the model file.
    """
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    providers = providers_for(device)  # ValueError / ProviderUnavailableError propagate as they are
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise RuntimeError(f"cannot load ONNX model {path}: {exc}") from exc
