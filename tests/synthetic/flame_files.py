"""Synthetic FLAME 2020 files in the official on-disk formats, with random but sensible values.

* ``generic_model.pkl``: written byte by byte as Python 2 + numpy 1.x + chumpy + scipy wrote it:
  pickle protocol 2, dict keys as Python 2 ``str`` (SHORT_BINSTRING, read back with
  ``encoding='latin1'``), numpy arrays via ``numpy.core.multiarray._reconstruct`` with their raw
  bytes as a Python 2 ``str``, ``shapedirs`` as a ``chumpy.ch.Ch`` (NEWOBJ + BUILD of chumpy's
  ``__getstate__`` dict: ``x`` (float64 array), ``_dirty_vars``, ``_itr``, ``_depends_on_deps``,
  ``_make_dense``, ``_make_sparse``), ``J_regressor`` as a ``scipy.sparse.csc.csc_matrix``
  (NEWOBJ + BUILD of its ``__dict__``: ``_shape``, ``maxprint``, ``format``, ``data``,
  ``indices``, ``indptr``), plus the other keys of an SMPL-family model file (``J``,
  ``bs_style`` 'lbs', ``bs_type`` 'lrotmin', ``weights_prior``), ``kintree_table`` int64 with
  the root parent stored as 4294967295, ``f`` uint32. Neither chumpy nor scipy is needed to
  write it.
* ``landmark_embedding.npy``: ``np.save`` of a dict (object array, pickle protocol 3, numpy 1.x
  module path ``numpy.core.multiarray``); ``dynamic_lmk_*`` are torch tensors pickled plainly
  (``torch._utils._rebuild_tensor_v2`` + ``torch.storage._load_from_bytes``); the others numpy.
* ``l_eyelid.npy``, ``r_eyelid.npy``: plain float32 (5023, 3) arrays (SMIRK).

Topology: a closed UV-sphere (66 rings x 76 columns + 2 poles = 5018 vertices, 10032
triangles) with 56 triangles removed (-> 9976) and 5 loose vertices (-> 5023), shaped like a
head-sized ellipsoid (metres).
"""
from __future__ import annotations

import io
import os
import struct

import numpy as np

N_V, N_F, N_J = 5023, 9976, 5
_RINGS, _COLS = 66, 76

__all__ = ["make_flame_contents", "write_generic_model_pkl", "write_landmark_embedding",
           "write_flame_dir", "write_flame_2023_like", "py2_pickle_dumps", "Ch", "CscMatrix",
           "CsrMatrix",
           "N_V", "N_F", "N_J"]


# ---------------------------------------------------------------------------------------------
# A minimal Python-2-style protocol-2 pickle writer.

class Ch:
    """Marker: pickle ``x`` (float64) as a ``chumpy.ch.Ch`` object."""

    def __init__(self, x):
        self.x = np.asarray(x, dtype=np.float64)


class CscMatrix:
    """Marker: pickle a dense matrix as a ``scipy.sparse.csc.csc_matrix`` (old scipy layout)."""

    def __init__(self, dense):
        dense = np.asarray(dense, dtype=np.float64)
        self.shape = dense.shape
        data, indices, indptr = [], [], [0]
        for j in range(dense.shape[1]):
            rows = np.nonzero(dense[:, j])[0]
            data.append(dense[rows, j])
            indices.append(rows)
            indptr.append(indptr[-1] + rows.size)
        self.data = np.concatenate(data).astype(np.float64)
        self.indices = np.concatenate(indices).astype(np.int32)
        self.indptr = np.asarray(indptr, dtype=np.int32)


class CsrMatrix(CscMatrix):
    """Marker: pickle a dense matrix as a ``scipy.sparse.csr.csr_matrix`` (old scipy layout)."""

    def __init__(self, dense):
        dense = np.asarray(dense, dtype=np.float64)
        super().__init__(dense.T)  # CSR of A has the arrays of CSC of A^T
        self.shape = dense.shape


class _Py2Writer:
    def __init__(self):
        self.out = io.BytesIO()

    def w(self, b: bytes):
        self.out.write(b)

    def global_(self, module: str, name: str):
        self.w(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def save(self, obj):  # noqa: C901 - a dispatch table
        if obj is None:
            self.w(b"N")
        elif obj is True:
            self.w(b"\x88")
        elif obj is False:
            self.w(b"\x89")
        elif isinstance(obj, int):
            if 0 <= obj < 256:
                self.w(b"K" + struct.pack("<B", obj))
            elif 0 <= obj < 65536:
                self.w(b"M" + struct.pack("<H", obj))
            elif -2**31 <= obj < 2**31:
                self.w(b"J" + struct.pack("<i", obj))
            else:
                n = (obj.bit_length() + 8) // 8
                self.w(b"\x8a" + bytes([n]) + obj.to_bytes(n, "little", signed=True))
        elif isinstance(obj, float):
            self.w(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, (str, bytes)):  # a Python 2 str (bytes)
            b = obj.encode("latin1") if isinstance(obj, str) else obj
            if len(b) < 256:
                self.w(b"U" + bytes([len(b)]) + b)
            else:
                self.w(b"T" + struct.pack("<i", len(b)) + b)
        elif isinstance(obj, tuple):
            if len(obj) == 0:
                self.w(b")")
            elif len(obj) <= 3:
                for x in obj:
                    self.save(x)
                self.w({1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(obj)])
            else:
                self.w(b"(")
                for x in obj:
                    self.save(x)
                self.w(b"t")
        elif isinstance(obj, list):
            self.w(b"]")
            if obj:
                self.w(b"(")
                for x in obj:
                    self.save(x)
                self.w(b"e")
        elif isinstance(obj, set):  # Python 2, protocol 2: __builtin__.set([items])
            self.global_("__builtin__", "set")
            self.save((sorted(obj),))
            self.w(b"R")
        elif isinstance(obj, dict):
            self.w(b"}")
            if obj:
                self.w(b"(")
                for k, v in obj.items():
                    self.save(k)
                    self.save(v)
                self.w(b"u")
        elif isinstance(obj, np.ndarray):
            self.save_ndarray(obj)
        elif isinstance(obj, Ch):
            self.global_("chumpy.ch", "Ch")
            self.w(b")\x81")  # EMPTY_TUPLE, NEWOBJ
            # chumpy's Ch.__getstate__: __dict__ without _parents/_cache. A fresh Ch(x) has
            # 'x' in _dirty_vars (set through __setattr__ and never evaluated).
            self.save({"_dirty_vars": {"x"}, "_itr": None, "_depends_on_deps": {},
                       "_make_dense": False, "_make_sparse": False, "x": obj.x})
            self.w(b"b")
        elif isinstance(obj, CscMatrix):
            fmt = "csr" if isinstance(obj, CsrMatrix) else "csc"
            self.global_(f"scipy.sparse.{fmt}", f"{fmt}_matrix")
            self.w(b")\x81")
            self.save({"_shape": tuple(int(s) for s in obj.shape), "maxprint": 50,
                       "format": fmt, "data": obj.data, "indices": obj.indices,
                       "indptr": obj.indptr})
            self.w(b"b")
        else:
            raise TypeError(f"cannot write {type(obj)}")

    def save_ndarray(self, a: np.ndarray):
        """numpy 1.x ``ndarray.__reduce__``: _reconstruct(ndarray, (0,), 'b') + BUILD of
        (1, shape, dtype, is_fortran, raw bytes as a Python 2 str)."""
        a = np.ascontiguousarray(a)
        dt = a.dtype
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        self.save((0,))
        self.save("b")
        self.w(b"\x87R")  # TUPLE3, REDUCE
        self.w(b"(")
        self.save(1)
        self.save(tuple(int(s) for s in a.shape))
        self.global_("numpy", "dtype")
        self.save((dt.kind + str(dt.itemsize), 0, 1))
        self.w(b"R")
        self.save((3, "|" if dt.itemsize == 1 else "<", None, None, None, -1, -1, 0))
        self.w(b"b")
        self.save(False)
        self.save(a.astype(dt.newbyteorder("<")).tobytes())
        self.w(b"tb")  # TUPLE, BUILD


def py2_pickle_dumps(obj) -> bytes:
    """Protocol-2 pickle of ``obj`` as Python 2 would write it (see module docstring)."""
    wr = _Py2Writer()
    wr.w(b"\x80\x02")
    wr.save(obj)
    wr.w(b".")
    return wr.out.getvalue()


# ---------------------------------------------------------------------------------------------
# Contents.

def _sphere_mesh(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Head-sized ellipsoid UV sphere: vertices (5023,3) float64 metres, faces (9976,3) int."""
    theta = np.linspace(0, np.pi, _RINGS + 2)[1:-1]          # polar angle of the rings
    phi = np.linspace(0, 2 * np.pi, _COLS, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    unit = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]])   # top pole, rings, bottom pole
    top, bottom = 0, unit.shape[0] - 1

    def vid(r, c):
        return 1 + r * _COLS + (c % _COLS)

    faces = []
    for c in range(_COLS):
        faces.append((top, vid(0, c + 1), vid(0, c)))
        faces.append((bottom, vid(_RINGS - 1, c), vid(_RINGS - 1, c + 1)))
    for r in range(_RINGS - 1):
        for c in range(_COLS):
            a, b, cc, d = vid(r, c), vid(r, c + 1), vid(r + 1, c), vid(r + 1, c + 1)
            faces += [(a, b, cc), (b, d, cc)]
    faces = np.asarray(faces, dtype=np.int64)
    drop = rng.choice(faces.shape[0], faces.shape[0] - N_F, replace=False)  # "closed-ish"
    faces = np.delete(faces, np.sort(drop), axis=0)
    loose = rng.normal(size=(N_V - unit.shape[0], 3)) * 0.3            # 5 loose vertices
    verts = np.concatenate([unit, loose]) * np.array([0.075, 0.11, 0.09])
    verts += rng.normal(scale=5e-4, size=verts.shape)
    return verts, faces


def _rows_summing_to_one(rng, n_rows, n_cols, nnz_per_row=None):
    w = rng.random((n_rows, n_cols)) + 0.05
    if nnz_per_row is not None:
        keep = np.zeros_like(w, dtype=bool)
        for i in range(n_rows):
            keep[i, rng.choice(n_cols, nnz_per_row, replace=False)] = True
        w = np.where(keep, w, 0.0)
    return w / w.sum(axis=1, keepdims=True)


def make_flame_contents(seed: int = 0) -> dict:
    """Random but sensible FLAME 2020 contents, with the dtypes of the official files.

    Returns a dict with ``model`` (generic_model.pkl keys; ``shapedirs`` (5023,3,400) and
    ``J_regressor`` (5,5023) as dense float64 arrays), ``landmarks`` (landmark_embedding
    values as numpy arrays; written with the dynamic tables as torch tensors) and ``l_eyelid``,
    ``r_eyelid`` (5023,3) float32.
    """
    rng = np.random.default_rng(seed)
    verts, faces = _sphere_mesh(rng)
    shapedirs = rng.standard_normal((N_V, 3, 400), dtype=np.float32).astype(np.float64) * 1e-3
    posedirs = rng.standard_normal((N_V, 3, 36)) * 2e-3
    j_reg = _rows_summing_to_one(rng, N_J, N_V, nnz_per_row=24)
    weights = _rows_summing_to_one(rng, N_V, N_J)
    kintree = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
    model = {
        "f": faces.astype(np.uint32),
        "J_regressor": j_reg,
        "kintree_table": kintree,
        "J": j_reg @ verts,
        "weights": weights,
        "weights_prior": weights.copy(),
        "posedirs": posedirs,
        "v_template": verts,
        "shapedirs": shapedirs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }

    def bary(*shape):
        return rng.dirichlet(np.ones(3), size=shape)

    landmarks = {
        "static_lmk_faces_idx": rng.integers(0, N_F, 51).astype(np.int64),
        "static_lmk_bary_coords": bary(51),
        "dynamic_lmk_faces_idx": rng.integers(0, N_F, (79, 17)).astype(np.int64),
        "dynamic_lmk_bary_coords": bary(79, 17).astype(np.float32),
        "full_lmk_faces_idx": rng.integers(0, N_F, (1, 68)).astype(np.int64),
        "full_lmk_bary_coords": bary(1, 68),
    }
    eyelid = {k: (rng.standard_normal((N_V, 3)) * 1e-3).astype(np.float32)
              for k in ("l_eyelid", "r_eyelid")}
    return {"model": model, "landmarks": landmarks, **eyelid}


# ---------------------------------------------------------------------------------------------
# Writers.

def write_generic_model_pkl(path, model: dict, chumpy_keys=("shapedirs",),
                            sparse_keys=("J_regressor",), sparse_format="csc") -> None:
    """Write ``model`` as the official Python 2 pickle (chumpy/sparse keys wrapped; the
    official file's J_regressor is CSC, ``sparse_format="csr"`` is for robustness tests)."""
    out = {}
    for k, v in model.items():
        if k in chumpy_keys:
            v = Ch(v)
        elif k in sparse_keys:
            v = CsrMatrix(v) if sparse_format == "csr" else CscMatrix(v)
        out[k] = v
    with open(path, "wb") as f:
        f.write(py2_pickle_dumps(out))


def write_landmark_embedding(path, landmarks: dict,
                             torch_keys=("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")):
    """``np.save`` of the dict (object array); ``torch_keys`` become torch tensors."""
    import torch

    emb = {k: (torch.from_numpy(np.ascontiguousarray(v)) if k in torch_keys else v)
           for k, v in landmarks.items()}
    obj = np.empty((), dtype=object)
    obj[()] = emb
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    data = buf.getvalue()
    # The official file was written with numpy 1.x, whose arrays pickle as numpy.core.*.
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    with open(path, "wb") as f:
        f.write(data)


def write_flame_dir(flame_dir, seed: int = 0, eyelids: bool = True,
                    contents: dict | None = None) -> dict:
    """Write a complete synthetic FLAME directory; returns the contents written."""
    os.makedirs(flame_dir, exist_ok=True)
    contents = make_flame_contents(seed) if contents is None else contents
    write_generic_model_pkl(os.path.join(flame_dir, "generic_model.pkl"), contents["model"])
    write_landmark_embedding(os.path.join(flame_dir, "landmark_embedding.npy"),
                             contents["landmarks"])
    if eyelids:
        for k in ("l_eyelid", "r_eyelid"):
            np.save(os.path.join(flame_dir, f"{k}.npy"), contents[k])
    return contents


def write_flame_2023_like(flame_dir, seed: int = 0, contents: dict | None = None) -> dict:
    """A FLAME 2023 download: ``flame2023.pkl`` (+ ``flame2023_no_jaw.pkl``) instead of
    ``generic_model.pkl``. The 2023 release keeps the 2020 array layout (5023 vertices, 9976
    triangles, 300+100 components), so the file name is what identifies it."""
    os.makedirs(flame_dir, exist_ok=True)
    contents = make_flame_contents(seed) if contents is None else contents
    for name in ("flame2023.pkl", "flame2023_no_jaw.pkl"):
        write_generic_model_pkl(os.path.join(flame_dir, name), contents["model"])
    write_landmark_embedding(os.path.join(flame_dir, "landmark_embedding.npy"),
                             contents["landmarks"])
    return contents
