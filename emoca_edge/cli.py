"""``emoca-edge`` command-line entry point: dispatches to ``emoca_edge.commands.<name>``."""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> module under emoca_edge.commands (imported lazily; missing ones are skipped)
COMMANDS = {
    "demo": "demo",
    "run": "run",
    "info": "info",
    "reconstruct": "reconstruct",
    "import": "import_checkpoint",
    "train": "train",
    "export": "export_run",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoca-edge",
        description="Emotion-aware monocular 3D face capture (EMOCA, DECA, SMIRK) on ONNX Runtime.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"emoca_edge.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"emoca_edge.commands.{module_name}":
                continue  # command not part of this build
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:
        # output piped into a reader that stopped early (`emoca-edge info B | head`): not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
