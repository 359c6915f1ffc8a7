"""Bundles built once per test process and shared by test modules (and benchmarks/).

Expensive steps (synthetic official-format checkpoints, ONNX export of ResNet-50s) are cached in
this module's globals, keyed by name, so every test module that asks for the same bundle gets the
same directory. Everything lives in one temporary directory removed at interpreter exit.

* :func:`sources` — synthetic FLAME folder, DECA tar, EMOCA folders, SMIRK pt, emorec folder;
* :func:`bundle` — ``"deca"`` (detail), ``"emoca_coarse"``, ``"emoca_detail_jaw"`` (detail stage,
  ``exp_deca_jaw_pose``), ``"smirk"``, ``"emoca_coarse_emorec"`` (EMOCA coarse + emotion regressor);
* :func:`toy_bundle` — a tiny torch model (no FLAME) exported through the same writer, for bundle,
  CLI and runtime tests that do not need a real family;
* :func:`photo_crops`, :func:`random_images` — test inputs.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

_ROOT: Path | None = None
_CACHE: dict = {}


def root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="emoca-edge-test-bundles-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def _cached(key, factory):
    if key not in _CACHE:
        _CACHE[key] = factory()
    return _CACHE[key]


# ------------------------------------------------------------------------------ sources
_SOURCE_NAMES = ("flame", "deca", "emoca", "emoca_jaw", "smirk", "emorec")


class _Sources(dict):
    """``sources()[key]`` writes that synthetic source on first access (FLAME, DECA tar, ...)."""

    def __missing__(self, key):
        from synthetic.checkpoints import write_deca_tar, write_emoca_folder, write_emorec_folder, write_smirk_pt
        from synthetic.flame_files import write_flame_dir

        r = root() / "sources"
        if key == "flame":
            write_flame_dir(r / "FLAME", seed=0, eyelids=True)
            value = r / "FLAME"
        elif key == "deca":
            value = r / "deca_model.tar"
            write_deca_tar(value, seed=0)
        elif key == "emoca":
            value = write_emoca_folder(r / "emoca", name="EMOCA_v2_lr_mse_20", seed=10, stages=("coarse",))["dir"]
        elif key == "emoca_jaw":
            value = write_emoca_folder(r / "emoca_jaw", name="EMOCA_v2_jaw", seed=40, stages=("detail",),
                                       exp_deca_jaw_pose=True)["dir"]
        elif key == "smirk":
            value = r / "SMIRK_em1.pt"
            write_smirk_pt(value, seed=20)
        elif key == "emorec":
            value = write_emorec_folder(r / "emorec", name="EMOCA-emorec", seed=30)["dir"]
        else:
            raise KeyError(f"unknown synthetic source {key!r}; expected one of {_SOURCE_NAMES}")
        self[key] = value
        return value


_SOURCES = _Sources()


def sources() -> dict:
    """Synthetic files in the official formats (random weights, synthetic FLAME), each written on
    first access: keys flame, deca, emoca (coarse), emoca_jaw (detail, exp_deca_jaw_pose), smirk, emorec."""
    return _SOURCES


def bundle(name: str) -> Path:
    """Path of a bundle imported from :func:`sources` (built on first request)."""
    def make():
        from emoca_edge.cli import main as cli_main
        from emoca_edge.export import import_cli

        src = sources()
        out = root() / "bundles" / name
        if name == "deca":
            import_cli.import_deca(src["deca"], src["flame"], out, stage="detail")
        elif name == "emoca_coarse":
            import_cli.import_emoca(src["emoca"], src["flame"], out, stage="coarse")
        elif name == "emoca_detail_jaw":
            import_cli.import_emoca(src["emoca_jaw"], src["flame"], out, stage="detail")
        elif name == "smirk":  # through the CLI, so the command is exercised too
            rc = cli_main(["import", "smirk", str(src["smirk"]), "--flame", str(src["flame"]), "-o", str(out)])
            assert rc == 0, "emoca-edge import smirk failed"
        elif name == "emoca_coarse_emorec":
            shutil.copytree(bundle("emoca_coarse"), out)
            rc = cli_main(["import", "emorec", str(src["emorec"]), "--into", str(out)])
            assert rc == 0, "emoca-edge import emorec failed"
        else:
            raise KeyError(name)
        return out
    return _cached(("bundle", name), make)


def built(name: str):
    """The PyTorch reference (``import_cli.Built``) of bundle ``name``, built from the same sources."""
    def make():
        from emoca_edge.export import import_cli
        from emoca_edge.export.importers import import_emorec
        from emoca_edge.training.models.reconstruction import EmotionHead

        src = sources()
        if name == "deca":
            return import_cli.build_deca(src["deca"], src["flame"], "detail")
        if name == "emoca_coarse":
            return import_cli.build_emoca(src["emoca"], src["flame"], "coarse")
        if name == "emoca_detail_jaw":
            return import_cli.build_emoca(src["emoca_jaw"], src["flame"], "detail")
        if name == "smirk":
            return import_cli.build_smirk(src["smirk"], src["flame"])
        if name == "emoca_coarse_emorec":
            b = import_cli.build_emoca(src["emoca"], src["flame"], "coarse")
            b.module.emotion = EmotionHead(import_emorec(src["emorec"]).mlp).eval()
            return b
        raise KeyError(name)
    return _cached(("built", name), make)


# ------------------------------------------------------------------------------ inputs
def random_images(n: int, seed: int = 0) -> np.ndarray:
    """(n, 224, 224, 3) uint8 RGB noise."""
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def photo_crops() -> np.ndarray:
    """Real photo crops (N, 224, 224, 3) uint8 RGB from the shipped sample portraits; a smooth
    synthetic face-like image when the package ships none."""
    from emoca_edge.export.onnx_export import sample_crops

    crops, _ = sample_crops()
    if len(crops):
        return crops
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float32) / 223.0
    img = np.stack([0.8 - 0.3 * yy, 0.6 - 0.2 * (xx - 0.5) ** 2, 0.5 + 0.2 * xx], -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)[None]


# ------------------------------------------------------------------------------ toy bundle
def make_toy_module(seed: int = 0):
    """A tiny images -> required-outputs model: conv encoder -> codes; vertices = template + codes x
    basis (5023 vertices, no skinning); landmarks = 68 fixed vertices; landmarks2d by the camera."""
    import torch
    from torch import nn

    from emoca_edge.training.camera import ndc_to_pixels, weak_perspective

    class Toy(nn.Module):
        output_names = ["shape", "expression", "global_pose", "jaw_pose", "camera", "vertices", "landmarks3d",
                        "landmarks2d"]

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.conv = nn.Conv2d(3, 4, 16, stride=16)
            self.fc = nn.Linear(4 * 14 * 14, 10 + 50 + 3 + 3 + 3)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            self.register_buffer("template", torch.randn(5023, 3, generator=g) * 0.1)
            self.register_buffer("basis", torch.randn(60, 5023 * 3, generator=g) * 1e-3)
            self.register_buffer("lmk", torch.arange(68) * 70)

        def forward(self, images):
            c = self.fc(torch.relu(self.conv(images)).flatten(1))
            shape, expr = c[:, :10], c[:, 10:60]
            cam = c[:, 66:69] + torch.tensor([8.0, 0.0, 0.0])
            v = self.template + (torch.cat([shape, expr], 1) @ self.basis).reshape(-1, 5023, 3)
            l3 = torch.index_select(v, 1, self.lmk)
            l2 = ndc_to_pixels(weak_perspective(l3, cam), 224)[..., :2]
            return {"shape": shape, "expression": expr, "global_pose": c[:, 60:63], "jaw_pose": c[:, 63:66],
                    "camera": cam, "vertices": v, "landmarks3d": l3, "landmarks2d": l2}

    return Toy().eval()


def toy_bundle() -> Path:
    """A small verified bundle (family deca, crop deca68) of :func:`make_toy_module` (< 1 MB)."""
    def make():
        import torch

        from emoca_edge.export.bundle_writer import write_bundle
        from emoca_edge.export.onnx_export import export_verified

        module = make_toy_module()
        out = root() / "bundles" / "toy"
        graph = root() / "toy_reconstruct.onnx"
        rng = np.random.default_rng(5)
        checks = [[rng.random((3, 3, 224, 224), dtype=np.float32)], [rng.random((1, 3, 224, 224), dtype=np.float32)]]
        report = export_verified(module, graph, ["images"], module.output_names, [torch.rand(2, 3, 224, 224)], checks)
        g = np.random.default_rng(1)
        face_model = {"v_template": module.template.numpy(), "faces": g.integers(0, 5023, (9976, 3)).astype(np.int32)}
        write_bundle(out, family="deca", graphs={"reconstruct": graph}, face_model=face_model,
                     dims={"shape": 10, "expression": 50}, output_names=module.output_names,
                     crop_convention="deca68", provenance={"importer": "toy (tests)", "verification": report.as_dict()})
        return out
    return _cached("toy", make)
