"""Build script: package layout and the native rasterizer extension (csrc/).

Extensions
- ``emoca_edge._raster``: the CPU rasterizer (C++17, pybind11); always built.
- ``emoca_edge._raster_cuda``: the CUDA rasterizer; built only when ``nvcc`` is found (``$CUDA_HOME/bin``,
  ``$CUDA_PATH/bin`` or ``PATH``). The CUDA runtime is linked statically, so the module imports on machines
  without a GPU or driver. Environment switches:
    EMOCA_EDGE_NO_CUDA=1       skip the CUDA module;
    EMOCA_EDGE_REQUIRE_CUDA=1  fail the build if the CUDA module cannot be built (CI where nvcc exists);
    EMOCA_EDGE_CUDA_ARCHS      semicolon list of SM versions (default "75;80;86;87;89;90", plus PTX of the last).
"""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, find_namespace_packages, setup
from setuptools.command.build_ext import build_ext


def _packages():
    """emoca_edge from emoca_edge/, emoca_edge.training from training/, emoca_edge.export from export/.

    Data folders without ``__init__.py`` (assets/<group>/, schema/, training/configs/) are listed as
    namespace packages so their files ship as package data."""
    pkgs = ["emoca_edge"] + ["emoca_edge." + p for p in find_namespace_packages("emoca_edge", exclude=["*__pycache__*"])]
    for ns, root in (("emoca_edge.training", "training"), ("emoca_edge.export", "export")):
        pkgs += [ns] + [f"{ns}.{p}" for p in find_namespace_packages(root, exclude=["*__pycache__*"])]
    return pkgs


def _package_dir():
    return {"emoca_edge": "emoca_edge", "emoca_edge.training": "training", "emoca_edge.export": "export"}


RASTER = os.path.join("csrc", "raster")
HEADERS = [os.path.join(RASTER, h)
           for h in ("raster_common.h", "raster_kernels.h", "raster_cpu.h", "raster_cuda.h", "validate.h")]


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _cxx_args():
    if sys.platform == "win32":
        return ["/O2", "/std:c++17", "/fp:precise"]
    # -ffp-contract=off: no fused multiply-add, so depth keys are bit-identical to the CUDA path and
    # to the NumPy reference on every architecture (aarch64 GCC contracts by default).
    # -fno-wrapv undoes the -fwrapv of Python's own CFLAGS, which costs the rasterizer's inner loops
    # about 8% (no code here relies on signed overflow wrapping).
    return ["-O3", "-g0", "-std=c++17", "-ffp-contract=off", "-fno-wrapv", "-fvisibility=hidden", "-pthread"]


def _find_nvcc():
    for env in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(env)
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    return shutil.which("nvcc")


def _cuda_lib_dirs(nvcc):
    """Library directories nvcc itself would link with (parsed from a dry run; works for wrapper scripts)."""
    try:
        out = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        return []
    dirs = []
    for line in text.splitlines():
        if "LIBRARIES=" in line:
            dirs += [d for d in re.findall(r'-L"?([^"\s]+)"?', line) if not d.rstrip("/").endswith("stubs")]
    return [d for d in dirs if os.path.isfile(os.path.join(d, "libcudart_static.a"))]


def _pybind11_include():
    import pybind11

    return pybind11.get_include()


class BuildExt(build_ext):
    """Compiles ``.cu`` sources of the CUDA module with nvcc, everything else with the C++ compiler."""

    def build_extension(self, ext):
        if getattr(ext, "cuda_sources", None):
            try:
                self._build_cuda(ext)
            except Exception as exc:  # an optional module: report, and fail only when required
                if _flag("EMOCA_EDGE_REQUIRE_CUDA"):
                    raise
                print(f"warning: emoca_edge._raster_cuda not built ({exc}); the CPU rasterizer is unaffected",
                      file=sys.stderr)
            return
        super().build_extension(ext)

    def _build_cuda(self, ext):
        nvcc = ext.nvcc
        lib_dirs = _cuda_lib_dirs(nvcc)
        if not lib_dirs:
            raise RuntimeError(f"libcudart_static.a not found for {nvcc}")
        archs = [a.strip() for a in os.environ.get("EMOCA_EDGE_CUDA_ARCHS", "75;80;86;87;89;90").split(";") if a.strip()]
        gencode = []
        for a in archs:
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
        objects = []
        os.makedirs(self.build_temp, exist_ok=True)
        for src in ext.cuda_sources:
            obj = os.path.join(self.build_temp, os.path.basename(src) + ".o")
            cmd = [nvcc, "-O3", "-std=c++17", "--fmad=false", "-Xcompiler", "-fPIC,-ffp-contract=off",
                   "-I" + RASTER, *gencode, "-c", src, "-o", obj]
            print(" ".join(cmd))
            subprocess.run(cmd, check=True)
            objects.append(obj)
        ext.extra_objects = objects
        ext.library_dirs = lib_dirs
        ext.libraries = ["cudart_static", "dl", "rt", "pthread"]
        super().build_extension(ext)


def _extensions():
    inc = [_pybind11_include(), RASTER]
    exts = [Extension(
        "emoca_edge._raster",
        sources=[os.path.join(RASTER, "bindings.cpp"), os.path.join(RASTER, "raster_cpu.cpp")],
        include_dirs=inc, language="c++", extra_compile_args=_cxx_args(), depends=HEADERS,
    )]
    nvcc = None if _flag("EMOCA_EDGE_NO_CUDA") else _find_nvcc()
    if nvcc:
        ext = Extension(
            "emoca_edge._raster_cuda",
            sources=[os.path.join(RASTER, "bindings_cuda.cpp")],
            include_dirs=inc, language="c++", extra_compile_args=_cxx_args(),
            depends=HEADERS + [os.path.join(RASTER, "raster_cuda.cu")],
        )
        ext.cuda_sources = [os.path.join(RASTER, "raster_cuda.cu")]
        ext.nvcc = nvcc
        exts.append(ext)
    elif _flag("EMOCA_EDGE_REQUIRE_CUDA"):
        raise RuntimeError("EMOCA_EDGE_REQUIRE_CUDA is set but nvcc was not found")
    return exts


setup(packages=_packages(), package_dir=_package_dir(), ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
