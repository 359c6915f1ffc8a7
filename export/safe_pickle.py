"""Restricted unpickling: load pickled data files without executing code from them.

A pickle can name any importable callable (``os.system``, ``builtins.eval``...) and have the
unpickler call it. :class:`RestrictedUnpickler` resolves a global only through an explicit
allow-list that maps ``(module, name)`` to a Python object chosen by *us*; anything else raises
:class:`UnsafePickleError` naming the file and the refused ``module.name``, before anything is
called.

Provided allow-lists / helpers:

* :data:`NUMPY_GLOBALS`: numpy arrays, dtypes and scalars, as pickled by Python 2 or 3 and by
  numpy 1.x (``numpy.core``) or 2.x (``numpy._core``).
* :data:`BASIC_GLOBALS`: ``set``, ``frozenset``, ``collections.OrderedDict`` and the Python 2
  spellings (``__builtin__``, ``copy_reg``) a latin1-decoded Python 2 pickle uses.
* :func:`torch_tensor_globals`: PyTorch tensors pickled with plain ``pickle`` (what ``np.save`` of
  a dict holding tensors produces). Their storages are legacy ``torch.save`` byte strings that
  ``torch.storage._load_from_bytes`` would load with ``weights_only=False``; we parse that format
  ourselves (restricted, no torch needed) and rebuild each tensor as a **numpy array**.
* :class:`StateRecorder`: base class for stand-ins of foreign classes (chumpy, scipy.sparse): an
  allow-listed stand-in is created empty and just records the pickled state for inspection.
* :func:`load_pickle`, :func:`loads_pickle`, :func:`load_npy`: load a file / bytes / ``.npy``
  (object arrays included) with a given allow-list.
"""
from __future__ import annotations

import collections
import functools
import io
import os
import pickle
import struct
import types
from typing import Any, Callable, Mapping

import numpy as np

__all__ = [
    "UnsafePickleError",
    "PickleFormatError",
    "RestrictedUnpickler",
    "StateRecorder",
    "NUMPY_GLOBALS",
    "BASIC_GLOBALS",
    "torch_tensor_globals",
    "load_pickle",
    "loads_pickle",
    "load_npy",
]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global (class or function) that is not on the allow-list."""

    def __init__(self, source: str, module: str, name: str):
        self.source, self.module, self.name = source, module, name
        super().__init__(
            f"{source}: refused to unpickle global '{module}.{name}': not on the allow-list "
            f"(loading never executes code from a file)"
        )


class PickleFormatError(ValueError):
    """A pickled file is truncated, corrupt, or does not have the expected structure."""


def _reconstruct_ndarray(subtype, shape, dtype_code):
    """Allow-listed ``numpy.core.multiarray._reconstruct``: plain ndarrays only."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refused array subtype {subtype!r} (only numpy.ndarray)")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code if isinstance(dtype_code, str) else "b")


def _numpy_scalar(dtype, data=None):
    """Allow-listed ``numpy.core.multiarray.scalar``: a numpy scalar from its raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("refused numpy scalar of object dtype")
    if isinstance(data, str):  # Python 2 str read with encoding='latin1'
        data = data.encode("latin1")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _copyreg_reconstructor(cls, base, state):
    """Allow-listed ``copy_reg._reconstructor`` (protocol 0/1 objects): stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, StateRecorder)) or base is not object:
        raise pickle.UnpicklingError(f"refused copy_reg._reconstructor({cls!r}, {base!r})")
    return cls.__new__(cls)


NUMPY_GLOBALS: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    NUMPY_GLOBALS[(_mod, "_reconstruct")] = _reconstruct_ndarray
    NUMPY_GLOBALS[(_mod, "scalar")] = _numpy_scalar
NUMPY_GLOBALS[("numpy", "ndarray")] = np.ndarray
NUMPY_GLOBALS[("numpy", "dtype")] = np.dtype

BASIC_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("copy_reg", "_reconstructor"): _copyreg_reconstructor,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
}


class StateRecorder:
    """Stand-in for an allow-listed foreign class: created empty, records what was pickled.

    ``state`` holds the object passed to BUILD (usually the instance ``__dict__``), ``args`` the
    constructor arguments of NEWOBJ (usually empty). Subclasses only add interpretation helpers.
    """

    pickled_as = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        keys = sorted(self.state) if isinstance(self.state, dict) else type(self.state).__name__
        return f"<stand-in for {self.pickled_as}: {keys}>"


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from ``allowed``.

    Args:
        file: binary file object positioned at the pickle.
        source: name used in error messages (normally the file path).
        allowed: ``{(module, name): object}``; the object is returned for that global.
        persistent_load: optional handler for persistent ids (torch legacy format); without it
            a persistent id is refused.
        encoding: how Python 2 ``str`` objects are decoded (``latin1`` keeps numpy data intact).
    """

    def __init__(self, file, *, source: str, allowed: Mapping[tuple[str, str], Any],
                 persistent_load: Callable[[Any], Any] | None = None, encoding: str = "latin1"):
        super().__init__(file, encoding=encoding, fix_imports=False)
        self._source = source
        self._allowed = allowed
        self._persistent = persistent_load

    def find_class(self, module, name):  # noqa: D102 - pickle API
        try:
            obj = self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(self._source, str(module), str(name)) from None
        # Hand out fresh objects for our own Python functions and stand-in classes, so that a
        # BUILD opcode aimed at them (setattr on the global) cannot alter them for later loads.
        # Built-in types (ndarray, dtype, set, OrderedDict...) are immutable anyway.
        if isinstance(obj, types.FunctionType):
            return functools.partial(obj)
        if isinstance(obj, type) and issubclass(obj, StateRecorder):
            return type(obj.__name__, (obj,), {"__module__": obj.__module__})
        return obj

    def persistent_load(self, pid):  # noqa: D102 - pickle API
        if self._persistent is None:
            raise pickle.UnpicklingError(f"{self._source}: unexpected persistent id {pid!r}")
        return self._persistent(pid)


def loads_pickle(data: bytes, *, source: str, allowed: Mapping[tuple[str, str], Any],
                 encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with the allow-list; errors name ``source``.

    Raises:
        UnsafePickleError: a global outside the allow-list.
        PickleFormatError: truncated or corrupt data.
    """
    return _load_stream(io.BytesIO(data), source=source, allowed=allowed, encoding=encoding)


def load_pickle(path: str | os.PathLike, *, allowed: Mapping[tuple[str, str], Any],
                encoding: str = "latin1") -> Any:
    """Unpickle the file at ``path`` with the allow-list (see :func:`loads_pickle`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, "rb") as f:
        return _load_stream(f, source=path, allowed=allowed, encoding=encoding)


def _load_stream(f, *, source, allowed, encoding, persistent_load=None):
    try:
        return RestrictedUnpickler(f, source=source, allowed=allowed, encoding=encoding,
                                   persistent_load=persistent_load).load()
    except UnsafePickleError:
        raise
    except EOFError as e:
        raise PickleFormatError(f"{source}: truncated pickle (unexpected end of data)") from e
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error, UnicodeDecodeError, MemoryError, OverflowError) as e:
        raise PickleFormatError(f"{source}: corrupt or unsupported pickle: {e}") from e


def load_npy(path: str | os.PathLike, *, allowed: Mapping[tuple[str, str], Any] | None = None,
             encoding: str = "latin1") -> np.ndarray:
    """Read a ``.npy`` file; an object array's pickle goes through the restricted unpickler.

    Plain numeric arrays are read with ``np.load(allow_pickle=False)``. For object arrays
    (``np.save`` of a dict, say) the pickle after the header is unpickled with ``allowed``
    (default: numpy + basic globals).

    Raises:
        FileNotFoundError, PickleFormatError, UnsafePickleError (all naming ``path``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    allowed = {**BASIC_GLOBALS, **NUMPY_GLOBALS} if allowed is None else allowed
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, EOFError, SyntaxError) as e:
            raise PickleFormatError(f"{path}: not a valid .npy file: {e}") from e
        if not dtype.hasobject:
            f.seek(0)
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, EOFError, OSError) as e:
                raise PickleFormatError(f"{path}: truncated or corrupt .npy data: {e}") from e
        arr = _load_stream(f, source=path, allowed=allowed, encoding=encoding)
    if not isinstance(arr, np.ndarray):
        raise PickleFormatError(f"{path}: object .npy does not hold an array but {type(arr)}")
    return arr


# ---------------------------------------------------------------------------------------------
# PyTorch tensors pickled with plain pickle -> numpy arrays, without torch.load.

_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001


class _StorageType:
    """Allow-listed stand-in for ``torch.<X>Storage`` classes: carries the numpy dtype."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_TORCH_STORAGE_DTYPES[name])


def _parse_legacy_storage(data: bytes, source: str) -> np.ndarray:
    """Parse the legacy (non-zip) ``torch.save`` bytes of ONE storage into a 1-D numpy array.

    Layout: pickles of magic number, protocol version, sys-info dict, the storage (as a
    persistent id ``('storage', <type>, key, location, numel)``) and the list of storage keys,
    then per key an int64 element count followed by the raw little-endian elements.
    """
    if isinstance(data, str):
        data = data.encode("latin1")
    f = io.BytesIO(data)
    plain = dict(BASIC_GLOBALS)
    magic = _load_stream(f, source=source, allowed=plain, encoding="latin1")
    version = _load_stream(f, source=source, allowed=plain, encoding="latin1")
    if magic != _TORCH_LEGACY_MAGIC or version != _TORCH_LEGACY_PROTOCOL:
        raise PickleFormatError(f"{source}: embedded tensor storage is not in the legacy torch "
                                f"format (magic {magic!r}, protocol {version!r})")
    sys_info = _load_stream(f, source=source, allowed=plain, encoding="latin1")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise PickleFormatError(f"{source}: big-endian tensor storage is not supported")
    storages: dict[str, tuple[np.dtype, int]] = {}

    def persistent(pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise PickleFormatError(f"{source}: unexpected persistent id in tensor storage")
        storages[str(pid[2])] = (pid[1].dtype, int(pid[4]))
        return str(pid[2])

    storage_globals = {("torch", n): _StorageType(n) for n in _TORCH_STORAGE_DTYPES}
    key = _load_stream(f, source=source, allowed={**plain, **storage_globals},
                       encoding="latin1", persistent_load=persistent)
    keys = _load_stream(f, source=source, allowed=plain, encoding="latin1")
    if key not in storages or not isinstance(keys, list) or keys != [key]:
        raise PickleFormatError(f"{source}: embedded tensor storage has unexpected structure")
    dtype, numel = storages[key]
    head = f.read(8)
    if len(head) != 8:
        raise PickleFormatError(f"{source}: truncated tensor storage")
    (count,) = struct.unpack("<q", head)
    if count != numel or count < 0:
        raise PickleFormatError(f"{source}: tensor storage size mismatch ({count} vs {numel})")
    raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise PickleFormatError(f"{source}: truncated tensor storage data")
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)


def _rebuild_tensor_as_numpy(source):
    def rebuild(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                metadata=None):
        if not isinstance(storage, np.ndarray) or storage.ndim != 1:
            raise PickleFormatError(f"{source}: tensor rebuilt from an unexpected storage")
        size = tuple(int(s) for s in size)
        stride = tuple(int(s) for s in stride)
        offset = int(storage_offset)
        if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise PickleFormatError(f"{source}: invalid tensor size/stride {size}/{stride}")
        if 0 in size:
            return np.zeros(size, dtype=storage.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or last >= storage.shape[0]:  # bounds check before as_strided
            raise PickleFormatError(f"{source}: tensor view exceeds its storage")
        base = storage[offset:]
        view = np.lib.stride_tricks.as_strided(
            base, shape=size, strides=[s * storage.itemsize for s in stride], writeable=False)
        return np.array(view)

    return rebuild


def torch_tensor_globals(source: str) -> dict[tuple[str, str], Any]:
    """Allow-list entries that rebuild plainly-pickled torch tensors as numpy arrays.

    Covers ``torch._utils._rebuild_tensor_v2`` (+ ``_rebuild_tensor``) and
    ``torch.storage._load_from_bytes``; the latter's bytes are parsed by our own restricted
    reader of the legacy format, never by ``torch.load``.
    """
    rebuild = _rebuild_tensor_as_numpy(source)
    return {
        ("torch._utils", "_rebuild_tensor_v2"): rebuild,
        ("torch._utils", "_rebuild_tensor"): rebuild,
        ("torch.storage", "_load_from_bytes"): lambda b: _parse_legacy_storage(b, source),
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
