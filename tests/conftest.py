"""Shared pytest configuration."""
import pytest


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly on machines without a CUDA device."""
    try:
        import onnxruntime as ort

        has_cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
    except Exception:  # pragma: no cover
        has_cuda_ep = False
    try:
        from emoca_edge.render import cuda_available  # provided by the renderer
        has_gpu = bool(cuda_available())
    except Exception:
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not (has_gpu or has_cuda_ep):
            item.add_marker(skip)
