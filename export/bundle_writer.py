"""Writing bundles (see ``emoca_edge.bundle`` and docs/bundle.md for the format).

:func:`write_bundle` assembles a bundle in a temporary sibling directory (ONNX graphs already
exported and verified, the face-model arrays as ``.npz``), records every file's sha256 and size in
``manifest.json``, validates the manifest with the runtime's own checks and renames the directory
into place, so a failed import never leaves a half-written bundle. :func:`replace_graph` swaps a
graph of an existing bundle (used by ``import emorec --into``) the same way.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from emoca_edge import __version__
from emoca_edge.bundle import (FACE_MODEL_NAME, FORMAT, FORMAT_VERSION, MANIFEST_NAME, OUTPUT_SPECS,
                               RECONSTRUCT_GRAPH, Bundle, file_entry, validate_manifest)

INPUT_SPEC = {"name": "images", "size": 224, "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
              "colour": "RGB", "normalisation": "none (no mean/std)"}

CROP_SPECS = {
    "deca68": {"convention": "deca68", "landmarks": "68-point (FAN/iBUG)",
               "box": "extent of the 68 landmarks; size = floor((w + h) / 2 * 1.1 * 1.25)", "scale": 1.25,
               "warp": "similarity, square of that size around the box centre -> 224x224"},
    "smirk478": {"convention": "smirk478", "landmarks": "MediaPipe 478-point mesh",
                 "box": "extent of all 478 points; size = floor((w + h) / 2 * 1.4)", "scale": 1.4,
                 "warp": "similarity, square of that size around the box centre -> 224x224"},
}


def output_specs(names, dims: Mapping[str, int]) -> dict:
    """Manifest ``outputs`` entries for ``names`` (in order), with S resolved to ``dims["shape"]``
    and the class count of ``expression_logits`` to ``dims["expression_classes"]`` when given."""
    out = {}
    for n in names:
        if n not in OUTPUT_SPECS:
            raise KeyError(f"unknown output {n!r}")
        spec = dict(OUTPUT_SPECS[n])
        spec["shape"] = [int(dims.get("shape", 100)) if s == "S" else s for s in spec["shape"]]
        if n == "expression_logits" and "expression_classes" in dims:
            spec["shape"] = ["N", int(dims["expression_classes"])]
        spec["dtype"] = "float32"
        out[n] = spec
    return out


def _publish_modes(directory: Path) -> None:
    """mkdtemp/mkstemp create private (0700/0600) entries; give the bundle the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for p in directory.iterdir():
        os.chmod(p, 0o666 & ~umask)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_bundle(out_dir: str | os.PathLike, *, family: str, graphs: Mapping[str, str | os.PathLike],
                 face_model: Mapping[str, np.ndarray], dims: Mapping[str, int], output_names,
                 crop_convention: str, provenance: Mapping, variant: str | None = None,
                 extra: Mapping | None = None, overwrite: bool = False, move_graphs: bool = True) -> Path:
    """Create the bundle directory ``out_dir``.

    ``graphs``: graph name -> path of a verified ONNX file (moved into the bundle when
    ``move_graphs``, else copied); the file is named ``<graph name>.onnx`` inside the bundle.
    ``face_model``: arrays of docs/design.md, stored uncompressed in ``face_model.npz``.
    ``output_names``: the reconstruction graph's outputs, in graph order (specs from
    ``emoca_edge.bundle.OUTPUT_SPECS``), or a dict ``{name: {shape, units, description}}`` in graph
    order for graphs with other outputs (family ``default``).
    ``provenance``: importer, sources (path + sha256), cfg switches, verification report, ...
    Refuses to replace an existing ``out_dir`` unless ``overwrite``.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"bundle output {out} already exists (pass --force / overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=str(out.parent)))
    try:
        files = {}
        graph_files = {}
        for name, src in graphs.items():
            fname = f"{name}.onnx"
            if move_graphs:
                shutil.move(str(src), tmp / fname)
            else:
                shutil.copyfile(src, tmp / fname)
            graph_files[name] = fname
        arrays = {k: np.ascontiguousarray(v) for k, v in face_model.items()}
        for k, v in arrays.items():
            if v.dtype == object:
                raise TypeError(f"face model array {k!r} has dtype object; bundles hold plain arrays only")
        np.savez(tmp / FACE_MODEL_NAME, **arrays)
        for p in sorted(tmp.iterdir()):
            files[p.name] = file_entry(p)
        prov = dict(provenance)
        prov.setdefault("date", _utc_now())
        prov.setdefault("emoca_edge_version", __version__)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": family,
            "variant": variant,
            "input": dict(INPUT_SPEC),
            "crop": dict(CROP_SPECS[crop_convention]),
            "dims": {k: int(v) for k, v in dims.items()},
            "outputs": (json.loads(json.dumps(dict(output_names))) if isinstance(output_names, Mapping)
                        else output_specs(output_names, dims)),
            "graphs": graph_files,
            "face_model": FACE_MODEL_NAME,
            "face_model_arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
            "files": files,
            "provenance": prov,
        }
        if extra:
            manifest.update(extra)
        validate_manifest(manifest, f"{out} (being written)")
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n",
                                         encoding="utf-8")
        Bundle.load(tmp)  # full verification with the runtime loader before the bundle appears
        _publish_modes(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def replace_graph(bundle_dir: str | os.PathLike, graph_path: str | os.PathLike, *, output_names,
                  graph: str = RECONSTRUCT_GRAPH, dims_update: Mapping | None = None,
                  provenance_update: Mapping | None = None) -> Path:
    """Replace graph ``graph`` of an existing (verified) bundle with ``graph_path`` (moved), update
    outputs, dims and provenance, rewrite the checksums. The bundle is rebuilt in a temporary copy and
    swapped in, so a failure leaves the old bundle intact."""
    src = Path(bundle_dir)
    bundle = Bundle.load(src)
    manifest = json.loads(json.dumps(bundle.manifest))
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.name}.tmp-", dir=str(src.parent)))
    try:
        for name in manifest["files"]:
            if name != manifest["graphs"].get(graph):
                shutil.copyfile(src / name, tmp / name)
        fname = manifest["graphs"].get(graph, f"{graph}.onnx")
        shutil.move(str(graph_path), tmp / fname)
        manifest["graphs"][graph] = fname
        manifest["files"] = {p.name: file_entry(p) for p in sorted(tmp.iterdir())}
        if dims_update:
            manifest["dims"].update({k: int(v) for k, v in dims_update.items()})
        manifest["outputs"] = output_specs(output_names, manifest["dims"])
        if provenance_update:
            manifest["provenance"].update(provenance_update)
        manifest["provenance"]["modified"] = _utc_now()
        validate_manifest(manifest, f"{src} (being rewritten)")
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n",
                                         encoding="utf-8")
        Bundle.load(tmp)
        _publish_modes(tmp)
        old = src.with_name(f".{src.name}.old-{os.getpid()}")
        os.replace(src, old)
        os.replace(tmp, src)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return src


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
