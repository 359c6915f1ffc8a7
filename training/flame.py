"""FLAME 2020 as a ``torch.nn.Module``, built from the face-model arrays of a bundle.

Conventions (docs/design.md): metres; model space +x to the subject's left, +y up, +z towards
the camera; axis-angle rotations in radians. Joints: 0 root (global), 1 neck, 2 jaw, 3/4 eyes;
neck and eye rotations are fixed to zero (DECA, EMOCA and SMIRK all do this).

Landmarks follow the official DECA/EMOCA/SMIRK FLAME class (confirmed in
yfeng95/DECA ``decalib/models/FLAME.py``, radekd91/emoca ``gdl/models/DecaFLAME.py`` and
georgeretsi/smirk ``src/FLAME/FLAME.py``):

* ``landmarks2d_3d`` = 17 contour landmarks from the dynamic table, then the 51 static ones.
  Table row: R = R_root @ R_neck (rotations of the chain neck -> root),
  yaw = degrees(atan2(-R[2,0], sqrt(R[0,0]^2 + R[1,0]^2))), y = round(min(yaw, 39)) (round half
  to even), row = y if y >= 0 else (78 if y < -39 else 39 - y). There is NO extra minus sign on
  the yaw in the FLAME class (the unused module-level helper in ``lbs.py`` of DECA has one).
* ``landmarks3d`` = the fixed 68-point ``full_lmk`` embedding.

The module is ONNX-exportable (opset 17, dynamic batch): no data-dependent Python control flow,
no in-place ops on inputs, gathers via ``index_select``/``gather``.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = ["FLAME", "FlameOutput", "batch_rodrigues"]

_REQUIRED = ("v_template", "shapedirs", "exprdirs", "posedirs", "J_regressor", "lbs_weights",
             "parents", "faces", "static_lmk_faces_idx", "static_lmk_bary_coords",
             "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords", "full_lmk_faces_idx",
             "full_lmk_bary_coords")


class FlameOutput(NamedTuple):
    """FLAME outputs, model space, metres.

    vertices: (N, 5023, 3) posed mesh. landmarks2d_3d: (N, 68, 3) model-space points of the 68
    2D landmarks (17 yaw-dependent contour points, then 51 static). landmarks3d: (N, 68, 3).
    """

    vertices: torch.Tensor
    landmarks2d_3d: torch.Tensor
    landmarks3d: torch.Tensor


def batch_rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Axis-angle (M, 3) radians -> rotation matrices (M, 3, 3).

    angle = |r + 1e-8| and axis = r / angle as in the official FLAME code, so r = 0 gives
    exactly the identity.
    """
    # The epsilon is a (1,3) tensor, not a Python scalar: the dynamo ONNX exporter's optimizer
    # (torch 2.13 / onnxscript) folds "x + 1e-8" with a scalar into Identity, which turns zero
    # rotations into 0/0 = NaN.
    shifted = rot_vecs + torch.full((1, 3), 1e-8, dtype=rot_vecs.dtype, device=rot_vecs.device)
    angle = torch.sqrt(torch.sum(shifted * shifted, dim=1, keepdim=True))  # (M,1) = |r + 1e-8|
    axis = rot_vecs / angle
    cos = torch.cos(angle).unsqueeze(-1)  # (M,1,1)
    sin = torch.sin(angle).unsqueeze(-1)
    rx, ry, rz = axis[:, 0], axis[:, 1], axis[:, 2]
    zeros = torch.zeros_like(rx)
    k = torch.stack([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device).unsqueeze(0)
    return eye + sin * k + (1.0 - cos) * torch.matmul(k, k)


def _to_tensor(arrays: Mapping[str, np.ndarray], key: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(arrays[key])).to(dtype).clone()


class FLAME(nn.Module):
    """FLAME decoder: parameters -> posed vertices and landmarks.

    Args:
        arrays: the face-model dict of ``emoca_edge.export.flame_assets.load_flame_dir`` (or a
            bundle's ``face_model.npz``). ``l_eyelid``/``r_eyelid`` are optional.

    Buffers (float32 unless noted): ``v_template`` (V,3), ``blend_dirs`` (S+E, V*3) identity
    then expression directions, ``posedirs_flat`` (36, V*3), ``J_regressor`` (5,V),
    ``lbs_weights`` (V,5), ``faces`` (F,3) int64, landmark vertex-index tables (int64) and
    barycentric weights, and ``eyelid_dirs`` (2, V, 3) [left, right] when present.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        super().__init__()
        missing = [k for k in _REQUIRED if k not in arrays]
        if missing:
            raise KeyError(f"FLAME arrays lack {missing}")
        f32, i64 = torch.float32, torch.int64
        v_template = _to_tensor(arrays, "v_template", f32)
        n_verts = v_template.shape[0]
        shapedirs = _to_tensor(arrays, "shapedirs", f32)
        exprdirs = _to_tensor(arrays, "exprdirs", f32)
        self.n_shape = int(shapedirs.shape[2])
        self.n_exp = int(exprdirs.shape[2])
        dirs = torch.cat([shapedirs, exprdirs], dim=2)  # (V,3,S+E)
        posedirs = _to_tensor(arrays, "posedirs", f32)  # (V,3,36)
        faces = _to_tensor(arrays, "faces", i64)
        parents = [int(p) for p in np.asarray(arrays["parents"]).reshape(-1)]
        if parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents[1:], 1)):
            raise ValueError(f"FLAME parents {parents} must be [-1, ...] with parents first")
        self.parents = parents
        self.n_joints = len(parents)
        # Neck kinematic chain (neck, its parent, ..., root), as in the official code.
        chain, j = [], 1
        while j != -1:
            chain.append(j)
            j = parents[j]
        self.neck_chain = chain

        self.register_buffer("v_template", v_template)
        self.register_buffer("blend_dirs", dirs.reshape(n_verts * 3, -1).t().contiguous())
        self.register_buffer("posedirs_flat",
                             posedirs.reshape(n_verts * 3, -1).t().contiguous())
        self.register_buffer("J_regressor", _to_tensor(arrays, "J_regressor", f32))
        self.register_buffer("lbs_weights", _to_tensor(arrays, "lbs_weights", f32))
        self.register_buffer("faces", faces)
        # Landmarks: store the triangles' vertex ids directly (faces[idx]).
        static_idx = _to_tensor(arrays, "static_lmk_faces_idx", i64).reshape(-1)
        dyn_idx = _to_tensor(arrays, "dynamic_lmk_faces_idx", i64)
        full_idx = _to_tensor(arrays, "full_lmk_faces_idx", i64).reshape(-1)
        self.register_buffer("static_lmk_verts", faces[static_idx])           # (51,3)
        self.register_buffer("static_lmk_bary",
                             _to_tensor(arrays, "static_lmk_bary_coords", f32).reshape(-1, 3))
        self.register_buffer("dynamic_lmk_verts", faces[dyn_idx])             # (79,17,3)
        self.register_buffer("dynamic_lmk_bary",
                             _to_tensor(arrays, "dynamic_lmk_bary_coords", f32))
        self.register_buffer("full_lmk_verts", faces[full_idx])               # (68,3)
        self.register_buffer("full_lmk_bary",
                             _to_tensor(arrays, "full_lmk_bary_coords", f32).reshape(-1, 3))
        self.has_eyelids = "l_eyelid" in arrays and "r_eyelid" in arrays
        if self.has_eyelids:
            self.register_buffer("eyelid_dirs", torch.stack(
                [_to_tensor(arrays, "l_eyelid", f32), _to_tensor(arrays, "r_eyelid", f32)]))

    # ------------------------------------------------------------------------------------
    def _skin(self, v_shaped: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        """LBS. v_shaped (N,V,3), rot (N,J,3,3) -> posed vertices (N,V,3)."""
        n = v_shaped.shape[0]
        joints = torch.matmul(self.J_regressor, v_shaped)  # (N,J,3)
        eye3 = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye3).reshape(n, -1)  # (N, 9*(J-1))
        v_posed = v_shaped + torch.matmul(pose_feature, self.posedirs_flat).reshape(n, -1, 3)
        # Kinematic chain: world rotation G_R and translation G_t of each joint.
        g_rot = [rot[:, 0]]
        g_t = [joints[:, 0]]
        for i in range(1, self.n_joints):
            p = self.parents[i]
            rel = (joints[:, i] - joints[:, p]).unsqueeze(-1)  # (N,3,1)
            g_rot.append(torch.matmul(g_rot[p], rot[:, i]))
            g_t.append(g_t[p] + torch.matmul(g_rot[p], rel).squeeze(-1))
        g_rot_t = torch.stack(g_rot, dim=1)  # (N,J,3,3)
        g_t_t = torch.stack(g_t, dim=1)      # (N,J,3)
        # Remove the rest-pose joint location: A = [G_R | G_t - G_R J].
        a_t = g_t_t - torch.matmul(g_rot_t, joints.unsqueeze(-1)).squeeze(-1)
        a = torch.cat([g_rot_t.reshape(n, self.n_joints, 9), a_t], dim=2)  # (N,J,12)
        t = torch.matmul(self.lbs_weights, a)  # (N,V,12)
        t_rot = t[:, :, :9].reshape(n, -1, 3, 3)
        return torch.matmul(t_rot, v_posed.unsqueeze(-1)).squeeze(-1) + t[:, :, 9:]

    @staticmethod
    def _landmarks(vertices: torch.Tensor, vert_ids: torch.Tensor,
                   bary: torch.Tensor) -> torch.Tensor:
        """Barycentric landmarks. vert_ids (N,L,3) int64, bary (N,L,3) -> (N,L,3)."""
        n, l_count = vert_ids.shape[0], vert_ids.shape[1]
        idx = vert_ids.reshape(n, -1, 1).expand(-1, -1, 3)
        tri = torch.gather(vertices, 1, idx).reshape(n, l_count, 3, 3)
        return (tri * bary.unsqueeze(-1)).sum(dim=2)

    def contour_rows(self, rot: torch.Tensor) -> torch.Tensor:
        """Row (N,) int64 of the dynamic contour table, from joint rotations (N,J,3,3)."""
        rel = rot[:, self.neck_chain[0]]
        for j in self.neck_chain[1:]:
            rel = torch.matmul(rot[:, j], rel)
        sy = torch.sqrt(rel[:, 0, 0] * rel[:, 0, 0] + rel[:, 1, 0] * rel[:, 1, 0])
        yaw = torch.atan2(-rel[:, 2, 0], sy) * 180.0 / np.pi
        y = torch.round(torch.clamp(yaw, max=39.0)).to(torch.int64)
        neg = torch.where(y < -39, torch.full_like(y, 78), 39 - y)
        return torch.where(y < 0, neg, y)

    def forward(self, shape: torch.Tensor, expression: torch.Tensor, global_pose: torch.Tensor,
                jaw_pose: torch.Tensor, eyelids: torch.Tensor | None = None) -> FlameOutput:
        """Decode FLAME.

        Args:
            shape: (N, S) identity coefficients. expression: (N, E) expression coefficients.
            global_pose: (N, 3) axis-angle radians of the root. jaw_pose: (N, 3) axis-angle.
            eyelids: optional (N, 2) SMIRK eyelid weights [left, right], added after skinning:
                v += l_eyelid * e[:, 0] + r_eyelid * e[:, 1].
        """
        if not torch.jit.is_tracing() and (shape.shape[1] != self.n_shape
                                           or expression.shape[1] != self.n_exp):
            raise ValueError(f"FLAME expects shape (N,{self.n_shape}) and expression "
                             f"(N,{self.n_exp}), got {tuple(shape.shape)}, "
                             f"{tuple(expression.shape)}")
        n = shape.shape[0]
        betas = torch.cat([shape, expression], dim=1)
        v_shaped = self.v_template + torch.matmul(betas, self.blend_dirs).reshape(n, -1, 3)
        zeros3 = torch.zeros_like(global_pose)
        poses = [global_pose, zeros3, jaw_pose] + [zeros3] * (self.n_joints - 3)
        full_pose = torch.stack(poses, dim=1)  # (N,J,3): root, neck, jaw, eyes
        rot = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(n, self.n_joints, 3, 3)
        vertices = self._skin(v_shaped, rot)
        if eyelids is not None:
            if not self.has_eyelids:
                raise ValueError("eyelids given but the FLAME arrays have no l_eyelid/r_eyelid")
            vertices = vertices + self.eyelid_dirs[1] * eyelids[:, 1:2, None]
            vertices = vertices + self.eyelid_dirs[0] * eyelids[:, 0:1, None]
        rows = self.contour_rows(rot)
        dyn_ids = torch.index_select(self.dynamic_lmk_verts, 0, rows)   # (N,17,3)
        dyn_bary = torch.index_select(self.dynamic_lmk_bary, 0, rows)   # (N,17,3)
        ids2d = torch.cat([dyn_ids, self.static_lmk_verts.unsqueeze(0).expand(n, -1, -1)], 1)
        bary2d = torch.cat([dyn_bary, self.static_lmk_bary.unsqueeze(0).expand(n, -1, -1)], 1)
        lmk2d = self._landmarks(vertices, ids2d, bary2d)
        lmk3d = self._landmarks(vertices, self.full_lmk_verts.unsqueeze(0).expand(n, -1, -1),
                                self.full_lmk_bary.unsqueeze(0).expand(n, -1, -1))
        return FlameOutput(vertices, lmk2d, lmk3d)
