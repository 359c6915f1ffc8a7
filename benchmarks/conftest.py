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
