"""The runtime reconstructs from a bundle in a process where importing torch is impossible.

A subprocess installs a meta-path hook that raises ImportError for ``torch`` and ``torch.*``, then
imports the runtime, builds the CLI parser (every command module must import without torch), runs
``Reconstructor`` and ``emoca-edge reconstruct`` / ``info`` on a SMIRK bundle (a real family, imported
from synthetic official-format files). Its outputs must equal this process's ONNX Runtime outputs
and match the PyTorch module within the parity bound (relative error 1e-4).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import torch

import fixtures_bundles as fb
from emoca_edge.reconstruct import Reconstructor

CHILD = textwrap.dedent(r'''
    import importlib.abc, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this process (import of {name!r})")
            return None

    sys.meta_path.insert(0, BlockTorch())
    try:
        import torch  # noqa: F401
        raise SystemExit("the torch block does not work")
    except ImportError:
        pass

    import numpy as np
    from emoca_edge.cli import build_parser, main
    from emoca_edge.reconstruct import Reconstructor

    bundle, crops_path, out_api, out_cli = sys.argv[1:5]
    build_parser()  # imports every command module
    crops = np.load(crops_path)
    res = Reconstructor(bundle)(crops)
    np.savez(out_api, **res)
    rc = main(["reconstruct", bundle, crops_path, "--aligned", "-o", out_cli])
    assert rc == 0, rc
    assert main(["info", bundle]) == 0
    leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    assert not leaked, leaked
    print("NO-TORCH-OK")
''')


def test_reconstruct_without_torch(tmp_path):
    bundle = fb.bundle("smirk")
    crops = np.concatenate([fb.random_images(2, seed=11), fb.photo_crops()])
    np.save(tmp_path / "crops.npy", crops)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(tmp_path / "crops.npy"),
                           str(tmp_path / "api.npz"), str(tmp_path / "cli.npz")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "NO-TORCH-OK" in proc.stdout, proc.stdout + proc.stderr
    here = Reconstructor(bundle)(crops)
    api = np.load(tmp_path / "api.npz")
    cli = np.load(tmp_path / "cli.npz")
    built = fb.built("smirk")
    with torch.no_grad():
        ref = built.module(torch.from_numpy(crops.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)))
    for k in built.output_names:
        # same graph, same inputs, same onnxruntime: equal up to thread-scheduling order
        np.testing.assert_allclose(api[k], here[k], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(cli[k], api[k])
        r = ref[k].numpy().astype(np.float64)
        assert np.linalg.norm(api[k] - r) / np.linalg.norm(r) <= 1e-4, k
