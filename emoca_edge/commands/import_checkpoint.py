"""``emoca-edge import {deca,emoca,smirk,emorec} ...``: official checkpoint -> bundle.

Needs the PyTorch world (``pip install emoca-edge[export]``); torch is imported only when the
command runs. Each graph is exported to ONNX and verified against the PyTorch module before the
bundle is written (see docs/importing.md).
"""
from __future__ import annotations

import sys

HELP = "import an official DECA / EMOCA / SMIRK checkpoint (or EMOCA's emotion regressor) into a bundle"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="kind", metavar="KIND")
    sub.required = True

    def common(sp, needs_flame=True):
        if needs_flame:
            sp.add_argument("--flame", required=True, metavar="FLAME_DIR",
                            help="folder with generic_model.pkl and landmark_embedding.npy "
                                 "(+ l_eyelid.npy, r_eyelid.npy for SMIRK)")
        sp.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
        sp.add_argument("--exporter", choices=("torchscript", "dynamo"), default=None,
                        help="torch.onnx exporter (default: per family, dynamo then torchscript for SMIRK, "
                             "torchscript for DECA/EMOCA; see docs/importing.md)")
        sp.add_argument("--tolerance", type=float, default=1e-4,
                        help="max relative error ONNX vs PyTorch per output (default 1e-4)")
        sp.add_argument("--force", action="store_true", help="replace an existing output bundle")

    d = sub.add_parser("deca", help="DECA deca_model.tar")
    d.add_argument("source", metavar="DECA_MODEL_TAR")
    common(d)
    d.add_argument("-o", "--out", required=True, metavar="BUNDLE")
    d.add_argument("--stage", choices=("coarse", "detail"), default="detail",
                   help="coarse: encoder + FLAME only; detail (default): also E_detail and D_detail")

    e = sub.add_parser("emoca", help="EMOCA release folder (cfg.yaml + coarse/detail checkpoints)")
    e.add_argument("source", metavar="EMOCA_MODEL_DIR")
    common(e)
    e.add_argument("-o", "--out", required=True, metavar="BUNDLE")
    e.add_argument("--stage", choices=("coarse", "detail"), default="detail",
                   help="which checkpoint/networks to use (default detail)")

    s = sub.add_parser("smirk", help="SMIRK SMIRK_em1.pt")
    s.add_argument("source", metavar="SMIRK_PT")
    common(s)
    s.add_argument("-o", "--out", required=True, metavar="BUNDLE")

    r = sub.add_parser("emorec", help="EMOCA's emotion regressor folder, added into an existing bundle")
    r.add_argument("source", metavar="EMOREC_DIR")
    common(r, needs_flame=False)
    r.add_argument("--into", required=True, metavar="BUNDLE", help="bundle (deca or emoca) to extend in place")


def run(args) -> int:
    try:
        from emoca_edge.export import import_cli
    except ImportError as exc:
        print(f"emoca-edge import needs the PyTorch world (pip install 'emoca-edge[export]'): {exc}", file=sys.stderr)
        return 1
    return import_cli.run_from_args(args)
