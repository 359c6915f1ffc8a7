"""The ``emoca-edge`` dispatcher: every sub-command is registered, and output piped into a
reader that stops early is not an error."""
from __future__ import annotations

import os
import subprocess
import sys

import fixtures_bundles as fb

from emoca_edge.cli import COMMANDS, build_parser


def test_all_commands_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


def test_closed_pipe_is_not_an_error():
    toy = fb.toy_bundle()
    # the reader is gone before `info` writes (as with `emoca-edge info B | head -0`)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "emoca_edge", "info", str(toy)],
                              stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
