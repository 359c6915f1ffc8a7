"""Non-network data shipped inside face_landmarker.task, read without protobuf or TensorFlow.

- ``geometry_pipeline_metadata_landmarks.binarypb``: MediaPipe's face-geometry metadata, a
  protobuf message: field 1 = canonical mesh (1 vertex_type, 2 primitive_type, 3 vertex_buffer
  floats x,y,z,u,v per vertex, 4 index_buffer triangle corners), field 2 = Procrustes landmark
  basis entries (1 landmark_id, 2 weight), field 3 = input source.
- ``face_blendshapes.tflite`` carries the model's 52 output names (a flatbuffer vector of
  strings) and the 146 input-landmark indices (an int32 vector) in its flatbuffer.
"""
from __future__ import annotations

import struct

import numpy as np


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) for each field of a protobuf message."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = struct.unpack_from("<d", buf, i)[0], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = struct.unpack_from("<f", buf, i)[0], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {field})")
        out.append((field, wire, value))
    return out


def _repeated(fields, number: int, wire_scalar: int) -> list:
    """A repeated scalar field, packed or not."""
    values = []
    for f, wire, v in fields:
        if f != number:
            continue
        if wire == wire_scalar:
            values.append(v)
        elif wire == 2:  # packed
            if wire_scalar == 5:
                values.extend(np.frombuffer(v, "<f4").tolist())
            else:
                i = 0
                while i < len(v):
                    x, i = _varint(v, i)
                    values.append(x)
    return values


def parse_geometry(buf: bytes) -> dict[str, np.ndarray]:
    """Canonical face mesh and Procrustes basis from the geometry pipeline metadata.

    Returns ``canonical_vertices`` (468,3) float32 centimetres (+x subject's left = image
    right, +y up, +z towards the camera), ``canonical_uv`` (468,2), ``triangles`` (F,3) int32,
    ``procrustes_indices`` (K,) int32 and ``procrustes_weights`` (K,) float32.
    """
    top = _fields(buf)
    meshes = [v for f, w, v in top if f == 1 and w == 2]
    if len(meshes) != 1:
        raise ValueError(f"geometry metadata: expected one canonical mesh, found {len(meshes)}")
    mesh = _fields(meshes[0])
    vertex_type = next((v for f, w, v in mesh if f == 1), 0)
    primitive = next((v for f, w, v in mesh if f == 2), 0)
    if vertex_type != 0 or primitive != 0:  # VERTEX_PT, TRIANGLE
        raise ValueError(f"geometry metadata: unexpected vertex type {vertex_type} / primitive {primitive}")
    vb = np.asarray(_repeated(mesh, 3, 5), np.float32).reshape(-1, 5)
    ib = np.asarray(_repeated(mesh, 4, 0), np.int64).reshape(-1, 3)
    if ib.max() >= len(vb):
        raise ValueError("geometry metadata: triangle index out of range")
    basis = [dict((f, v) for f, w, v in _fields(v)) for f, w, v in top if f == 2 and w == 2]
    return {
        "canonical_vertices": vb[:, :3].copy(),
        "canonical_uv": vb[:, 3:5].copy(),
        "triangles": ib.astype(np.int32),
        "procrustes_indices": np.array([b.get(1, 0) for b in basis], np.int32),
        "procrustes_weights": np.array([b.get(2, 0.0) for b in basis], np.float32),
    }


def _string_vectors(buf: bytes, length: int) -> list[tuple[int, list[str]]]:
    """Flatbuffer vectors of ``length`` ASCII strings: (offset, strings)."""
    found = []
    for pos in range(0, len(buf) - 4 * (length + 1), 4):
        if struct.unpack_from("<I", buf, pos)[0] != length:
            continue
        names = []
        for e in range(length):
            slot = pos + 4 + 4 * e
            target = slot + struct.unpack_from("<I", buf, slot)[0]
            if target + 4 > len(buf):
                break
            n = struct.unpack_from("<I", buf, target)[0]
            s = buf[target + 4:target + 4 + n]
            if not 0 < n <= 64 or not s.isascii() or not s.replace(b"_", b"").isalnum():
                break
            names.append(s.decode())
        if len(names) == length:
            found.append((pos, names))
    return found


def parse_blendshape_metadata(buf: bytes, n_outputs: int = 52, n_points: int = 146,
                              n_landmarks: int = 478) -> tuple[list[str], np.ndarray]:
    """(52 output names in output order, 146 landmark indices in input order)."""
    names = _string_vectors(buf, n_outputs)
    if len(names) != 1:
        raise ValueError(f"blendshape model: expected one vector of {n_outputs} names, found {len(names)}")
    subsets = []
    for pos in range(0, len(buf) - 4 * (n_points + 1), 4):
        if struct.unpack_from("<I", buf, pos)[0] != n_points:
            continue
        v = np.frombuffer(buf, "<i4", n_points, pos + 4)
        if v.min() >= 0 and v.max() < n_landmarks and len(np.unique(v)) == n_points:
            subsets.append(v.astype(np.int32))
    if len(subsets) != 1:
        raise ValueError(f"blendshape model: expected one vector of {n_points} landmark indices, found {len(subsets)}")
    return names[0][1], subsets[0]
