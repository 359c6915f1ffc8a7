"""Shared helpers of the checkpoint importers: safe loading, explicit key mapping, provenance.

Loading never executes code from a file. ``load_checkpoint`` first tries
``torch.load(weights_only=True)``; files that hold other objects (EMOCA's PyTorch-Lightning
``.ckpt`` files may carry OmegaConf ``DictConfig`` objects under ``hyper_parameters``) are read with a
restricted unpickler instead: torch's tensor-rebuilding functions and a few inert builtins are
allowed, the classes of a short allow-list of configuration libraries are replaced by inert
placeholders (never imported, never called), and anything else is refused with
:class:`CheckpointError` naming the file and the class.

Key mapping is explicit: ``load_mapped`` copies tensors into a module and fails, naming the keys,
on any unmapped source key that no ignore pattern covers, any missing target key and any shape
mismatch. There is no ``strict=False``.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import pickle
import types
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint file or folder is missing, unreadable, unsafe or does not match the model."""


# --------------------------------------------------------------------------------------- hashing
def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict:
    """Provenance entry of one source file: name (relative to ``root`` if given), sha256, bytes."""
    p = Path(path)
    name = str(p.relative_to(root)) if root is not None else p.name
    return {"name": name, "sha256": sha256_file(p), "bytes": p.stat().st_size}


# ----------------------------------------------------------------------- restricted unpickling
class OpaqueObject:
    """Inert stand-in for an allow-listed configuration object (e.g. an OmegaConf ``DictConfig``).

    It records what the pickle stream gives it (constructor arguments, state, items) and does
    nothing else; importers never read it.
    """

    __slots__ = ("_args", "_state", "_items")
    _opaque_of = "?"

    def __init__(self, *args, **kwargs):
        self._args = args
        self._state = None
        self._items = []

    def __setstate__(self, state):
        self._state = state

    def __setitem__(self, key, value):
        self._items.append((key, value))

    def append(self, value):
        self._items.append(value)

    def extend(self, values):
        self._items.extend(values)

    def __repr__(self):
        return f"<opaque {self._opaque_of}>"


def _opaque_class(module: str, name: str) -> type:
    return type(name, (OpaqueObject,), {"__slots__": (), "__module__": "emoca_edge.opaque." + module,
                                        "_opaque_of": f"{module}.{name}"})


# Callables the restricted unpickler may return, by (module, name): tensor rebuilding and inert types.
_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("collections", "defaultdict"): __import__("collections").defaultdict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "int"): int,
    ("builtins", "float"): float, ("builtins", "str"): str, ("builtins", "bytes"): bytes,
    ("builtins", "bool"): bool, ("builtins", "complex"): complex, ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray, ("builtins", "object"): object,
    ("_codecs", "encode"): __import__("_codecs").encode,
}
try:  # numpy scalars/arrays sometimes appear in Lightning callback or hyper-parameter state
    import numpy as _np

    _core = getattr(_np, "_core", None) or _np.core
    for _m in ("numpy.core.multiarray", "numpy._core.multiarray"):
        _ALLOWED_GLOBALS[(_m, "scalar")] = _core.multiarray.scalar
        _ALLOWED_GLOBALS[(_m, "_reconstruct")] = _core.multiarray._reconstruct
    _ALLOWED_GLOBALS[("numpy", "dtype")] = _np.dtype
    _ALLOWED_GLOBALS[("numpy", "ndarray")] = _np.ndarray
except ImportError:  # pragma: no cover - numpy is a hard dependency of the package
    pass
for _n in ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
           "complex64", "complex128"):
    _ALLOWED_GLOBALS[("torch", _n)] = getattr(torch, _n)

# Modules whose classes become inert placeholders (configuration containers found in Lightning
# checkpoints' hyper_parameters). Exact module names or "prefix." entries.
OPAQUE_MODULES = (
    "omegaconf.", "omegaconf",
    "typing",
    "pytorch_lightning.utilities.parsing", "lightning.pytorch.utilities.parsing",
    "lightning_fabric.utilities.data", "lightning.fabric.utilities.data",
    "pathlib",
)


def _is_opaque(module: str) -> bool:
    return any(module == m or (m.endswith(".") and module.startswith(m)) for m in OPAQUE_MODULES)


def _make_restricted_pickle_module(source: str) -> types.ModuleType:
    """A ``pickle``-like module for ``torch.load(pickle_module=...)`` whose Unpickler only resolves
    allow-listed globals; ``source`` names the file in error messages."""
    cache: dict[tuple[str, str], type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            key = (module, name)
            if key in _ALLOWED_GLOBALS:
                return _ALLOWED_GLOBALS[key]
            if _is_opaque(module):
                if key not in cache:
                    cache[key] = _opaque_class(module, name)
                return cache[key]
            raise CheckpointError(
                f"{source}: refusing to unpickle '{module}.{name}': not in the allow-list of the checkpoint "
                f"loader (the file may be corrupt or malicious)")

    mod = types.ModuleType("emoca_edge_restricted_pickle")
    mod.Unpickler = RestrictedUnpickler
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    mod.UnpicklingError = pickle.UnpicklingError
    return mod


def load_checkpoint(path: str | os.PathLike, allow_objects: bool = False) -> object:
    """Load a torch-saved file onto the CPU without executing code from it.

    ``allow_objects=False``: ``torch.load(weights_only=True)`` only. ``allow_objects=True``: if the
    weights-only loader refuses a class, retry with the restricted unpickler described in the module
    docstring. Raises :class:`CheckpointError` for a missing, truncated or unreadable file or a
    refused class (the message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: checkpoint file is empty")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not allow_objects:
            raise CheckpointError(f"{p}: not loadable as plain tensors (weights_only): {e}") from e
        first_error = e
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"{p}: unreadable or truncated checkpoint ({type(e).__name__}: {e})") from e
    try:
        return torch.load(p, map_location="cpu", weights_only=False, pickle_module=_make_restricted_pickle_module(str(p)))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure becomes a file-naming error
        raise CheckpointError(f"{p}: unreadable checkpoint (weights-only load failed with: {first_error}; "
                              f"restricted load failed with {type(e).__name__}: {e})") from e


# ------------------------------------------------------------------------------- key mapping
def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pat) for pat in patterns)


def extract_prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Sub-dict of the keys starting with ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_mapped(
    source: str,
    state: Mapping[str, object],
    targets: Mapping[str, nn.Module],
    ignore: Iterable[str] = (),
    rename: Callable[[str], str] | None = None,
) -> list[str]:
    """Copy ``state`` into the modules of ``targets`` through an explicit mapping.

    ``targets`` maps a source prefix (e.g. ``"deca.E_flame."``) to a module whose ``state_dict``
    keys are the source keys with that prefix removed (after ``rename`` if given). Source keys
    matching an ``ignore`` glob are skipped and returned. Raises :class:`CheckpointError` (naming
    ``source``) listing every unmapped source key, every missing target key, every shape mismatch
    (key, expected vs found) and non-tensor values.
    """
    ignore = tuple(ignore)
    prefixes = sorted(targets, key=len, reverse=True)
    wanted = {pre: dict(m.state_dict()) for pre, m in targets.items()}
    found: dict[str, dict[str, torch.Tensor]] = {pre: {} for pre in targets}
    unmapped, ignored, problems = [], [], []
    for key, value in state.items():
        pre = next((q for q in prefixes if key.startswith(q)), None)
        if pre is None or (rename(key[len(pre):]) if rename else key[len(pre):]) not in wanted[pre]:
            if _matches(key, ignore):
                ignored.append(key)
            else:
                unmapped.append(key)
            continue
        sub = rename(key[len(pre):]) if rename else key[len(pre):]
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key}: expected a tensor, found {type(value).__name__}")
            continue
        exp = wanted[pre][sub]
        if tuple(value.shape) != tuple(exp.shape):
            problems.append(f"{key}: expected shape {tuple(exp.shape)}, found {tuple(value.shape)}")
            continue
        found[pre][sub] = value
    missing = [pre + k for pre in targets for k in wanted[pre] if k not in found[pre]]
    msgs = []
    if unmapped:
        msgs.append(f"{len(unmapped)} unmapped key(s): " + ", ".join(unmapped[:50])
                    + (" ..." if len(unmapped) > 50 else ""))
    if missing:
        msgs.append(f"{len(missing)} missing key(s): " + ", ".join(missing[:50]) + (" ..." if len(missing) > 50 else ""))
    if problems:
        msgs.append("; ".join(problems[:50]))
    if msgs:
        raise CheckpointError(f"{source}: state dict does not match the model: " + " | ".join(msgs))
    with torch.no_grad():
        for pre, module in targets.items():
            own = module.state_dict()
            for k, v in found[pre].items():
                own[k].copy_(v.to(own[k].dtype))
    return ignored


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise CheckpointError(f"{path}: {what} (directory) not found")
    return path


def get_state_dict(ckpt: object, source: str, key: str | None = None) -> Mapping[str, object]:
    """``ckpt[key]`` (or ``ckpt`` itself) checked to be a str-keyed mapping."""
    sd = ckpt
    if key is not None:
        if not isinstance(ckpt, Mapping) or key not in ckpt:
            have = sorted(map(str, ckpt.keys()))[:20] if isinstance(ckpt, Mapping) else type(ckpt).__name__
            raise CheckpointError(f"{source}: expected a dict with key {key!r}, found {have}")
        sd = ckpt[key]
    if not isinstance(sd, Mapping) or not all(isinstance(k, str) for k in sd):
        raise CheckpointError(f"{source}: {key or 'content'} is not a state dict (str -> tensor mapping)")
    return sd
