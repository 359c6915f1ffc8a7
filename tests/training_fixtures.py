"""Synthetic training data for the training tests: renders of the synthetic FLAME with known parameters.

:func:`synthetic_affectnet` writes an AffectNet-format folder (``training.csv``, ``validation.csv``,
``images/``): each image is the synthetic FLAME (``tests/synthetic/flame_files``) with random
expression / jaw / head pose, rendered with SH shading by the native renderer into a 256x256 frame
on a noise background; its 68 landmarks are the projected FLAME landmarks (frame pixels). Labels
are derived from the parameters: class = argmax of expression[0:8], valence = tanh(expression[8]),
arousal = tanh(expression[9]). Extra rows exercise the skip paths: a corrupt image file, a missing
image, a malformed landmark string and an expression code 9 (Uncertain).
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

_CACHE: dict = {}
FRAME = 256


def _root() -> Path:
    if "root" not in _CACHE:
        r = Path(tempfile.mkdtemp(prefix="emoca-edge-train-test-"))
        atexit.register(shutil.rmtree, r, True)
        _CACHE["root"] = r
    return _CACHE["root"]


def flame_dir() -> Path:
    if "flame" not in _CACHE:
        from synthetic.flame_files import write_flame_dir

        d = _root() / "FLAME"
        write_flame_dir(d, seed=0, eyelids=False)
        _CACHE["flame"] = d
    return _CACHE["flame"]


def face_model() -> dict:
    if "fm" not in _CACHE:
        from emoca_edge.export.flame_assets import load_flame_dir

        _CACHE["fm"] = load_flame_dir(flame_dir(), n_shape=100, n_exp=50)
    return _CACHE["fm"]


def uv_obj() -> Path:
    """An .obj with a planar front-projection UV layout of the synthetic FLAME (one UV per vertex)."""
    if "obj" not in _CACHE:
        fm = face_model()
        v = np.asarray(fm["v_template"], np.float64)
        u = 0.5 + v[:, 0] / (2.2 * np.abs(v[:, 0]).max())
        w = 0.5 + v[:, 1] / (2.2 * np.abs(v[:, 1]).max())
        lines = [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
        lines += [f"vt {a:.6f} {b:.6f}" for a, b in zip(u, w)]
        lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in np.asarray(fm["faces"])]
        p = _root() / "head_template.obj"
        p.write_text("\n".join(lines) + "\n")
        _CACHE["obj"] = p
    return _CACHE["obj"]


def uv_mask() -> Path:
    """A 64x64 UV mask PNG: 255 on the upper half (v > 0.5), 0 below."""
    if "uv_mask" not in _CACHE:
        import cv2

        img = np.zeros((64, 64), np.uint8)
        img[:32] = 255
        p = _root() / "uv_face_mask.png"
        cv2.imwrite(str(p), img)
        _CACHE["uv_mask"] = p
    return _CACHE["uv_mask"]


def deca_tar() -> Path:
    """Synthetic official-format ``deca_model.tar`` (random weights) as the frozen E_flame."""
    if "deca" not in _CACHE:
        from synthetic.checkpoints import write_deca_tar

        p = _root() / "deca_model.tar"
        write_deca_tar(p, seed=0)
        _CACHE["deca"] = p
    return _CACHE["deca"]


def render_faces(n: int, seed: int) -> tuple:
    """(images (n, FRAME, FRAME, 3) uint8, landmarks (n, 68, 2) frame px, expression (n, 50))."""
    import torch

    from emoca_edge.render import render_sh
    from emoca_edge.training.camera import ndc_to_pixels, weak_perspective
    from emoca_edge.training.flame import FLAME

    fm = face_model()
    flame = FLAME(fm)
    rng = np.random.default_rng(seed)
    exp = rng.normal(0, 1.5, (n, 50)).astype(np.float32)
    jaw = np.zeros((n, 3), np.float32)
    jaw[:, 0] = rng.uniform(0, 0.2, n)
    pose = rng.normal(0, 0.1, (n, 3)).astype(np.float32)
    with torch.no_grad():
        out = flame(torch.zeros(n, 100), torch.from_numpy(exp), torch.from_numpy(pose), torch.from_numpy(jaw))
    cam = torch.tensor([[7.0, 0.0, 0.0]]).repeat(n, 1)
    verts = ndc_to_pixels(weak_perspective(out.vertices, cam), FRAME).numpy()
    lmk = ndc_to_pixels(weak_perspective(out.landmarks2d_3d, cam), FRAME)[..., :2].numpy()
    faces = np.asarray(fm["faces"])
    colours = 0.45 + 0.3 * (np.asarray(fm["v_template"]) / 0.2 + 0.5).clip(0, 1)
    images = []
    for i in range(n):
        light = np.zeros((9, 3))
        light[0] = 2.0
        light[1:4] = rng.normal(0, 0.4, (3, 3))
        bg = rng.integers(40, 90, (FRAME, FRAME, 3)).astype(np.uint8)
        images.append(render_sh(verts[i], faces, FRAME, FRAME, light, albedo=colours, background=bg))
    return np.stack(images), lmk, exp


def labels(exp: np.ndarray) -> tuple:
    return exp[:, :8].argmax(1), np.tanh(exp[:, 8]), np.tanh(exp[:, 9])


def _row(path, lmk, e, v, a) -> str:
    x0, y0 = lmk.min(0)
    w, h = lmk.max(0) - lmk.min(0)
    pts = ";".join(f"{t:.3f}" for t in lmk.reshape(-1))
    return f"{path},{x0:.0f},{y0:.0f},{w:.0f},{h:.0f},{pts},{e},{v:.4f},{a:.4f}"


HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"


def synthetic_affectnet(n_train: int = 8, n_val: int = 4, with_bad: bool = True) -> Path:
    """AffectNet-format folder (see the module docstring); cached per arguments."""
    key = ("affectnet", n_train, n_val, with_bad)
    if key in _CACHE:
        return _CACHE[key]
    import cv2

    d = _root() / f"affectnet_{n_train}_{n_val}_{int(with_bad)}"
    (d / "images" / "sub").mkdir(parents=True)
    for split, n, seed in (("training", n_train, 1), ("validation", n_val, 2)):
        imgs, lmk, exp = render_faces(n, seed)
        cls, val, aro = labels(exp)
        rows = [HEADER]
        for i in range(n):
            name = f"sub/{split}_{i:03d}.png"
            cv2.imwrite(str(d / "images" / name), cv2.cvtColor(imgs[i], cv2.COLOR_RGB2BGR))
            rows.append(_row(name, lmk[i], int(cls[i]), float(val[i]), float(aro[i])))
        if with_bad and split == "training":
            (d / "images" / "sub" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
            rows.append(_row("sub/corrupt.jpg", lmk[0], 1, 0.1, 0.1))
            rows.append(_row("sub/missing.png", lmk[0], 2, 0.1, 0.1))
            rows.append(_row("sub/training_000.png", lmk[0], 9, 0.1, 0.1))  # Uncertain: skipped
            bad = _row("sub/training_001.png", lmk[0], 3, 0.2, 0.2).split(",")
            bad[5] = "1;2;3"
            rows.append(",".join(bad))
        (d / f"{split}.csv").write_text("\n".join(rows) + "\n")
    _CACHE[key] = d
    return d


def framing_deca_tar() -> Path:
    """A ``deca_model.tar`` in the official format whose E_flame frames the synthetic renders: the random
    weights of :func:`deca_tar` with the last layer scaled by 1e-3 and its bias set to camera (7, 0, 0),
    zero pose and an ambient light of 2 (the values :func:`render_faces` used), so the frozen E_flame of
    the tests predicts a face that covers the crop (as a trained DECA would)."""
    if "deca_framing" not in _CACHE:
        import torch

        from synthetic.checkpoints import write_deca_tar

        p = _root() / "deca_framing.tar"
        content = write_deca_tar(_root() / "deca_tmp.tar", seed=0)
        w = content["E_flame"]["layers.2.weight"]
        b = content["E_flame"]["layers.2.bias"]
        w.mul_(1e-3)
        b.zero_()
        b[206:209] = torch.tensor([7.0, 0.0, 0.0])   # camera (s, tx, ty) after 100+50+50+6 code values
        b[209:212] = 2.0                              # light[0] (ambient), RGB
        torch.save(content, p)
        _CACHE["deca_framing"] = p
    return _CACHE["deca_framing"]
