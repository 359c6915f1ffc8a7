"""Runtime ``Reconstructor`` and ``emoca-edge reconstruct``: input handling, ordering, skipped inputs.

Uses the small toy bundle (tests/fixtures_bundles.py): the numerics of real families are covered
by test_parity.py; here the reference is the toy's PyTorch module (relative error <= 1e-4, the
same float32 ONNX-vs-PyTorch bound as the parity tests).
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import fixtures_bundles as fb
from emoca_edge.cli import main
from emoca_edge.reconstruct import InputError, Reconstructor, load_aligned_image, load_aligned_npy

TOL = 1e-4


@pytest.fixture(scope="module")
def toy():
    return fb.toy_bundle()


@pytest.fixture(scope="module")
def rec(toy):
    return Reconstructor(toy)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def torch_ref(crops_uint8):
    m = fb.make_toy_module()
    x = torch.from_numpy(crops_uint8.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255))
    with torch.no_grad():
        return {k: v.numpy() for k, v in m(x).items()}


def test_reconstructor_matches_torch_uint8_and_float(rec):
    crops = fb.random_images(5, seed=1)
    ref = torch_ref(crops)
    out_u8 = rec(crops)
    out_f = rec(crops.astype(np.float32) / 255)
    assert list(out_u8) == rec.bundle.output_names
    for k in ref:
        assert rel(out_u8[k], ref[k]) <= TOL, k
        assert rel(out_f[k], ref[k]) <= TOL, k
    one = rec(crops[2])  # a single (224,224,3) crop is a batch of one
    for k in ref:
        assert one[k].shape[0] == 1 and rel(one[k][0], ref[k][2]) <= TOL


def test_chunked_batches_equal_single_call(toy):
    crops = fb.random_images(5, seed=2)
    a = Reconstructor(toy, batch_size=2)(crops)
    b = Reconstructor(toy, batch_size=16)(crops)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_empty_batch(rec):
    out = rec(np.zeros((0, 224, 224, 3), np.uint8))
    assert out["vertices"].shape == (0, 5023, 3) and out["shape"].shape == (0, 10)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((2, 200, 224, 3), np.uint8), r"shape \(N, 224, 224, 3\)"),
    (np.zeros((2, 3, 224, 224), np.float32), r"got \(2, 3, 224, 224\)"),
    (np.zeros((1, 224, 224, 3), np.int16), "dtype int16"),
    (np.full((1, 224, 224, 3), 2.0, np.float32), r"must be in \[0, 1\]"),
    (np.full((1, 224, 224, 3), np.nan, np.float32), "NaN"),
])
def test_bad_crops(rec, bad, message):
    with pytest.raises(InputError, match=message):
        rec(bad)


def test_unavailable_device_is_clear(toy):
    import onnxruntime as ort

    from emoca_edge.providers import ProviderUnavailableError

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present")
    with pytest.raises(ProviderUnavailableError, match="device 'cuda' needs CUDAExecutionProvider"):
        Reconstructor(toy, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        Reconstructor(toy, device="tpu")


def test_loaders(tmp_path):
    crop = fb.random_images(1, seed=4)[0]
    cv2.imwrite(str(tmp_path / "a.png"), crop[..., ::-1])
    np.testing.assert_array_equal(load_aligned_image(tmp_path / "a.png"), crop)  # RGB order kept
    cv2.imwrite(str(tmp_path / "g.png"), crop[..., 0])
    assert load_aligned_image(tmp_path / "g.png").shape == (224, 224, 3)
    cv2.imwrite(str(tmp_path / "w16.png"), crop.astype(np.uint16) * 256)
    with pytest.raises(InputError, match=r"w16\.png: uint16 image"):
        load_aligned_image(tmp_path / "w16.png")
    np.save(tmp_path / "f.npy", np.zeros((2, 224, 224, 3), np.float32))
    with pytest.raises(InputError, match=r"f\.npy: dtype float32"):
        load_aligned_npy(tmp_path / "f.npy")
    np.save(tmp_path / "s.npy", np.zeros((224, 224, 3), np.uint8))
    with pytest.raises(InputError, match=r"s\.npy: shape \(224, 224, 3\)"):
        load_aligned_npy(tmp_path / "s.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match=r"o\.npy: not a readable \.npy"):  # pickled content refused
        load_aligned_npy(tmp_path / "o.npy")
    with pytest.raises(InputError, match=r"missing\.png: no such file"):
        load_aligned_image(tmp_path / "missing.png")


def _write_inputs(d):
    crops = fb.random_images(6, seed=9)
    cv2.imwrite(str(d / "a.png"), crops[0][..., ::-1])
    np.save(d / "stack.npy", crops[1:4])
    (d / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cv2.imwrite(str(d / "small.png"), crops[4][:100, :120, ::-1])
    good = d / "good.npy"
    np.save(good, crops[4:6])
    corrupt = d / "corrupt.npy"
    corrupt.write_bytes(good.read_bytes()[:200])  # truncated payload
    np.save(d / "u16.npy", crops[4:6].astype(np.uint16))
    return crops


def test_cli_order_and_skips(toy, tmp_path, capsys):
    crops = _write_inputs(tmp_path)
    names = ["a.png", "broken.jpg", "stack.npy", "small.png", "corrupt.npy", "u16.npy", "good.npy"]
    out = tmp_path / "out" / "res.npz"
    rc = main(["reconstruct", str(toy)] + [str(tmp_path / n) for n in names] + ["--aligned", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2  # written, with skips
    for bad in ("broken.jpg", "small.png", "corrupt.npy", "u16.npy"):
        assert bad in err
    z = np.load(out, allow_pickle=False)
    expected_rows = [crops[0], crops[1], crops[2], crops[3], crops[4], crops[5]]
    ref = torch_ref(np.stack(expected_rows))
    for k in ref:
        assert z[k].dtype == np.float32 and z[k].shape[0] == 6
        assert rel(z[k], ref[k]) <= TOL, k
    assert [s.rsplit("/", 1)[-1] for s in z["input_names"]] == \
        ["a.png", "stack.npy[0]", "stack.npy[1]", "stack.npy[2]", "good.npy[0]", "good.npy[1]"]
    np.testing.assert_array_equal(z["input_file_index"], [0, 2, 2, 2, 6, 6])
    np.testing.assert_array_equal(z["input_item"], [0, 0, 1, 2, 0, 1])
    assert [s.rsplit("/", 1)[-1] for s in z["skipped_names"]] == ["broken.jpg", "small.png", "corrupt.npy", "u16.npy"]
    reasons = list(z["skipped_reasons"])
    assert "not a readable image" in reasons[0] and "120x100" in reasons[1]
    assert "not a readable .npy" in reasons[2] and "dtype uint16" in reasons[3]
    side = json.loads(out.with_suffix(".json").read_text())
    assert [s["input"].rsplit("/", 1)[-1] for s in side["skipped"]] == ["broken.jpg", "small.png", "corrupt.npy",
                                                                         "u16.npy"]
    assert side["outputs"]["vertices"] == [6, 5023, 3]


def test_cli_all_good_and_all_bad(toy, tmp_path, capsys):
    _write_inputs(tmp_path)
    out = tmp_path / "ok.npz"
    assert main(["reconstruct", str(toy), str(tmp_path / "a.png"), "--aligned", "-o", str(out)]) == 0
    z = np.load(out)
    assert z["skipped_names"].shape == (0,) and z["vertices"].shape == (1, 5023, 3)
    out2 = tmp_path / "none.npz"
    assert main(["reconstruct", str(toy), str(tmp_path / "broken.jpg"), "--aligned", "-o", str(out2)]) == 1
    assert "nothing to reconstruct" in capsys.readouterr().err and not out2.exists()


def test_cli_requires_aligned_and_valid_bundle(toy, tmp_path, capsys):
    _write_inputs(tmp_path)
    assert main(["reconstruct", str(toy), str(tmp_path / "a.png"), "-o", str(tmp_path / "x.npz")]) == 1
    assert "--aligned" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "nobundle"), str(tmp_path / "a.png"), "--aligned", "-o",
                 str(tmp_path / "x.npz")]) == 1
    assert "bundle not found" in capsys.readouterr().err
