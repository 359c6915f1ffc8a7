"""Memory safety and undefined behaviour: csrc/raster/fuzz_raster.cpp drives the rasterizer (CPU and the
CUDA kernels' host emulation), interpolation, normals and the compositor with adversarial random input
under AddressSanitizer and UndefinedBehaviorSanitizer; it also checks that the CPU result equals the
emulated GPU result with triangles visited in reverse order."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASTER = ROOT / "csrc" / "raster"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="sanitizer build tested on Linux")
def test_fuzz_under_sanitizers(tmp_path):
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "fuzz_raster"
    cmd = [cxx, "-O1", "-g", "-std=c++17", "-ffp-contract=off", "-pthread", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-I", str(RASTER), str(RASTER / "fuzz_raster.cpp"),
           str(RASTER / "raster_cpu.cpp"), "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if build.returncode != 0 and "sanitize" in build.stderr and "cannot find" in build.stderr:
        pytest.skip(f"sanitizer runtime not installed: {build.stderr.strip()[:200]}")
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe), "1500", "20261122"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert run.stdout.startswith("ok"), run.stdout
