"""Our training checkpoints -> deployable artefacts, through the importers' own export path.

* ``emoca-coarse`` / ``emoca-detail``: the trained networks are assembled into
  ``training.models.reconstruction.EmocaReconstruction`` exactly as ``export.import_cli.build_emoca``
  does for official checkpoints, and written by ``import_cli.export_bundle`` (ONE ONNX graph,
  verified against PyTorch on a random batch and the shipped photo crops, then
  ``bundle_writer.write_bundle``).
* ``emorec``: the MLP is merged into a copy of the bundle it was trained on
  (``import_cli.merge_emotion_graph`` + ``verify_merged`` + ``bundle_writer.replace_graph``, the path
  of ``emoca-edge import emorec``).
* ``emonet``: the image emotion network is not a reconstruction model, so it becomes a verified
  standalone ONNX graph ``emotion_net.onnx`` (images -> expression_logits, valence, arousal) with
  ``emotion_net.json`` (input convention, classes, provenance) in the output folder.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from emoca_edge.training.trainer import load_checkpoint


def export_run(run, out, *, overwrite: bool = False, tolerance: float = 1e-4, exporter: str | None = None,
               check_batches=None, check_labels=None) -> Path:
    """Export the run folder (or checkpoint file) ``run`` to ``out``; returns ``out``."""
    ck = load_checkpoint(run)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass --force to replace it)")
    target = ck["target"]
    if target in ("emoca-coarse", "emoca-detail"):
        from emoca_edge.export import import_cli

        built = build_emoca_from_checkpoint(ck)
        return import_cli.export_bundle(built, out, overwrite=overwrite, tolerance=tolerance, exporter=exporter,
                                        check_batches=check_batches, check_labels=check_labels)
    if target == "emorec":
        return _export_emorec(ck, out, overwrite, tolerance, exporter, check_batches, check_labels)
    if target == "emonet":
        return _export_emonet(ck, out, overwrite, tolerance, exporter)
    raise ValueError(f"{ck['path']}: unknown target {target!r}")


def _provenance(ck: dict) -> dict:
    p = Path(ck["path"])
    return {"importer": f"emoca-edge train {ck['target']}", "checkpoint": str(p), "step": int(ck["step"]),
            "epoch": int(ck["epoch"]), "config": ck["config"],
            "sources": [{"name": p.name, "sha256": _sha256(p), "bytes": p.stat().st_size}]}


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_emoca_from_checkpoint(ck: dict):
    """An ``import_cli.Built`` (family emoca, stage coarse/detail) from an EMOCA training checkpoint."""
    from emoca_edge.export import import_cli
    from emoca_edge.export.flame_assets import load_flame_dir
    from emoca_edge.training.flame import FLAME
    from emoca_edge.training.models.reconstruction import EmocaReconstruction

    from .stages.emoca import build_networks

    extra = ck["extra"]
    nets = build_networks(extra)
    for k, m in nets.items():
        m.load_state_dict(ck["modules"][k])
    flame_dir = Path(extra["flame_dir"])
    fm = {k: np.asarray(v) for k, v in load_flame_dir(flame_dir, n_shape=100, n_exp=50).items()}
    detail = ck["target"] == "emoca-detail"
    module = EmocaReconstruction(nets["E_flame"], nets["E_expression"], FLAME(fm),
                                 nets.get("E_detail") if detail else None, nets.get("D_detail") if detail else None,
                                 expression_layout=[tuple(x) for x in extra["expression_layout"]]).eval()
    dims = {"shape": 100, "expression": 50, "albedo": 50, "light": 27, "vertices": 5023, "landmarks": 68}
    if detail:
        dims.update(detail=128, detail_uv=256)
    prov = _provenance(ck)
    prov["flame_dir"] = str(flame_dir)
    prov["expression_layout"] = [list(x) for x in extra["expression_layout"]]
    return import_cli.Built(module, "emoca", "detail" if detail else "coarse", fm, dims, "deca68", prov)


def _export_emorec(ck, out, overwrite, tolerance, exporter, check_batches, check_labels) -> Path:
    from emoca_edge.bundle import Bundle
    from emoca_edge.export import bundle_writer, import_cli
    from emoca_edge.export.onnx_export import default_check_batches
    from emoca_edge.training.models.emorec import EmoRecMLP
    from emoca_edge.training.models.reconstruction import EmotionHead

    extra = ck["extra"]
    mlp = EmoRecMLP(**extra["mlp_kwargs"])
    mlp.load_state_dict(ck["modules"]["mlp"])
    head = EmotionHead(mlp).eval()
    base = Bundle.load(extra["bundle"])
    if check_batches is None:
        check_batches, check_labels = default_check_batches()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".emorec-", dir=str(out.parent)) as tmp:
        merged = Path(tmp) / "reconstruct.onnx"
        names = import_cli.merge_emotion_graph(base.graph_path(), head, merged, exporter=exporter)
        errors = import_cli.verify_merged(base.graph_path(), merged, head, check_batches, tolerance=tolerance)
        staging = Path(tmp) / "bundle"
        shutil.copytree(base.path, staging)
        prov = _provenance(ck)
        prov["base_bundle"] = str(base.path)
        prov["verification"] = {"max_relative_error": errors, "checked_inputs": list(check_labels or []),
                                "tolerance": tolerance, "reference": "base graph (ONNX Runtime) -> emotion MLP (PyTorch)"}
        bundle_writer.replace_graph(staging, merged, output_names=names,
                                    dims_update={"expression_classes": int(mlp.n_expression)},
                                    provenance_update={"emotion": prov})
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staging), str(out))
    return out


def _export_emonet(ck, out, overwrite, tolerance, exporter) -> Path:
    from emoca_edge.export.onnx_export import DEFAULT_EXPORTER, default_check_batches, export_verified

    from .stages.emonet import EmotionNet

    net = EmotionNet(int(ck["extra"].get("n_expression", 8)))
    net.load_state_dict(ck["modules"]["emonet"])
    net.eval()
    batches, labels = default_check_batches()
    out.mkdir(parents=True, exist_ok=True)
    graph = out / "emotion_net.onnx"
    example = [torch.from_numpy(np.random.default_rng(1).random((2, 3, 224, 224), dtype=np.float32))]
    report = export_verified(net, graph, ["images"], EmotionNet.output_names, example, batches, check_labels=labels,
                             exporter=exporter or DEFAULT_EXPORTER, tolerance=tolerance)
    meta = {"format": "emoca-edge-emotion-net", "graph": graph.name,
            "input": {"name": "images", "size": 224, "layout": "NCHW", "range": [0.0, 1.0], "colour": "RGB",
                      "crop": "deca68"},
            "outputs": {"expression_logits": "(N, 8) logits, AffectNet order: Neutral, Happy, Sad, Surprise, Fear, "
                                             "Disgust, Anger, Contempt",
                        "valence": "(N,) in about [-1, 1]", "arousal": "(N,) in about [-1, 1]"},
            "sha256": _sha256(graph), "provenance": _provenance(ck), "verification": report.as_dict()}
    (out / "emotion_net.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    return out
