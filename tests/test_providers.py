"""Execution-provider selection: device names -> ONNX Runtime providers, and clear errors."""
from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from emoca_edge.providers import ProviderUnavailableError, create_session, providers_for


def _identity_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_cpu_always_available():
    assert providers_for("cpu") == ["CPUExecutionProvider"]


def test_unknown_device_is_value_error(tmp_path):
    _identity_model(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        providers_for("gpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        create_session(tmp_path / "m.onnx", device="gpu")


@pytest.mark.parametrize("device,provider", [("cuda", "CUDAExecutionProvider"),
                                             ("tensorrt", "TensorrtExecutionProvider")])
def test_missing_provider_says_what_to_install(device, provider):
    if provider in ort.get_available_providers():
        chain = providers_for(device)
        names = [p[0] if isinstance(p, tuple) else p for p in chain]
        assert names[0] == provider and names[-1] == "CPUExecutionProvider"
    else:
        with pytest.raises(ProviderUnavailableError, match=f"{provider}.*onnxruntime-gpu"):
            providers_for(device)


def test_session_runs_and_names_bad_files(tmp_path):
    import numpy as np

    _identity_model(tmp_path / "m.onnx")
    sess = create_session(tmp_path / "m.onnx", device="cpu", threads=1)
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        create_session(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="bad.onnx"):
        create_session(tmp_path / "bad.onnx")
