"""Model definitions: parameter names/counts, forward passes against float64 functional references
written here, TF "SAME" padding, post-processing, and ONNX export parity."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emoca_edge.training.models import (DetailDecoder, EmoRecMLP, ResNet50, ResnetEncoder, SmirkEncoder,
                                        split_deca_code, tf_mobilenetv3_large_minimal_100,
                                        tf_mobilenetv3_small_minimal_100)
from emoca_edge.training.models.mobilenetv3 import Conv2dSame, conv_same
from synthetic import checkpoints as C  # tests/ is on sys.path (rootdir conftest)


def _load_random(module, keys, seed):
    """Fill ``module`` with the synthetic random state for ``keys`` (names generated independently)."""
    module.load_state_dict(C.random_state(keys, seed), strict=True)
    return module.eval()


def _n_params(keys):
    return sum(math.prod(s) for n, s, k in keys if k not in ("bn_mean", "bn_var", "bn_count"))


# ------------------------------------------------------------------------ names and counts
@pytest.mark.parametrize("module_fn,keys_fn,spec_millions", [
    (lambda: ResnetEncoder(236), lambda: C.resnet_encoder_keys(236), 25.85),
    (lambda: ResnetEncoder(128), lambda: C.resnet_encoder_keys(128), 25.74),
    (lambda: DetailDecoder(181), lambda: C.detail_decoder_keys(181), 1.77),
])
def test_deca_names_shapes_and_parameter_counts(module_fn, keys_fn, spec_millions):
    m = module_fn()
    keys = keys_fn()
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {n: tuple(s) for n, s, _ in keys}
    n = sum(p.numel() for p in m.parameters())
    assert n == _n_params(keys)
    # The spec quotes millions rounded to two decimals.
    assert round(n / 1e6, 2) == spec_millions


@pytest.mark.parametrize("factory,arch", [
    (tf_mobilenetv3_small_minimal_100, C.TIMM_SMALL_MINIMAL),
    (tf_mobilenetv3_large_minimal_100, C.TIMM_LARGE_MINIMAL),
])
def test_mobilenetv3_names_and_shapes_match_timm_block_strings(factory, arch):
    """Expected names/shapes are derived from timm's block-string configs by the decoder in
    tests/synthetic/checkpoints.py (timm itself cannot be installed here)."""
    m = factory()
    expected = [(n, tuple(s)) for n, s, _ in C.mobilenetv3_feature_keys(arch)]
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == expected
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert mod.eps == 1e-3
        if isinstance(mod, torch.nn.Conv2d):
            assert mod.bias is None


def test_mobilenetv3_parameter_counts_match_timm_totals_minus_head():
    """timm reports 2.04 M (small minimal) and 3.92 M (large minimal) parameters for the classifier
    models; those include conv_head (C->1024 or C->1280, with bias) and a 1000-way classifier."""
    small = sum(p.numel() for p in tf_mobilenetv3_small_minimal_100().parameters())
    large = sum(p.numel() for p in tf_mobilenetv3_large_minimal_100().parameters())
    head_small = 576 * 1024 + 1024 + 1024 * 1000 + 1000
    head_large = 960 * 1280 + 1280 + 1280 * 1000 + 1000
    assert round((small + head_small) / 1e6, 2) == 2.04
    assert round((large + head_large) / 1e6, 2) == 3.92


def test_smirk_names_match_official_layout():
    enc = SmirkEncoder()
    expected = {n[len("smirk_encoder."):]: tuple(s) for n, s, _ in C.smirk_encoder_keys()}
    assert {k: tuple(v.shape) for k, v in enc.state_dict().items()} == expected


def test_emorec_layer_indices():
    m = EmoRecMLP()
    lin = [i for i, l in enumerate(m.model) if isinstance(l, torch.nn.Linear)]
    bns = [i for i, l in enumerate(m.model) if isinstance(l, torch.nn.BatchNorm1d)]
    assert lin == [0, 3, 6, 9, 12] and bns == [1, 4, 7, 10]
    expected = {n[len("mlp."):]: tuple(s) for n, s, _ in C.emorec_mlp_keys(153, 2048, 4, 10)}
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == expected


# ------------------------------------------------------------------------ float64 references
def _bn_ref(x, sd, p, eps):
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return ((x - sd[p + ".running_mean"].view(shape)) / torch.sqrt(sd[p + ".running_var"].view(shape) + eps)
            * sd[p + ".weight"].view(shape) + sd[p + ".bias"].view(shape))


def _resnet_ref(sd, x, variant):
    """Functional float64 ResNet-50 from the state dict (layer table written out here)."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    x = F.relu(_bn_ref(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1", 1e-5))
    if variant == "vggface2":
        x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
    else:
        x = F.max_pool2d(x, 3, 2, 1)
    for li, (blocks, stride) in enumerate(((3, 1), (4, 2), (6, 2), (3, 2)), start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}."
            s = stride if b == 0 else 1
            s1, s3 = (s, 1) if variant == "vggface2" else (1, s)
            y = F.relu(_bn_ref(F.conv2d(x, sd[p + "conv1.weight"], stride=s1), sd, p + "bn1", 1e-5))
            y = F.relu(_bn_ref(F.conv2d(y, sd[p + "conv2.weight"], stride=s3, padding=1), sd, p + "bn2", 1e-5))
            y = _bn_ref(F.conv2d(y, sd[p + "conv3.weight"]), sd, p + "bn3", 1e-5)
            if b == 0:
                x = _bn_ref(F.conv2d(x, sd[p + "downsample.0.weight"], stride=s), sd, p + "downsample.1", 1e-5)
            x = F.relu(y + x)
    return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("variant", ["deca", "vggface2"])
def test_resnet_matches_float64_reference(variant, images):
    m = _load_random(ResNet50(variant), C.resnet50_keys(), 1)
    x = images[:1]  # one image keeps the float64 reference fast
    with torch.no_grad():
        got = m(x).double()
    ref = _resnet_ref(m.state_dict(), x, variant)
    assert got.shape == (1, 2048)
    # float32 through 53 conv/BN layers: relative error ~1e-6 observed; 1e-4 leaves margin.
    assert torch.max(torch.abs(got - ref)) <= 1e-4 * torch.max(torch.abs(ref))


def test_resnet_rejects_wrong_input_size():
    m = ResNet50().eval()
    with pytest.raises(ValueError, match=r"224, 224.*got \(1, 3, 256, 256\)"):
        m(torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match="variant"):
        ResNet50("resnet18")


def test_resnet_encoder_head(images):
    m = _load_random(ResnetEncoder(236), C.resnet_encoder_keys(236), 2)
    sd = {k: v.double() for k, v in m.state_dict().items()}
    with torch.no_grad():
        got = m(images).double()
        feats = m.encoder(images).double()
    ref = F.relu(feats @ sd["layers.0.weight"].T + sd["layers.0.bias"]) @ sd["layers.2.weight"].T + sd["layers.2.bias"]
    assert got.shape == (2, 236)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def _decoder_ref(sd, z):
    sd = {k: v.double() for k, v in sd.items()}
    x = (z.double() @ sd["l1.0.weight"].T + sd["l1.0.bias"]).reshape(-1, 128, 8, 8)
    x = _bn_ref(x, sd, "conv_blocks.0", 1e-5)
    for conv in (2, 6, 10, 14, 18):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x, sd[f"conv_blocks.{conv}.weight"], sd[f"conv_blocks.{conv}.bias"], padding=1)
        x = F.leaky_relu(_bn_ref(x, sd, f"conv_blocks.{conv + 1}", 0.8), 0.2)
    x = F.conv2d(x, sd["conv_blocks.21.weight"], sd["conv_blocks.21.bias"], padding=1)
    return torch.tanh(x) * 0.01


def test_detail_decoder_matches_reference_and_eps_trap():
    m = _load_random(DetailDecoder(181), C.detail_decoder_keys(181), 3)
    eps = {i: l.eps for i, l in enumerate(m.conv_blocks) if isinstance(l, torch.nn.BatchNorm2d)}
    assert eps == {0: 1e-5, 3: 0.8, 7: 0.8, 11: 0.8, 15: 0.8, 19: 0.8}
    z = torch.randn(3, 181, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = m(z).double()
    ref = _decoder_ref(m.state_dict(), z)
    assert got.shape == (3, 1, 256, 256)
    assert float(got.abs().max()) <= 0.01
    # float32 vs float64 on a small network: 1e-4 relative to the output range.
    assert torch.max(torch.abs(got - ref)) <= 1e-4 * torch.max(torch.abs(ref))
    # The eps matters: with the default eps the output differs clearly.
    sd = dict(m.state_dict())
    m2 = DetailDecoder(181)
    for l in m2.conv_blocks:
        if isinstance(l, torch.nn.BatchNorm2d):
            l.eps = 1e-5
    m2.load_state_dict(sd)
    with torch.no_grad():
        assert torch.max(torch.abs(m2.eval()(z).double() - ref)) > 10 * torch.max(torch.abs(got - ref))


def test_split_deca_code_order():
    code = torch.arange(2 * 236, dtype=torch.float32).reshape(2, 236)
    d = split_deca_code(code)
    bounds = {"shape": (0, 100), "albedo": (100, 150), "expression": (150, 200), "global_pose": (200, 203),
              "jaw_pose": (203, 206), "camera": (206, 209)}
    for name, (a, b) in bounds.items():
        assert torch.equal(d[name], code[:, a:b]), name
    assert d["light"].shape == (2, 9, 3)
    assert torch.equal(d["light"][1, 2], code[1, 209 + 6:209 + 9])  # SH coefficient 2, RGB
    with pytest.raises(ValueError, match="236"):
        split_deca_code(torch.zeros(1, 235))


# ------------------------------------------------------------------------ TF "SAME" padding
def _np_conv_same(x, w, stride, groups=1):
    """float64 NumPy reference: TF SAME padding (extra pixel after) then a direct strided correlation."""
    n, c, h, wd = x.shape
    co, cig, k, _ = w.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + k - h, 0)
    pw = max((ow - 1) * stride + k - wd, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    out = np.zeros((n, co, oh, ow))
    cog = co // groups
    for o in range(co):
        g = o // cog
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cig:(g + 1) * cig, i * stride:i * stride + k, j * stride:j * stride + k]
                out[:, o, i, j] = np.sum(patch * w[o][None], axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("size", [7, 8, 9, 10])
@pytest.mark.parametrize("kernel,stride,groups", [(3, 2, 1), (5, 2, 1), (3, 2, 4), (3, 1, 1), (1, 1, 1)])
def test_tf_same_conv_matches_numpy(size, kernel, stride, groups):
    g = torch.Generator().manual_seed(size * 100 + kernel * 10 + stride)
    conv = conv_same(4, 4, kernel, stride, groups=groups)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    x = torch.randn(2, 4, size, size + 1, generator=g)  # non-square: both axes checked
    with torch.no_grad():
        got = conv(x).numpy().astype(np.float64)
    ref = _np_conv_same(x.double().numpy(), conv.weight.detach().double().numpy(), stride, groups)
    assert got.shape == ref.shape
    # float32 sums of <= 100 products of O(1) values: 1e-5 absolute is ample.
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    if stride == 2:
        assert isinstance(conv, Conv2dSame)


def _mnv3_ref(sd, x, arch):
    """float64 functional MobileNetV3 from timm block strings (NumPy-derived SAME pads)."""
    sd = {k: v.double() for k, v in sd.items()}

    def conv(x, w, stride, groups=1):
        k = w.shape[-1]
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), w, stride=stride, groups=groups)

    x = F.relu(_bn_ref(conv(x.double(), sd["conv_stem.weight"], 2), sd, "bn1", 1e-3))
    cin = 16
    for si, stage in enumerate(arch):
        bi = 0
        for s in stage:
            kind, reps, k, e, cout = C._decode_block_string(s)
            stride = int(s.split("_s")[1].split("_")[0])
            for _ in range(reps):
                st = stride if bi == 0 else 1
                p = f"blocks.{si}.{bi}."
                if kind == "ds":
                    y = F.relu(_bn_ref(conv(x, sd[p + "conv_dw.weight"], st, cin), sd, p + "bn1", 1e-3))
                    y = _bn_ref(conv(y, sd[p + "conv_pw.weight"], 1), sd, p + "bn2", 1e-3)
                elif kind == "ir":
                    mid = sd[p + "conv_pw.weight"].shape[0]
                    y = F.relu(_bn_ref(conv(x, sd[p + "conv_pw.weight"], 1), sd, p + "bn1", 1e-3))
                    y = F.relu(_bn_ref(conv(y, sd[p + "conv_dw.weight"], st, mid), sd, p + "bn2", 1e-3))
                    y = _bn_ref(conv(y, sd[p + "conv_pwl.weight"], 1), sd, p + "bn3", 1e-3)
                else:
                    y = F.relu(_bn_ref(conv(x, sd[p + "conv.weight"], 1), sd, p + "bn1", 1e-3))
                x = y + x if (kind != "cn" and st == 1 and cin == cout) else y
                cin = cout
                bi += 1
    return x


@pytest.mark.parametrize("factory,arch,channels", [
    (tf_mobilenetv3_small_minimal_100, C.TIMM_SMALL_MINIMAL, 576),
    (tf_mobilenetv3_large_minimal_100, C.TIMM_LARGE_MINIMAL, 960),
])
def test_mobilenetv3_matches_float64_reference(factory, arch, channels, images):
    m = _load_random(factory(), C.mobilenetv3_feature_keys(arch), 5)
    with torch.no_grad():
        got = m(images).double()
    ref = _mnv3_ref(m.state_dict(), images, arch)
    assert got.shape == (2, channels, 7, 7)
    assert torch.max(torch.abs(got - ref)) <= 1e-4 * torch.max(torch.abs(ref))


# ------------------------------------------------------------------------ SMIRK heads
def test_smirk_output_postprocessing(images):
    enc = SmirkEncoder()
    enc.load_state_dict({k[len("smirk_encoder."):]: v for k, v in
                         C.random_state(C.smirk_encoder_keys(), 6).items()})
    enc.eval()
    # Expression head: zero weights, chosen biases -> known raw outputs.
    raw = torch.linspace(-1.5, 1.5, 55)
    raw[50:55] = torch.tensor([-0.3, 1.7, -0.4, 0.5, -0.7])
    with torch.no_grad():
        enc.expression_encoder.expression_layers[0].weight.zero_()
        enc.expression_encoder.expression_layers[0].bias.copy_(raw)
        out = enc(images)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "global_pose": (2, 3), "camera": (2, 3), "shape": (2, 300), "expression": (2, 50), "eyelids": (2, 2),
        "jaw_pose": (2, 3)}
    assert torch.equal(out["expression"][0], raw[:50])
    assert torch.equal(out["eyelids"][0], torch.tensor([0.0, 1.0]))
    assert torch.allclose(out["jaw_pose"][0], torch.tensor([0.0, 0.2, -0.2]))
    # Pose/camera are the raw Linear outputs on the pooled features.
    with torch.no_grad():
        feats = enc.pose_encoder.encoder(images).double().mean(dim=(2, 3))
    lin = enc.pose_encoder.pose_cam_layers[0]
    ref = feats @ lin.weight.double().T + lin.bias.double()
    assert torch.allclose(out["global_pose"].double(), ref[:, :3], atol=1e-5)
    assert torch.allclose(out["camera"].double(), ref[:, 3:], atol=1e-5)


# ------------------------------------------------------------------------ emotion MLP
def test_emorec_matches_reference_and_output_slicing():
    m = _load_random(EmoRecMLP(), [(n[len("mlp."):], s, k) for n, s, k in C.emorec_mlp_keys()], 7)
    g = torch.Generator().manual_seed(8)
    codes = {"shape": torch.randn(4, 100, generator=g), "expression": torch.randn(4, 50, generator=g),
             "jaw_pose": torch.randn(4, 3, generator=g) * 0.1}
    x = m.assemble_input(global_pose=torch.zeros(4, 3), **codes)
    assert torch.equal(x, torch.cat([codes["shape"], codes["expression"], codes["jaw_pose"]], 1))
    with torch.no_grad():
        out = m(x)
    sd = {k: v.double() for k, v in m.state_dict().items()}
    h = x.double()
    for i in (0, 3, 6, 9):
        h = F.leaky_relu(_bn_ref(h @ sd[f"model.{i}.weight"].T + sd[f"model.{i}.bias"], sd, f"model.{i + 1}", 1e-5), 0.2)
    y = h @ sd["model.12.weight"].T + sd["model.12.bias"]
    ref_logits = y[:, :8] - torch.logsumexp(y[:, :8], dim=1, keepdim=True)
    # float32 MLP of width 2048: 1e-4 relative to the output scale.
    tol = 1e-4 * float(y.abs().max())
    assert torch.allclose(out["expression_logits"].double(), ref_logits, atol=tol)
    assert torch.allclose(out["valence"].double(), y[:, 8], atol=tol)
    assert torch.allclose(out["arousal"].double(), y[:, 9], atol=tol)
    with pytest.raises(ValueError, match="jaw_pose"):
        m.assemble_input(shape=codes["shape"], expression=codes["expression"])


# ------------------------------------------------------------------------ ONNX export parity
def _onnx_roundtrip(model, example, tmp_path, name):
    import onnxruntime as ort

    path = tmp_path / f"{name}.onnx"
    with torch.no_grad():
        ref_out = model(example)
    out_names = list(ref_out) if isinstance(ref_out, dict) else ["out"]
    torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                      output_names=out_names, dynamic_axes={"x": {0: "batch"}, **{o: {0: "batch"} for o in out_names}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Run with a different batch size than the export example: the batch axis must be dynamic.
    x2 = torch.cat([example, example[:1] * 0.5], 0)
    with torch.no_grad():
        ref = model(x2)
    got = sess.run(None, {"x": x2.numpy()})
    refs = [ref[k] for k in out_names] if isinstance(ref, dict) else [ref]
    for o, g, r in zip(out_names, got, refs):
        r = r.numpy()
        assert g.shape == r.shape, o
        # Same float32 math in a different runtime: relative error <= 1e-4 of the output range.
        scale = max(float(np.abs(r).max()), 1e-6)
        assert float(np.abs(g - r).max()) <= 1e-4 * scale, o


@pytest.mark.slow
def test_onnx_export_parity(tmp_path, images):
    e_flame = _load_random(ResnetEncoder(236), C.resnet_encoder_keys(236), 9)
    _onnx_roundtrip(e_flame, images, tmp_path, "e_flame")
    dec = _load_random(DetailDecoder(181), C.detail_decoder_keys(181), 10)
    _onnx_roundtrip(dec, torch.randn(2, 181, generator=torch.Generator().manual_seed(11)), tmp_path, "d_detail")
    smirk = SmirkEncoder()
    smirk.load_state_dict({k[len("smirk_encoder."):]: v for k, v in
                           C.random_state(C.smirk_encoder_keys(), 12).items()})
    _onnx_roundtrip(smirk.eval(), images, tmp_path, "smirk")
    mlp = _load_random(EmoRecMLP(), [(n[len("mlp."):], s, k) for n, s, k in C.emorec_mlp_keys()], 13)
    _onnx_roundtrip(mlp, torch.randn(2, 153, generator=torch.Generator().manual_seed(14)), tmp_path, "emorec")
