"""``emoca-edge train {emoca-coarse,emoca-detail,emonet,emorec} [--config CFG] --data DIR --out RUN``.

Needs the PyTorch world (``pip install 'emoca-edge[export]'``); torch is imported only when the
command runs. Each target ships a default config (``emoca_edge/training/configs``); ``--config``
files and ``--set KEY=VALUE`` overrides update it. See docs/training.md.
"""
from __future__ import annotations

import sys

HELP = "train or fine-tune EMOCA (coarse/detail), the image emotion network or the 3D emotion regressor"
TARGETS = ("emoca-coarse", "emoca-detail", "emonet", "emorec")


def add_arguments(p) -> None:
    p.add_argument("target", choices=TARGETS, help="what to train")
    p.add_argument("--config", metavar="CFG", default=None, help="YAML file updating the target's default config")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="AffectNet-format folder (training.csv, validation.csv, images/) or an image folder")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (config, metrics, checkpoints)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N optimisation steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=1e-5 (repeatable)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: the config's train.device)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.pt")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    try:
        import yaml

        from emoca_edge.training.trainer import ConfigError, Trainer, load_config
    except ImportError as exc:
        print(f"emoca-edge train needs the PyTorch world (pip install 'emoca-edge[export]'): {exc}", file=sys.stderr)
        return 1
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.target, args.config, args.set)
        if args.print_config:
            print(yaml.safe_dump(cfg, sort_keys=False), end="")
            return 0
        trainer = Trainer(args.target, cfg, args.data, args.out, device=args.device, max_steps=args.max_steps,
                          resume=args.resume, progress=not args.no_progress)
        summary = trainer.fit()
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, RuntimeError, OSError,
            ArithmeticError) as exc:
        print(f"emoca-edge train {args.target}: {exc}", file=sys.stderr)
        return 1
    print(f"trained {args.target}: {summary['steps']} steps; checkpoint {summary['checkpoint']}")
    if summary["validation"]:
        print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in summary["validation"].items()))
    if summary["skipped_images"]:
        print(f"skipped {len(summary['skipped_images'])} unreadable images (see the log)")
    return 0
