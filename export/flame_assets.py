"""Read the official FLAME 2020 files into the face-model arrays of a bundle (no chumpy).

Inputs (one directory):

* ``generic_model.pkl`` - FLAME 2020, a Python-2-era pickle (read with ``encoding='latin1'``)
  of a dict whose arrays are numpy arrays, chumpy ``Ch`` objects (``shapedirs``) and a scipy
  sparse CSC matrix (``J_regressor``). chumpy and scipy are NOT imported: allow-listed stand-ins
  record the pickled state and we take the arrays out of it.
* ``landmark_embedding.npy`` - ``np.save`` of a dict (object array). Its dynamic contour tables
  are plainly-pickled torch tensors; they are rebuilt as numpy arrays by
  :mod:`emoca_edge.export.safe_pickle` without ``torch.load``.
* ``l_eyelid.npy``, ``r_eyelid.npy`` - SMIRK eyelid blendshapes (5023, 3), only with
  ``eyelids=True``.

Output: the dict documented in ``docs/design.md`` ("Face model arrays"), metres, FLAME model space.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .safe_pickle import (
    BASIC_GLOBALS,
    NUMPY_GLOBALS,
    PickleFormatError,
    StateRecorder,
    UnsafePickleError,
    load_npy,
    load_pickle,
    torch_tensor_globals,
)

__all__ = ["FlameAssetError", "load_flame_dir", "FLAME_MODEL_FILE", "LANDMARK_FILE",
           "N_VERTICES", "N_FACES", "N_JOINTS", "N_SHAPE_MAX", "N_EXP_MAX"]

FLAME_MODEL_FILE = "generic_model.pkl"
LANDMARK_FILE = "landmark_embedding.npy"
EYELID_FILES = ("l_eyelid.npy", "r_eyelid.npy")
N_VERTICES = 5023
N_FACES = 9976
N_JOINTS = 5
N_SHAPE_MAX = 300      # identity components 0..299 of shapedirs
N_EXP_MAX = 100        # expression components 300..399 of shapedirs
N_POSE_BASIS = 36      # 4 non-root joints x 9


class FlameAssetError(ValueError):
    """A FLAME asset file is missing a key, has a wrong shape/type or is an unsupported version."""


class ChumpyCh(StateRecorder):
    """Stand-in for ``chumpy.ch.Ch``: a plain chumpy array; its value is the pickled ``x``."""

    pickled_as = "chumpy.ch.Ch"

    def value(self, source: str, key: str) -> np.ndarray:
        st = self.state
        if not isinstance(st, dict) or not isinstance(st.get("x"), np.ndarray):
            raise FlameAssetError(f"{source}: chumpy object '{key}' has no array value 'x'")
        return st["x"]


class SparseCSC(StateRecorder):
    """Stand-in for ``scipy.sparse.csc_matrix``: densified from its pickled data/indices/indptr."""

    pickled_as = "scipy.sparse.csc_matrix"
    compressed_axis = 1  # indptr runs over columns

    def dense(self, source: str, key: str) -> np.ndarray:
        st = self.state
        try:
            data = np.asarray(st["data"])
            indices = np.asarray(st["indices"]).astype(np.int64)
            indptr = np.asarray(st["indptr"]).astype(np.int64)
            n_rows, n_cols = (int(s) for s in st["_shape"])
        except (TypeError, KeyError, ValueError) as e:
            raise FlameAssetError(f"{source}: sparse matrix '{key}' lacks data/indices/indptr/"
                                  f"_shape ({e})") from None
        if (indptr.shape != (n_cols + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
                or indptr[-1] != data.shape[0] or indices.shape != data.shape
                or (indices.size and (indices.min() < 0 or indices.max() >= n_rows))):
            raise FlameAssetError(f"{source}: sparse matrix '{key}' is inconsistent "
                                  f"(shape {(n_rows, n_cols)}, nnz {data.shape[0]})")
        out = np.zeros((n_rows, n_cols), dtype=np.float64)
        cols = np.repeat(np.arange(n_cols), np.diff(indptr))
        np.add.at(out, (indices, cols), data.astype(np.float64))
        return out if self.compressed_axis == 1 else out.T


class SparseCSR(SparseCSC):
    """Stand-in for ``scipy.sparse.csr_matrix`` (the transpose of the CSC layout)."""

    pickled_as = "scipy.sparse.csr_matrix"
    compressed_axis = 0

    def dense(self, source: str, key: str) -> np.ndarray:
        st = dict(self.state) if isinstance(self.state, dict) else {}
        if "_shape" in st:
            st["_shape"] = tuple(st["_shape"])[::-1]
        swapped = SparseCSR.__new__(SparseCSR)
        swapped.state = st
        return SparseCSC.dense(swapped, source, key)


def _flame_globals() -> dict[tuple[str, str], Any]:
    allowed = {**BASIC_GLOBALS, **NUMPY_GLOBALS, ("chumpy.ch", "Ch"): ChumpyCh}
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
        allowed[(mod, "csc_matrix")] = SparseCSC
    for mod in ("scipy.sparse.csr", "scipy.sparse._csr"):
        allowed[(mod, "csr_matrix")] = SparseCSR
    return allowed


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found (expected in the FLAME directory)")


def _as_array(value: Any, source: str, key: str) -> np.ndarray:
    if isinstance(value, ChumpyCh):
        value = value.value(source, key)
    elif isinstance(value, SparseCSC):
        value = value.dense(source, key)
    elif isinstance(value, StateRecorder):
        raise FlameAssetError(f"{source}: '{key}' is an unsupported {value.pickled_as}")
    if not isinstance(value, np.ndarray) or value.dtype.hasobject:
        raise FlameAssetError(f"{source}: '{key}' is not a numeric array but {type(value).__name__}")
    return value


def _check_shape(arr: np.ndarray, shape: tuple, source: str, key: str) -> None:
    if tuple(arr.shape) != tuple(shape):
        raise FlameAssetError(f"{source}: '{key}' has shape {tuple(arr.shape)}, "
                              f"expected {tuple(shape)}")


def _read_model(path: str) -> dict:
    _require_file(path)
    obj = load_pickle(path, allowed=_flame_globals(), encoding="latin1")
    if not isinstance(obj, dict):
        raise FlameAssetError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _read_model_arrays(path: str, n_shape: int, n_exp: int) -> dict[str, np.ndarray]:
    model = _read_model(path)
    needed = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
              "kintree_table", "f")
    missing = [k for k in needed if k not in model]
    if missing:
        raise FlameAssetError(f"{path}: missing key(s) {missing} (a FLAME 2020 generic_model.pkl "
                              f"has {list(needed)})")
    a = {k: _as_array(model[k], path, k) for k in needed}
    v = a["v_template"]
    if v.ndim == 2 and v.shape[1] == 3 and v.shape[0] != N_VERTICES:
        raise FlameAssetError(f"{path}: 'v_template' has {v.shape[0]} vertices, FLAME 2020 has "
                              f"{N_VERTICES}; this is not a FLAME 2020 generic model")
    _check_shape(v, (N_VERTICES, 3), path, "v_template")
    sd = a["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (N_VERTICES, 3):
        raise FlameAssetError(f"{path}: 'shapedirs' has shape {sd.shape}, expected "
                              f"({N_VERTICES}, 3, {N_SHAPE_MAX + N_EXP_MAX})")
    if sd.shape[2] < N_SHAPE_MAX + n_exp:
        raise FlameAssetError(
            f"{path}: 'shapedirs' has {sd.shape[2]} components; FLAME 2020 has "
            f"{N_SHAPE_MAX} identity + {N_EXP_MAX} expression = {N_SHAPE_MAX + N_EXP_MAX} and "
            f"expression component k is column 300+k (need {N_SHAPE_MAX + n_exp})")
    _check_shape(a["posedirs"], (N_VERTICES, 3, N_POSE_BASIS), path, "posedirs")
    _check_shape(a["J_regressor"], (N_JOINTS, N_VERTICES), path, "J_regressor")
    _check_shape(a["weights"], (N_VERTICES, N_JOINTS), path, "weights")
    _check_shape(a["kintree_table"], (2, N_JOINTS), path, "kintree_table")
    _check_shape(a["f"], (N_FACES, 3), path, "f")
    for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.issubdtype(a[k].dtype, np.floating) or not np.all(np.isfinite(a[k])):
            raise FlameAssetError(f"{path}: '{k}' must be finite floating point "
                                  f"(dtype {a[k].dtype})")
    for k in ("kintree_table", "f"):
        if not np.issubdtype(a[k].dtype, np.integer):
            raise FlameAssetError(f"{path}: '{k}' must be integer (dtype {a[k].dtype})")
    faces = a["f"].astype(np.int64)
    if faces.min() < 0 or faces.max() >= N_VERTICES:
        raise FlameAssetError(f"{path}: 'f' has vertex indices outside [0, {N_VERTICES})")
    parents = a["kintree_table"][0].astype(np.int64)
    parents[0] = -1  # stored as 2**32-1 (uint32 -1)
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, N_JOINTS)):
        raise FlameAssetError(f"{path}: 'kintree_table' parents {parents.tolist()} are not a tree "
                              f"with parents before children")
    return {
        "v_template": v.astype(np.float32),
        "shapedirs": np.ascontiguousarray(sd[:, :, :n_shape], dtype=np.float32),
        "exprdirs": np.ascontiguousarray(sd[:, :, N_SHAPE_MAX:N_SHAPE_MAX + n_exp],
                                         dtype=np.float32),
        "posedirs": a["posedirs"].astype(np.float32),
        "J_regressor": a["J_regressor"].astype(np.float32),
        "lbs_weights": a["weights"].astype(np.float32),
        "parents": parents,
        "faces": faces.astype(np.int32),
    }


_LMK_SPEC = {
    # key: (accepted shapes, kind)
    "static_lmk_faces_idx": (((51,), (1, 51)), "i"),
    "static_lmk_bary_coords": (((51, 3), (1, 51, 3)), "f"),
    "dynamic_lmk_faces_idx": (((79, 17),), "i"),
    "dynamic_lmk_bary_coords": (((79, 17, 3),), "f"),
    "full_lmk_faces_idx": (((1, 68), (68,)), "i"),
    "full_lmk_bary_coords": (((1, 68, 3), (68, 3)), "f"),
}


def _read_landmarks(path: str) -> dict[str, np.ndarray]:
    _require_file(path)
    allowed = {**BASIC_GLOBALS, **NUMPY_GLOBALS, **torch_tensor_globals(path)}
    arr = load_npy(path, allowed=allowed, encoding="latin1")
    if arr.dtype.hasobject and arr.shape == ():
        emb = arr[()]
    else:
        raise FlameAssetError(f"{path}: expected np.save of a dict (0-d object array), found "
                              f"array {arr.dtype} {arr.shape}")
    if not isinstance(emb, dict):
        raise FlameAssetError(f"{path}: expected a dict inside, found {type(emb).__name__}")
    missing = [k for k in _LMK_SPEC if k not in emb]
    if missing:
        raise FlameAssetError(f"{path}: missing key(s) {missing}")
    out = {}
    for key, (shapes, kind) in _LMK_SPEC.items():
        val = emb[key]
        if not isinstance(val, np.ndarray) or val.dtype.hasobject:
            raise FlameAssetError(f"{path}: '{key}' is not a numeric array/tensor "
                                  f"({type(val).__name__})")
        if tuple(val.shape) not in shapes:
            raise FlameAssetError(f"{path}: '{key}' has shape {tuple(val.shape)}, expected "
                                  f"{' or '.join(str(s) for s in shapes)}")
        if kind == "i" and not np.issubdtype(val.dtype, np.integer):
            raise FlameAssetError(f"{path}: '{key}' must be integer (dtype {val.dtype})")
        if kind == "f" and not (np.issubdtype(val.dtype, np.floating)
                                and np.all(np.isfinite(val))):
            raise FlameAssetError(f"{path}: '{key}' must be finite floating point")
        if kind == "i":
            if val.min() < 0 or val.max() >= N_FACES:
                raise FlameAssetError(f"{path}: '{key}' has triangle indices outside "
                                      f"[0, {N_FACES})")
            out[key] = val.astype(np.int64)
        else:
            out[key] = val.astype(np.float32)
    out["static_lmk_faces_idx"] = out["static_lmk_faces_idx"].reshape(51)
    out["static_lmk_bary_coords"] = out["static_lmk_bary_coords"].reshape(51, 3)
    out["full_lmk_faces_idx"] = out["full_lmk_faces_idx"].reshape(68)
    out["full_lmk_bary_coords"] = out["full_lmk_bary_coords"].reshape(68, 3)
    return out


def _read_eyelid(path: str) -> np.ndarray:
    _require_file(path)
    try:
        arr = load_npy(path, allowed={})  # numeric .npy: no pickle at all
    except UnsafePickleError as e:
        raise FlameAssetError(f"{path}: expected a plain numeric (5023, 3) array, found an "
                              f"object array") from e
    if arr.dtype.hasobject or not np.issubdtype(arr.dtype, np.floating):
        raise FlameAssetError(f"{path}: expected floating point, found {arr.dtype}")
    if arr.shape == (1, N_VERTICES, 3):
        arr = arr[0]
    _check_shape(arr, (N_VERTICES, 3), path, os.path.basename(path))
    return arr.astype(np.float32)


def load_flame_dir(flame_dir: str | os.PathLike, n_shape: int, n_exp: int = 50,
                   eyelids: bool = False) -> dict[str, np.ndarray]:
    """Load FLAME 2020 + landmark embedding (+ SMIRK eyelids) into the bundle's face-model arrays.

    Args:
        flame_dir: directory with ``generic_model.pkl`` and ``landmark_embedding.npy``
            (and ``l_eyelid.npy``, ``r_eyelid.npy`` when ``eyelids``).
        n_shape: identity components kept (first ``n_shape`` of 300; 100 DECA/EMOCA, 300 SMIRK).
        n_exp: expression components kept (FLAME components 300..300+n_exp; at most 100).
        eyelids: also read the SMIRK eyelid blendshapes.

    Returns:
        dict: ``v_template`` (5023,3) f32, ``shapedirs`` (5023,3,n_shape) f32, ``exprdirs``
        (5023,3,n_exp) f32, ``posedirs`` (5023,3,36) f32, ``J_regressor`` (5,5023) f32 dense,
        ``lbs_weights`` (5023,5) f32, ``parents`` (5,) i64 (root -1), ``faces`` (9976,3) i32,
        ``static_lmk_faces_idx`` (51,) i64, ``static_lmk_bary_coords`` (51,3) f32,
        ``dynamic_lmk_faces_idx`` (79,17) i64, ``dynamic_lmk_bary_coords`` (79,17,3) f32,
        ``full_lmk_faces_idx`` (68,) i64, ``full_lmk_bary_coords`` (68,3) f32, and with
        ``eyelids`` ``l_eyelid``, ``r_eyelid`` (5023,3) f32. Units: metres.

    Raises:
        FileNotFoundError: a file is missing (message names it).
        FlameAssetError: missing key, wrong shape/dtype, or FLAME 2023 instead of 2020.
        UnsafePickleError: a pickle references a class/function outside the allow-list.
        PickleFormatError: truncated or corrupt file.
    """
    flame_dir = os.fspath(flame_dir)
    if not isinstance(n_shape, (int, np.integer)) or not 1 <= n_shape <= N_SHAPE_MAX:
        raise ValueError(f"n_shape must be in [1, {N_SHAPE_MAX}], got {n_shape!r}")
    if not isinstance(n_exp, (int, np.integer)) or not 1 <= n_exp <= N_EXP_MAX:
        raise ValueError(f"n_exp must be in [1, {N_EXP_MAX}], got {n_exp!r}")
    if not os.path.isdir(flame_dir):
        raise FileNotFoundError(f"{flame_dir}: FLAME directory not found")
    model_path = os.path.join(flame_dir, FLAME_MODEL_FILE)
    if not os.path.isfile(model_path):
        found_2023 = sorted(n for n in os.listdir(flame_dir)
                            if n.lower().startswith("flame2023") and n.lower().endswith(".pkl"))
        if found_2023:
            raise FlameAssetError(
                f"{model_path}: file not found, but {found_2023} is present. FLAME 2023 is not "
                f"supported: DECA, EMOCA and SMIRK were trained on FLAME 2020 (its expression "
                f"space and eye region differ, the encoders would need retraining). Download "
                f"FLAME 2020 and use its generic_model.pkl.")
    arrays = _read_model_arrays(model_path, int(n_shape), int(n_exp))
    arrays.update(_read_landmarks(os.path.join(flame_dir, LANDMARK_FILE)))
    if eyelids:
        arrays["l_eyelid"] = _read_eyelid(os.path.join(flame_dir, EYELID_FILES[0]))
        arrays["r_eyelid"] = _read_eyelid(os.path.join(flame_dir, EYELID_FILES[1]))
    return arrays


# Re-exported so callers can catch every loader error from one module.
FlameLoadErrors = (FileNotFoundError, FlameAssetError, UnsafePickleError, PickleFormatError)
