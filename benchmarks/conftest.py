"""Benchmarks: put tests/ on sys.path (synthetic official-format generators and the shared bundle
fixtures) and collect ``bench_*.py`` files unless ``python_files`` already does."""
from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest's own collector takes it
    patterns = parent.config.getini("python_files")
    if any(fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return None  # the standard collector takes it
    return pytest.Module.from_parent(parent, path=file_path)


# extra_info keys that hold comparisons with a peer, printed at the end of the run so that CI
# logs show the ratios without -s
_REPORT_KEYS = ("ratio", "speedup", "/", "litert", "rel_error", "kernel_us", "stage_ms")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", None) or []
    lines = []
    for bench in benchmarks:
        info = {k: v for k, v in (getattr(bench, "extra_info", None) or {}).items()
                if any(key in k for key in _REPORT_KEYS)}
        if info:
            lines.append(f"{bench.name}: {info}")
    if lines:
        terminalreporter.write_sep("-", "benchmark comparisons (extra_info)")
        for line in lines:
            terminalreporter.write_line(line)
