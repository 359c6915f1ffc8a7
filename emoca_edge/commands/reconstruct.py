"""``emoca-edge reconstruct BUNDLE INPUT... --aligned -o OUT.npz``: reconstruct aligned crops.

Each INPUT is an aligned 224x224 RGB image file or an ``.npy`` of shape (N, 224, 224, 3) uint8.
OUT.npz holds one float32 array per bundle output (rows in input order), plus

* ``input_names`` (M,) str: ``path`` for an image, ``path[i]`` for item i of an ``.npy``;
* ``input_file_index`` (M,) int64: position of the row's INPUT argument; ``input_item`` (M,) int64;
* ``skipped_names`` (K,) str and ``skipped_reasons`` (K,) str: inputs that could not be read.

A JSON sidecar ``OUT.json`` repeats the inputs, the skipped list and the output shapes. Exit code:
0 all reconstructed, 2 some inputs skipped (OUT written), 1 nothing reconstructed (no OUT).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HELP = "reconstruct aligned 224x224 face crops (image files or .npy stacks) with a bundle into an .npz"


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle directory (from `emoca-edge import ...`)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="aligned 224x224 RGB image file, or .npy of shape (N,224,224,3) uint8")
    p.add_argument("--aligned", action="store_true",
                   help="inputs are already aligned crops in the bundle's crop convention (required)")
    p.add_argument("-o", "--out", required=True, help="output .npz path")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "tensorrt"), help="ONNX Runtime device")
    p.add_argument("--batch-size", type=int, default=16, help="crops per session call (default 16)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = onnxruntime default)")


def _err(msg: str) -> None:
    print(f"emoca-edge reconstruct: {msg}", file=sys.stderr)


def run(args) -> int:
    import numpy as np

    from emoca_edge.bundle import BundleError
    from emoca_edge.providers import ProviderUnavailableError
    from emoca_edge.reconstruct import InputError, Reconstructor, load_aligned_image, load_aligned_npy

    if not args.aligned:
        _err("only aligned crops are supported here: pass --aligned for 224x224 crops in the bundle's crop "
             "convention, or use `emoca-edge run` to detect, crop and reconstruct faces in photos/videos")
        return 1
    out = Path(args.out)
    if out.suffix != ".npz":
        _err(f"output {out} must end in .npz")
        return 1
    try:
        rec = Reconstructor(args.bundle, device=args.device, threads=args.threads, batch_size=args.batch_size)
    except (BundleError, ProviderUnavailableError, FileNotFoundError, ValueError) as exc:
        _err(str(exc))
        return 1
    size = rec.size

    names: list[str] = []
    file_index: list[int] = []
    item_index: list[int] = []
    chunks = []
    skipped: list[tuple[str, str]] = []
    for k, inp in enumerate(args.inputs):
        try:
            if inp.lower().endswith(".npy"):
                arr = load_aligned_npy(inp, size)
                chunk_names = [f"{inp}[{i}]" for i in range(arr.shape[0])]
            else:
                arr = load_aligned_image(inp, size)[None]
                chunk_names = [inp]
        except InputError as exc:
            _err(f"skipped: {exc}")
            skipped.append((inp, str(exc)))
            continue
        if arr.shape[0] == 0:
            _err(f"skipping {inp}: holds no crops (N = 0)")
            skipped.append((inp, f"{inp}: holds no crops (N = 0)"))
            continue
        chunks.append(arr)
        names += chunk_names
        file_index += [k] * arr.shape[0]
        item_index += list(range(arr.shape[0]))
    if not chunks:
        _err(f"nothing to reconstruct: all {len(args.inputs)} input(s) were skipped; {out} not written")
        return 1
    crops = np.concatenate(chunks, axis=0)
    result = rec(crops)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in result.items()}
    arrays["input_names"] = np.array(names, dtype=str)
    arrays["input_file_index"] = np.array(file_index, dtype=np.int64)
    arrays["input_item"] = np.array(item_index, dtype=np.int64)
    arrays["skipped_names"] = np.array([s[0] for s in skipped], dtype=str).reshape(-1)
    arrays["skipped_reasons"] = np.array([s[1] for s in skipped], dtype=str).reshape(-1)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    sidecar = out.with_suffix(".json")
    sidecar.write_text(json.dumps({
        "bundle": str(rec.bundle.path), "family": rec.bundle.family, "device": args.device,
        "inputs": list(args.inputs), "reconstructed": names,
        "skipped": [{"input": s[0], "reason": s[1]} for s in skipped],
        "outputs": {k: list(v.shape) for k, v in result.items()},
    }, indent=2) + "\n")
    print(f"reconstructed {len(names)} crop(s) from {len(args.inputs) - len(skipped)} input(s) -> {out}"
          + (f"; skipped {len(skipped)}: {', '.join(s[0] for s in skipped)}" if skipped else ""))
    return 2 if skipped else 0
