"""Bundles: the contract between the PyTorch world (import, export) and the runtime.

A bundle is a directory::

    manifest.json       versioned description (see docs/bundle.md)
    reconstruct.onnx    images (N,3,224,224) float32 [0,1] RGB -> every output in one session call
    face_model.npz      FLAME arrays (faces, template, blendshapes, landmark embedding); no pickles

:meth:`Bundle.load` checks the format name and version, that every listed file exists with the
recorded size and sha256, and that the graphs and the face model are listed. Any mismatch raises
:class:`BundleError` naming the bundle, the file and what differs. This module never imports torch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from emoca_edge.assets import sha256_file

FORMAT = "emoca-edge-bundle"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
FACE_MODEL_NAME = "face_model.npz"
RECONSTRUCT_GRAPH = "reconstruct"
FAMILIES = ("deca", "emoca", "smirk", "default")
FLAME_FAMILIES = ("deca", "emoca", "smirk")  # reconstruct graphs with the FLAME outputs below
CROP_CONVENTIONS = ("deca68", "smirk478")

# Every output a reconstruction graph may have: shape with symbolic sizes, units, meaning.
# "N" is the batch, "S" the number of identity coefficients (manifest dims.shape).
OUTPUT_SPECS: dict[str, dict[str, Any]] = {
    "shape": {"shape": ["N", "S"], "units": "FLAME identity PCA coefficients (unitless)",
              "description": "identity (shape) coefficients"},
    "expression": {"shape": ["N", 50], "units": "FLAME expression PCA coefficients (unitless)",
                   "description": "expression coefficients (FLAME components 300..349)"},
    "global_pose": {"shape": ["N", 3], "units": "axis-angle, radians",
                    "description": "head (root joint) rotation"},
    "jaw_pose": {"shape": ["N", 3], "units": "axis-angle, radians", "description": "jaw joint rotation"},
    "camera": {"shape": ["N", 3], "units": "s (NDC per metre), tx, ty (metres)",
               "description": "weak perspective: ndc_x = s*(x+tx), ndc_y = -s*(y+ty)"},
    "vertices": {"shape": ["N", 5023, 3], "units": "metres, FLAME model space (+x subject's left, +y up, +z out)",
                 "description": "posed FLAME mesh before the camera"},
    "landmarks3d": {"shape": ["N", 68, 3], "units": "metres, FLAME model space",
                    "description": "68 3D landmarks from the fixed full embedding"},
    "landmarks2d": {"shape": ["N", 68, 2], "units": "pixels of the 224x224 crop, x right, y down, pixel edges",
                    "description": "68 landmarks (dynamic contour) projected by the camera; pixel = (ndc+1)*112"},
    "albedo": {"shape": ["N", 50], "units": "albedo PCA coefficients (unitless)",
               "description": "texture coefficients (needs the non-redistributable albedo model to use)"},
    "light": {"shape": ["N", 9, 3], "units": "order-2 spherical-harmonics coefficients x RGB",
              "description": "scene lighting"},
    "detail": {"shape": ["N", 128], "units": "latent (unitless)", "description": "detail code from E_detail"},
    "detail_uv": {"shape": ["N", 256, 256], "units": "metres along the vertex normal (FLAME model units)",
                  "description": "detail decoder's UV displacement, before any fixed displacement map"},
    "eyelids": {"shape": ["N", 2], "units": "blendshape weights in [0,1] (index 0 left, 1 right)",
                "description": "SMIRK eyelid closure"},
    "valence": {"shape": ["N"], "units": "unitless, nominally [-1,1]", "description": "emotion regressor valence"},
    "arousal": {"shape": ["N"], "units": "unitless, nominally [-1,1]", "description": "emotion regressor arousal"},
    "expression_logits": {"shape": ["N", 8], "units": "log-probabilities (log-softmax)",
                          "description": "AffectNet order: Neutral, Happy, Sad, Surprise, Fear, Disgust, "
                                         "Anger, Contempt"},
}
REQUIRED_OUTPUTS = ("shape", "expression", "global_pose", "jaw_pose", "camera", "vertices", "landmarks3d",
                    "landmarks2d")
REQUIRED_FACE_MODEL_KEYS = ("v_template", "faces")


class BundleError(RuntimeError):
    """A bundle is missing, malformed, of an unsupported version or fails its checksums."""


def file_entry(path: str | Path) -> dict:
    """The manifest ``files`` entry of a file: ``{"sha256": hex, "bytes": int}``."""
    p = Path(path)
    return {"sha256": sha256_file(p), "bytes": p.stat().st_size}


def validate_manifest(manifest: Any, where: str = "manifest") -> None:
    """Structural checks of a parsed manifest; raises :class:`BundleError` naming ``where``."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: expected a JSON object, found {type(manifest).__name__}")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise BundleError(f"{where}: not an emoca-edge bundle (format {fmt!r}, expected {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{where}: format_version must be an integer, found {version!r}")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        newer = version > max(SUPPORTED_FORMAT_VERSIONS)
        raise BundleError(
            f"{where}: bundle format_version {version} is not supported by this emoca-edge (supports "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}); "
            + ("upgrade emoca-edge" if newer else "re-create the bundle with `emoca-edge import`"))
    for key, kind in (("family", str), ("input", dict), ("crop", dict), ("dims", dict), ("outputs", dict),
                      ("files", dict), ("graphs", dict), ("provenance", dict)):
        if key not in manifest:
            raise BundleError(f"{where}: missing required key {key!r}")
        if not isinstance(manifest[key], kind):
            raise BundleError(f"{where}: {key!r} must be a {kind.__name__}, found {type(manifest[key]).__name__}")
    if manifest["family"] not in FAMILIES:
        raise BundleError(f"{where}: unknown family {manifest['family']!r} (expected one of {', '.join(FAMILIES)})")
    conv = manifest["crop"].get("convention")
    if conv not in CROP_CONVENTIONS:
        raise BundleError(f"{where}: unknown crop convention {conv!r} (expected one of {', '.join(CROP_CONVENTIONS)})")
    inp = manifest["input"]
    for key in ("name", "size", "layout", "range", "colour"):
        if key not in inp:
            raise BundleError(f"{where}: input is missing {key!r}")
    if RECONSTRUCT_GRAPH not in manifest["graphs"]:
        raise BundleError(f"{where}: graphs has no {RECONSTRUCT_GRAPH!r} entry")
    for name, file_name in manifest["graphs"].items():
        if file_name not in manifest["files"]:
            raise BundleError(f"{where}: graph {name!r} file {file_name!r} is not listed in files")
    if manifest.get("face_model", FACE_MODEL_NAME) not in manifest["files"]:
        raise BundleError(f"{where}: face model file {manifest.get('face_model', FACE_MODEL_NAME)!r} is not listed in files")
    if manifest["family"] in FLAME_FAMILIES:
        missing = [o for o in REQUIRED_OUTPUTS if o not in manifest["outputs"]]
        if missing:
            raise BundleError(f"{where}: outputs lacks required {missing}")
        unknown = [o for o in manifest["outputs"] if o not in OUTPUT_SPECS]
        if unknown:
            raise BundleError(f"{where}: unknown outputs {unknown}")
    for name, spec in manifest["outputs"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list):
            raise BundleError(f"{where}: outputs[{name!r}] must be an object with a 'shape' list")
    for file_name, entry in manifest["files"].items():
        if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or not isinstance(entry.get("bytes"), int)):
            raise BundleError(f"{where}: files[{file_name!r}] must be {{'sha256': str, 'bytes': int}}, found {entry!r}")
        if Path(file_name).name != file_name or file_name in ("", ".", ".."):
            raise BundleError(f"{where}: file name {file_name!r} must be a plain name inside the bundle")


class Bundle:
    """A loaded, verified bundle.

    Attributes: ``path`` (directory), ``manifest`` (parsed dict). Use :meth:`load` to construct.
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        self._face_model: dict[str, np.ndarray] | None = None

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Bundle":
        """Load the bundle directory ``path``.

        ``verify``: check every listed file's size and sha256 (default). The format name, version
        and structure are always checked. Raises :class:`BundleError` with the reason.
        """
        root = Path(path)
        if not root.exists():
            raise BundleError(f"bundle not found: {root}")
        if not root.is_dir():
            raise BundleError(f"bundle {root} is not a directory (a bundle is a folder with {MANIFEST_NAME})")
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise BundleError(f"bundle {root} has no {MANIFEST_NAME}")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{mpath}: not valid JSON ({exc})") from exc
        validate_manifest(manifest, str(mpath))
        bundle = cls(root, manifest)
        if verify:
            bundle.verify()
        else:
            for name in manifest["files"]:
                if not (root / name).is_file():
                    raise BundleError(f"bundle {root}: listed file {name} is missing")
        return bundle

    def verify(self) -> None:
        """Check that each listed file exists with the recorded size and sha256."""
        for name, entry in self.manifest["files"].items():
            p = self.path / name
            if not p.is_file():
                raise BundleError(f"bundle {self.path}: listed file {name} is missing")
            size = p.stat().st_size
            if size != entry["bytes"]:
                raise BundleError(f"bundle {self.path}: {name} has {size} bytes, manifest says {entry['bytes']} "
                                  "(file truncated or replaced)")
            digest = sha256_file(p)
            if digest != entry["sha256"]:
                raise BundleError(f"bundle {self.path}: {name} fails its checksum (sha256 {digest}, manifest says "
                                  f"{entry['sha256']}); the file is corrupt or was modified")

    # ---- manifest accessors -------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self.manifest["family"]

    @property
    def format_version(self) -> int:
        return self.manifest["format_version"]

    @property
    def input_size(self) -> int:
        return int(self.manifest["input"]["size"])

    @property
    def input_name(self) -> str:
        return self.manifest["input"]["name"]

    @property
    def crop_convention(self) -> str:
        return self.manifest["crop"]["convention"]

    @property
    def dims(self) -> dict:
        return self.manifest["dims"]

    @property
    def output_names(self) -> list[str]:
        """Output names of the reconstruction graph, in manifest order."""
        return list(self.manifest["outputs"])

    def graph_path(self, name: str = RECONSTRUCT_GRAPH) -> Path:
        """Path of the ONNX graph ``name`` (e.g. ``"reconstruct"``)."""
        graphs = self.manifest["graphs"]
        if name not in graphs:
            raise BundleError(f"bundle {self.path} has no graph {name!r} (has: {', '.join(graphs)})")
        return self.path / graphs[name]

    # ---- face model ---------------------------------------------------------------------------
    @property
    def face_model(self) -> dict[str, np.ndarray]:
        """The face-model arrays (``face_model.npz``; keys in docs/design.md), loaded once without pickles."""
        if self._face_model is None:
            p = self.path / self.manifest.get("face_model", FACE_MODEL_NAME)
            try:
                with np.load(p, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except Exception as exc:  # zipfile / format errors
                raise BundleError(f"bundle {self.path}: cannot read face model {p.name}: {exc}") from exc
            missing = [k for k in REQUIRED_FACE_MODEL_KEYS if k not in arrays]
            if missing:
                raise BundleError(f"bundle {self.path}: face model {p.name} lacks arrays {missing}")
            self._face_model = arrays
        return self._face_model

    @property
    def faces(self) -> np.ndarray:
        """Triangles (F, 3) int32 into the 5023 FLAME vertices."""
        return self.face_model["faces"].astype(np.int32, copy=False)

    def describe(self) -> str:
        """A human-readable summary (used by ``emoca-edge info``)."""
        m = self.manifest
        lines = [f"bundle      {self.path}",
                 f"format      {m['format']} v{m['format_version']}",
                 f"family      {m['family']}" + (f" ({m['variant']})" if m.get("variant") else ""),
                 f"input       {m['input'].get('name')}: N x 3 x {m['input']['size']} x {m['input']['size']} "
                 f"{m['input'].get('dtype', 'float32')} {m['input']['colour']} in {m['input']['range']}",
                 "crop        " + ", ".join(f"{k}={v}" for k, v in m["crop"].items()),
                 "dims        " + ", ".join(f"{k}={v}" for k, v in m["dims"].items()),
                 "outputs"]
        for name, spec in m["outputs"].items():
            shape = "x".join(str(s) for s in spec.get("shape", []))
            lines.append(f"  {name:<18} ({shape})  {spec.get('units', '')}")
        lines.append("graphs")
        for name, f in m["graphs"].items():
            lines.append(f"  {name:<18} {f}  {m['files'][f]['bytes'] / 1e6:.1f} MB")
        lines.append("files")
        for name, e in m["files"].items():
            lines.append(f"  {name:<18} {e['bytes']:>12} bytes  sha256 {e['sha256'][:16]}...")
        prov = m["provenance"]
        lines.append("provenance")
        for k, v in prov.items():
            if k == "sources" and isinstance(v, list):
                for s in v:
                    lines.append(f"  source             {s.get('path', s.get('name', '?'))}  "
                                 f"sha256 {str(s.get('sha256', '?'))[:16]}...")
            else:
                lines.append(f"  {k:<18} {json.dumps(v) if isinstance(v, (dict, list)) else v}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, family={self.family!r}, outputs={self.output_names})"
