"""``emoca-edge export RUN -o BUNDLE``: a training run (or checkpoint) -> bundle, exactly as the
importers write bundles for official checkpoints (verified ONNX graph). Needs the PyTorch world."""
from __future__ import annotations

import sys

HELP = "export a training run (emoca-edge train) to a bundle"


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run folder (uses RUN/checkpoints/last.pt) or a checkpoint file")
    p.add_argument("-o", "--out", required=True, metavar="BUNDLE", help="output bundle folder")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default=None, help="torch.onnx exporter")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max relative error ONNX vs PyTorch per output (default 1e-4)")
    p.add_argument("--force", action="store_true", help="replace an existing output")


def run(args) -> int:
    try:
        from emoca_edge.training.export_run import export_run
    except ImportError as exc:
        print(f"emoca-edge export needs the PyTorch world (pip install 'emoca-edge[export]'): {exc}", file=sys.stderr)
        return 1
    try:
        out = export_run(args.run, args.out, overwrite=args.force, tolerance=args.tolerance, exporter=args.exporter)
    except Exception as exc:  # errors carry the file names
        print(f"emoca-edge export: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
