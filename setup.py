"""Build script: package layout and the native rasterizer extension (csrc/)."""
from setuptools import find_packages, setup


def _packages():
    """emoca_edge from emoca_edge/, emoca_edge.training from training/, emoca_edge.export from export/."""
    pkgs = ["emoca_edge"] + ["emoca_edge." + p for p in find_packages("emoca_edge")]
    for ns, root in (("emoca_edge.training", "training"), ("emoca_edge.export", "export")):
        pkgs += [ns] + [f"{ns}.{p}" for p in find_packages(root)]
    return pkgs


def _package_dir():
    return {"emoca_edge": "emoca_edge", "emoca_edge.training": "training", "emoca_edge.export": "export"}


setup(packages=_packages(), package_dir=_package_dir(), ext_modules=[])
