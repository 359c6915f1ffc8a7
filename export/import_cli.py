"""Official checkpoint -> bundle: build the PyTorch reconstruction module, export ONE verified ONNX
graph, write the bundle (implementation behind ``emoca-edge import``; needs torch).

* :func:`build_deca`, :func:`build_emoca`, :func:`build_smirk` — importer modules + FLAME arrays ->
  a :class:`Built` (the ``training.models.reconstruction`` module, face model, dims, provenance);
* :func:`export_bundle` — export + verify (random batch and the shipped photo crops) + write;
* :func:`import_deca`, :func:`import_emoca`, :func:`import_smirk` — the two steps together;
* :func:`import_emorec` — merge EMOCA's emotion regressor into an existing deca/emoca bundle's
  reconstruct graph (``onnx.compose``), so the bundle stays one session call.
"""
from __future__ import annotations

import datetime as _dt
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from emoca_edge.bundle import Bundle, BundleError
from emoca_edge.export.flame_assets import EYELID_FILES, FLAME_MODEL_FILE, LANDMARK_FILE, load_flame_dir
from emoca_edge.export.importers.common import file_record
from emoca_edge.export.onnx_export import (DEFAULT_EXPORTER, DEFAULT_OPSET, ExportVerificationError,
                                           default_check_batches, export_onnx, export_verified, onnx_outputs,
                                           relative_error)
from emoca_edge.training.flame import FLAME
from emoca_edge.training.models.reconstruction import (DecaReconstruction, EmocaReconstruction, EmotionHead,
                                                       SmirkReconstruction)

from . import bundle_writer

INPUT_NAME = "images"


@dataclass
class Built:
    """A reconstruction module ready for export, with what the bundle manifest needs."""

    module: nn.Module
    family: str
    variant: str | None
    face_model: dict
    dims: dict
    crop_convention: str
    provenance: dict = field(default_factory=dict)

    @property
    def output_names(self) -> list[str]:
        return list(self.module.output_names)


def _flame_provenance(flame_dir: Path, eyelids: bool) -> list[dict]:
    names = [FLAME_MODEL_FILE, LANDMARK_FILE] + (list(EYELID_FILES) if eyelids else [])
    return [dict(file_record(flame_dir / n), name=f"FLAME/{n}") for n in names]


def _face_model(flame_dir: Path, n_shape: int, n_exp: int, eyelids: bool) -> dict:
    arrays = load_flame_dir(flame_dir, n_shape=n_shape, n_exp=n_exp, eyelids=eyelids)
    return {k: np.asarray(v) for k, v in arrays.items()}


def build_deca(tar_path, flame_dir, stage: str = "detail") -> Built:
    """DECA ``deca_model.tar`` + FLAME folder -> :class:`Built` (``stage`` coarse drops the detail nets)."""
    from emoca_edge.export.importers import import_deca

    if stage not in ("coarse", "detail"):
        raise ValueError(f"stage must be 'coarse' or 'detail', got {stage!r}")
    mods = import_deca(tar_path)
    flame_dir = Path(flame_dir)
    fm = _face_model(flame_dir, 100, 50, eyelids=False)
    detail = stage == "detail"
    module = DecaReconstruction(mods.E_flame, FLAME(fm), mods.E_detail if detail else None,
                                mods.D_detail if detail else None).eval()
    prov = dict(mods.provenance)
    prov["sources"] = prov.pop("files", []) + _flame_provenance(flame_dir, False)
    prov["stage"] = stage
    dims = {"shape": 100, "expression": 50, "albedo": 50, "light": 27, "vertices": 5023, "landmarks": 68}
    if detail:
        dims.update(detail=128, detail_uv=256)
    return Built(module, "deca", stage, fm, dims, "deca68", prov)


def build_emoca(model_dir, flame_dir, stage: str = "detail") -> Built:
    """EMOCA release folder + FLAME folder -> :class:`Built`; ``cfg.yaml`` switches
    (``exp_deca_jaw_pose``, ``exp_deca_global_pose``, ``detail_conditioning``, sizes) are honoured."""
    from emoca_edge.export.importers import import_emoca

    mods = import_emoca(model_dir, stage=stage)
    c = mods.config
    flame_dir = Path(flame_dir)
    fm = _face_model(flame_dir, c["n_shape"], c["n_exp"], eyelids=False)
    flame = FLAME(fm)
    kwargs = dict(n_shape=c["n_shape"], n_tex=c["n_tex"], n_exp=c["n_exp"], n_detail=c["n_detail"],
                  detail_conditioning=c["detail_conditioning"])
    if mods.E_expression is not None:
        module = EmocaReconstruction(mods.E_flame, mods.E_expression, flame, mods.E_detail, mods.D_detail,
                                     expression_layout=c["expression_layout"], **kwargs)
        family = "emoca"
    else:  # a DECA-class model released in the EMOCA folder layout
        module = DecaReconstruction(mods.E_flame, flame, mods.E_detail, mods.D_detail, **kwargs)
        family = "deca"
    module.eval()
    prov = dict(mods.provenance)
    prov["sources"] = prov.pop("files", []) + _flame_provenance(flame_dir, False)
    prov["source_dir"] = Path(model_dir).name
    prov["cfg_switches"] = {k: c[k] for k in ("deca_class", "expression_backbone", "exp_deca_jaw_pose",
                                              "exp_deca_global_pose", "detail_conditioning", "use_texture",
                                              "n_shape", "n_tex", "n_exp", "n_detail", "n_detail_emo") if k in c}
    prov["expression_layout"] = [list(x) for x in c.get("expression_layout", [])]
    dims = {"shape": c["n_shape"], "expression": c["n_exp"], "albedo": c["n_tex"], "light": 27,
            "vertices": 5023, "landmarks": 68}
    if stage == "detail":
        dims.update(detail=c["n_detail"], detail_uv=256)
    if c["n_exp"] != 50:
        raise ValueError(f"{model_dir}: n_exp = {c['n_exp']}; bundles carry 50 expression coefficients")
    return Built(module, family, stage, fm, dims, "deca68", prov)


def build_smirk(pt_path, flame_dir) -> Built:
    """SMIRK ``SMIRK_em1.pt`` + FLAME folder (with eyelids) -> :class:`Built`."""
    from emoca_edge.export.importers import import_smirk

    mods = import_smirk(pt_path)
    flame_dir = Path(flame_dir)
    fm = _face_model(flame_dir, 300, 50, eyelids=True)
    module = SmirkReconstruction(mods.encoder, FLAME(fm)).eval()
    prov = dict(mods.provenance)
    prov["sources"] = prov.pop("files", []) + _flame_provenance(flame_dir, True)
    dims = {"shape": 300, "expression": 50, "eyelids": 2, "vertices": 5023, "landmarks": 68}
    return Built(module, "smirk", None, fm, dims, "smirk478", prov)


# Exporters tried in order when none is asked for (docs/importing.md, "Exporter choice"):
# SMIRK's graph from the torch.export-based exporter runs ~25-35% faster in ONNX Runtime (its
# TF-"same" padding and FLAME fold to constants); for the ResNet-50 families it gives no speed
# gain and loses the dynamic batch (the ResNet input check specialises it), so TorchScript.
EXPORTER_PREFERENCE = {"smirk": ("dynamo", "torchscript"), "deca": ("torchscript",), "emoca": ("torchscript",)}


def export_bundle(built: Built, out, *, opset: int = DEFAULT_OPSET, exporter: str | None = None,
                  tolerance: float = 1e-4, overwrite: bool = False,
                  check_batches: Sequence[Sequence[np.ndarray]] | None = None,
                  check_labels: Sequence[str] | None = None) -> Path:
    """Export ``built.module`` as the bundle's ``reconstruct.onnx`` (verified on ``check_batches``,
    default: a random batch of 3 and the shipped photo crops) and write the bundle to ``out``.

    ``exporter``: ``torchscript`` / ``dynamo``, or None for the family's preference list
    (:data:`EXPORTER_PREFERENCE`): the next exporter is tried when one fails to export or to verify,
    and the manifest records which one was used and why others were not.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"bundle output {out} already exists (pass --force to replace it)")
    candidates = (exporter,) if exporter else EXPORTER_PREFERENCE.get(built.family, (DEFAULT_EXPORTER,))
    if check_batches is None:
        check_batches, check_labels = default_check_batches()
    example = [torch.from_numpy(np.random.default_rng(1).random((2, 3, 224, 224), dtype=np.float32))]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=str(out.parent)) as tmp:
        graph = Path(tmp) / "reconstruct.onnx"
        failures: dict[str, str] = {}
        report = None
        for i, name in enumerate(candidates):
            try:
                report = export_verified(built.module, graph, [INPUT_NAME], built.output_names, example,
                                         check_batches, check_labels=check_labels, opset=opset, exporter=name,
                                         tolerance=tolerance)
                used = name
                break
            except Exception as exc:  # export errors come in many torch / onnx types
                if i == len(candidates) - 1:
                    raise
                failures[name] = f"{type(exc).__name__}: {str(exc)[:500]}"
        prov = dict(built.provenance)
        prov.update(_tool_versions())
        prov["export"] = {"exporter": used, "opset": _graph_opset(graph), "dynamic_batch": True,
                          "verification": report.as_dict()}
        if failures:
            prov["export"]["exporters_failed"] = failures
        bundle_writer.write_bundle(out, family=built.family, variant=built.variant, graphs={"reconstruct": graph},
                                   face_model=built.face_model, dims=built.dims, output_names=built.output_names,
                                   crop_convention=built.crop_convention, provenance=prov, overwrite=overwrite)
    return out


def _graph_opset(path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return int(next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))


def _tool_versions() -> dict:
    import onnx

    from emoca_edge import __version__
    return {"torch_version": torch.__version__, "onnx_version": onnx.__version__, "emoca_edge_version": __version__,
            "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}


def import_deca(tar_path, flame_dir, out, *, stage: str = "detail", **kw) -> Path:
    return export_bundle(build_deca(tar_path, flame_dir, stage), out, **kw)


def import_emoca(model_dir, flame_dir, out, *, stage: str = "detail", **kw) -> Path:
    return export_bundle(build_emoca(model_dir, flame_dir, stage), out, **kw)


def import_smirk(pt_path, flame_dir, out, **kw) -> Path:
    return export_bundle(build_smirk(pt_path, flame_dir), out, **kw)


# ------------------------------------------------------------------------------ emotion head
class _EmotionFromCodes(nn.Module):
    """Graph of the emotion head alone: one input per code it uses -> emotion outputs."""

    def __init__(self, head: EmotionHead):
        super().__init__()
        self.head = head

    def forward(self, *codes):
        return self.head(dict(zip(self.head.inputs, codes)))


EMOREC_PREFIX = "emorec/"


def merge_emotion_graph(base_path, head: EmotionHead, out_path, *, exporter: str | None = None) -> list[str]:
    """Export ``head`` and merge it into the reconstruct graph ``base_path`` (its inputs wired to the
    base outputs of the same names); writes ``out_path`` and returns the merged output names
    (base outputs, then valence, arousal, expression_logits as the head has them)."""
    import onnx
    from onnx import compose

    base = onnx.load(str(base_path))
    base_outputs = [o.name for o in base.graph.output]
    missing = [n for n in head.inputs if n not in base_outputs]
    if missing:
        raise BundleError(f"the emotion regressor needs {missing}, which this bundle's graph does not output "
                          f"(it has {base_outputs}); use a detail-stage bundle for use_detail_code")
    taken = [n for n in ("valence", "arousal", "expression_logits") if n in base_outputs]
    if taken:
        raise BundleError(f"the bundle already has emotion outputs {taken}")
    opset = int(next(o.version for o in base.opset_import if o.domain in ("", "ai.onnx")))
    probe = {o.name: o for o in base.graph.output}
    widths = {n: int(probe[n].type.tensor_type.shape.dim[1].dim_value) for n in head.inputs}
    for n in head.inputs:
        if widths[n] != head.mlp.input_dims[n]:
            raise BundleError(f"the emotion regressor expects {n} of width {head.mlp.input_dims[n]}, "
                              f"the bundle outputs {widths[n]}")
    graph_module = _EmotionFromCodes(head).eval()
    head_outputs = [n for n in ("valence", "arousal", "expression_logits")
                    if n in head(dict((k, torch.zeros(2, w)) for k, w in widths.items()))]
    example = [torch.randn(2, widths[n]) * 0.5 for n in head.inputs]
    with tempfile.TemporaryDirectory() as tmp:
        head_path = Path(tmp) / "emorec.onnx"
        export_onnx(graph_module, example, head_path, [f"in_{n}" for n in head.inputs], head_outputs,
                    opset=opset, exporter="torchscript" if exporter is None else exporter)
        head_model = onnx.load(str(head_path))
    head_model = compose.add_prefix(head_model, EMOREC_PREFIX)
    head_model.ir_version = base.ir_version
    del head_model.opset_import[:]
    head_model.opset_import.extend(base.opset_import)
    merged = compose.merge_models(
        base, head_model, io_map=[(n, f"{EMOREC_PREFIX}in_{n}") for n in head.inputs],
        outputs=base_outputs + [f"{EMOREC_PREFIX}{n}" for n in head_outputs],
        producer_name="emoca-edge", doc_string="reconstruct + EMOCA emotion regressor")
    # One opset entry per domain (the merge may list the default domain twice).
    opsets: dict[str, int] = {}
    for o in list(base.opset_import) + list(merged.opset_import):
        dom = "" if o.domain == "ai.onnx" else o.domain
        opsets[dom] = max(opsets.get(dom, 0), int(o.version))
    del merged.opset_import[:]
    merged.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
    # Give the emotion outputs their plain names.
    rename = {f"{EMOREC_PREFIX}{n}": n for n in head_outputs}
    for node in merged.graph.node:
        for i, o in enumerate(node.output):
            if o in rename:
                node.output[i] = rename[o]
    for o in merged.graph.output:
        if o.name in rename:
            o.name = rename[o.name]
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out_path))
    return base_outputs + head_outputs


def verify_merged(base_path, merged_path, head: EmotionHead, check_batches, *, tolerance: float = 1e-4) -> dict:
    """Merged graph vs (base graph in ONNX Runtime -> emotion head in PyTorch): relative error per
    output, raising :class:`ExportVerificationError` beyond ``tolerance``. Base outputs must match
    the unmerged graph (same nodes) to the same tolerance."""
    errors: dict[str, float] = {}
    for inputs in check_batches:
        base = onnx_outputs(base_path, inputs)
        merged = onnx_outputs(merged_path, inputs)
        with torch.no_grad():
            emo = head({k: torch.from_numpy(base[k]) for k in head.inputs})
        ref = dict(base)
        ref.update({k: v.numpy() for k, v in emo.items()})
        for k, v in ref.items():
            errors[k] = max(errors.get(k, 0.0), relative_error(merged[k], v))
    bad = {k: v for k, v in errors.items() if not v <= tolerance}
    if bad:
        raise ExportVerificationError(f"{merged_path}: merged graph disagrees beyond {tolerance:g}: "
                                      + ", ".join(f"{k}: {v:.3g}" for k, v in bad.items()))
    return errors


def import_emorec(emorec_dir, bundle_dir, *, exporter: str | None = None, tolerance: float = 1e-4,
                  check_batches=None, check_labels=None, **_ignored) -> Path:
    """Add EMOCA's emotion regressor (valence, arousal, 8 expression log-probabilities) to a deca/emoca
    bundle by merging it into its reconstruct graph; the bundle is rewritten in place, atomically."""
    from emoca_edge.export.importers import import_emorec as _import

    bundle = Bundle.load(bundle_dir)
    if bundle.family not in ("deca", "emoca"):
        raise BundleError(f"bundle {bundle.path} is family {bundle.family!r}; EMOCA's emotion regressor works on "
                          "DECA/EMOCA codes (shape 100, expression 50), so it can only be added to deca/emoca bundles")
    mods = _import(emorec_dir)
    head = EmotionHead(mods.mlp).eval()
    if check_batches is None:
        check_batches, check_labels = default_check_batches()
    with tempfile.TemporaryDirectory(prefix=".emorec-", dir=str(Path(bundle_dir).resolve().parent)) as tmp:
        merged_path = Path(tmp) / "reconstruct.onnx"
        names = merge_emotion_graph(bundle.graph_path(), head, merged_path, exporter=exporter)
        errors = verify_merged(bundle.graph_path(), merged_path, head, check_batches, tolerance=tolerance)
        prov = dict(mods.provenance)
        prov["sources"] = prov.pop("files", [])
        prov["config"] = {k: v for k, v in mods.config.items()}
        prov["verification"] = {"max_relative_error": errors, "checked_inputs": list(check_labels or []),
                                "tolerance": tolerance,
                                "reference": "base graph (ONNX Runtime) -> emotion MLP (PyTorch)"}
        dims = {"expression_classes": int(mods.mlp.n_expression)}
        bundle_writer.replace_graph(bundle.path, merged_path, output_names=names, dims_update=dims,
                                    provenance_update={"emotion": prov})
    return Path(bundle_dir)


# ------------------------------------------------------------------------------ CLI glue
def run_from_args(args) -> int:
    """``emoca-edge import`` (arguments parsed by ``emoca_edge.commands.import_checkpoint``)."""
    kw = dict(exporter=args.exporter, tolerance=args.tolerance)
    try:
        if args.kind == "emorec":
            import_emorec(args.source, args.into, **kw)
            out = args.into
        else:
            kw.update(opset=args.opset, overwrite=args.force)
            if args.kind == "deca":
                import_deca(args.source, args.flame, args.out, stage=args.stage, **kw)
            elif args.kind == "emoca":
                import_emoca(args.source, args.flame, args.out, stage=args.stage, **kw)
            elif args.kind == "smirk":
                import_smirk(args.source, args.flame, args.out, **kw)
            else:  # argparse restricts the choices
                raise ValueError(f"unknown kind {args.kind!r}")
            out = args.out
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, BundleError, ExportVerificationError,
            OSError) as exc:
        print(f"emoca-edge import {args.kind}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # importer errors (CheckpointError, FlameAssetError, unpickling) carry the file name
        print(f"emoca-edge import {args.kind}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    b = Bundle.load(out, verify=False)
    print(f"wrote bundle {out} ({b.family}{' ' + b.manifest['variant'] if b.manifest.get('variant') else ''}; "
          f"outputs: {', '.join(b.output_names)})")
    return 0
