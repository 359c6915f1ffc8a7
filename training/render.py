"""Differentiable rendering for training, on the native rasterizer (no pytorch3d).

Visibility (which triangle covers each pixel) comes from ``emoca_edge.render.rasterize`` under
``torch.no_grad``; the barycentric weights are then recomputed in torch from the pixel centres and
the covering triangle's projected vertices, so gradients flow to the vertex positions (and to every
interpolated attribute: normals, UVs, colours) inside triangles. Coverage itself is piecewise
constant and has no gradient (as in any rasterizer without soft edges).

Conventions (docs/design.md): vertices in crop pixel space (x right, y down, z depth, smaller =
nearer); pixel (row i, column j) samples (j + 0.5, i + 0.5). Normals are computed from the
pixel-space vertices and mapped to view space (x right, y up, z towards the viewer) with
``(x, -y, -z)``, which for the weak-perspective camera is FLAME model space (as the runtime's
``emoca_edge.render.shading`` does). Spherical-harmonics shading: order 2, the constants of
``emoca_edge.render.shading.SH_CONSTANTS``; interpolated normals are not renormalised (DECA).

UV space: ``u`` left to right, ``v`` bottom to top in [0, 1]; a UV map of side S has texel (r, c)
centred at u = (c + 0.5) / S, v = 1 - (r + 0.5) / S (the runtime's ``sample_texture`` convention).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emoca_edge.render import rasterize as native_rasterize
from emoca_edge.render.shading import SH_CONSTANTS

__all__ = ["Fragments", "rasterize", "vertex_normals", "sh_shading", "UVSpace", "AlbedoModel", "load_obj_uv",
           "detail_normals"]


@dataclass
class Fragments:
    """Covered pixels of a batch, as flat lists (P = number of covered pixels over the batch).

    ``batch`` (P,) int64, ``pixel`` (P,) int64 flat index i * W + j, ``triangle`` (P,) int64,
    ``bary`` (P, 3) differentiable weights of the triangle's vertices (faces order); ``size`` (N, H, W).
    """

    batch: torch.Tensor
    pixel: torch.Tensor
    triangle: torch.Tensor
    bary: torch.Tensor
    size: tuple

    def interpolate(self, attributes: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """Per-vertex attributes (N, V, C) -> image (N, C, H, W), 0 where no triangle covers the pixel.

        ``faces`` (F, 3) indexes ``attributes`` (e.g. UV faces into UV coordinates), one row per
        rasterized triangle."""
        n, h, w = self.size
        c = attributes.shape[-1]
        corner = faces[self.triangle]                                    # (P,3)
        vals = attributes[self.batch.unsqueeze(1), corner]               # (P,3,C)
        px = (vals * self.bary.unsqueeze(-1)).sum(1)                     # (P,C)
        flat = torch.zeros(n * h * w, c, dtype=px.dtype, device=px.device)
        flat = flat.index_put((self.batch * (h * w) + self.pixel,), px)
        return flat.reshape(n, h, w, c).permute(0, 3, 1, 2)

    def mask(self, dtype=torch.float32) -> torch.Tensor:
        """(N, 1, H, W) coverage, 1 where a triangle covers the pixel."""
        n, h, w = self.size
        m = torch.zeros(n * h * w, dtype=dtype, device=self.bary.device)
        m[self.batch * (h * w) + self.pixel] = 1
        return m.reshape(n, 1, h, w)


def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def rasterize(vertices_px: torch.Tensor, faces: torch.Tensor, height: int, width: int, *,
              cull: str = "none") -> Fragments:
    """Rasterize a batch (N, V, 3) pixel-space vertices with faces (F, 3) int64.

    Visibility from the native rasterizer (float32, exact coverage); barycentrics recomputed in
    torch (dtype of ``vertices_px``) as signed-area ratios at the pixel centre, differentiable."""
    if vertices_px.dim() != 3 or vertices_px.shape[-1] != 3:
        raise ValueError(f"rasterize: vertices must be (N, V, 3), got {tuple(vertices_px.shape)}")
    faces = faces.to(torch.int64)
    faces_np = faces.detach().cpu().numpy().astype(np.int32)
    batches, pixels, tris = [], [], []
    with torch.no_grad():
        v_np = vertices_px.detach().to("cpu", torch.float32).numpy()
        for b in range(v_np.shape[0]):
            tri, _, _ = native_rasterize(v_np[b], faces_np, height, width, cull=cull)
            flat = tri.reshape(-1)
            idx = np.nonzero(flat >= 0)[0]
            batches.append(np.full(idx.shape, b, np.int64))
            pixels.append(idx.astype(np.int64))
            tris.append(flat[idx].astype(np.int64))
    dev = vertices_px.device
    batch = torch.from_numpy(np.concatenate(batches)).to(dev)
    pixel = torch.from_numpy(np.concatenate(pixels)).to(dev)
    triangle = torch.from_numpy(np.concatenate(tris)).to(dev)
    corner = faces.to(dev)[triangle]                                      # (P,3)
    xy = vertices_px[batch.unsqueeze(1), corner][..., :2]                 # (P,3,2)
    p = torch.stack([(pixel % width).to(xy.dtype) + 0.5, (pixel // width).to(xy.dtype) + 0.5], -1)  # (P,2)
    a, b, c = xy[:, 0], xy[:, 1], xy[:, 2]
    area = _cross2(b - a, c - a)
    w0 = _cross2(b - p, c - p) / area
    w1 = _cross2(c - p, a - p) / area
    bary = torch.stack([w0, w1, 1.0 - w0 - w1], -1)
    return Fragments(batch, pixel, triangle, bary, (int(vertices_px.shape[0]), int(height), int(width)))


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (N, V, 3) in the frame of ``vertices`` (N, V, 3); face
    normal (v1 - v0) x (v2 - v0); vertices of no triangle get 0 (as ``emoca_edge.render.vertex_normals``)."""
    faces = faces.to(torch.int64)
    v0, v1, v2 = vertices[:, faces[:, 0]], vertices[:, faces[:, 1]], vertices[:, faces[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)                            # (N,F,3)
    acc = torch.zeros_like(vertices)
    for k in range(3):
        acc = acc.index_add(1, faces[:, k], fn)
    length = acc.norm(dim=-1, keepdim=True)
    return torch.where(length > 0, acc / length.clamp_min(1e-20), torch.zeros_like(acc))


PIXEL_TO_VIEW = (1.0, -1.0, -1.0)


def sh_basis(normals: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Normals with xyz on axis ``dim`` -> the 9 SH basis values (constants included) on that axis."""
    x, y, z = normals.unbind(dim)
    basis = torch.stack([torch.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], dim)
    shape = [1] * normals.dim()
    shape[dim] = 9
    return basis * torch.as_tensor(SH_CONSTANTS, dtype=normals.dtype, device=normals.device).reshape(shape)


def sh_shading(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Order-2 SH shading: normals (N, 3, H, W) view space, light (N, 9, 3) -> shading (N, 3, H, W)."""
    return torch.einsum("nkhw,nkc->nchw", sh_basis(normals, 1), light)


def view_normals_image(frags: Fragments, vertices_px: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Interpolated (not renormalised) view-space vertex normals (N, 3, H, W)."""
    sign = torch.tensor(PIXEL_TO_VIEW, dtype=vertices_px.dtype, device=vertices_px.device)
    return frags.interpolate(vertex_normals(vertices_px, faces) * sign, faces)


# ---------------------------------------------------------------------------------------------- UV
def load_obj_uv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """UV coordinates of a Wavefront .obj such as FLAME's ``head_template.obj`` (DECA's data folder).

    Returns ``uv_coords`` (T, 2) float32 (``vt`` lines) and ``uv_faces`` (F, 3) int64 (the texture
    indices of the ``f v/vt ...`` lines, 0-based). Only triangles are accepted."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such .obj file (FLAME head_template.obj with UVs)")
    uvs, faces = [], []
    for ln, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "vt":
            try:
                uvs.append((float(parts[1]), float(parts[2])))
            except (IndexError, ValueError) as e:
                raise ValueError(f"{p}:{ln}: bad 'vt' line {line!r}") from e
        elif parts[0] == "f":
            if len(parts) != 4:
                raise ValueError(f"{p}:{ln}: only triangles are supported, got {len(parts) - 1} corners")
            try:
                faces.append(tuple(int(c.split("/")[1]) - 1 for c in parts[1:]))
            except (IndexError, ValueError) as e:
                raise ValueError(f"{p}:{ln}: face without texture indices (expected 'f v/vt v/vt v/vt')") from e
    if not uvs or not faces:
        raise ValueError(f"{p}: no 'vt' texture coordinates or no faces with texture indices")
    uv = np.asarray(uvs, np.float32)
    f = np.asarray(faces, np.int64)
    if f.min() < 0 or f.max() >= len(uv):
        raise ValueError(f"{p}: texture index out of range (0..{len(uv) - 1})")
    return uv, f


class UVSpace(torch.nn.Module):
    """A mesh's UV layout: UV-space rasterization (fixed, computed once) and image-space UV lookups.

    uv_coords (T, 2), uv_faces (F, 3) (one row per mesh face), faces (F, 3) vertex indices, size S
    of the UV maps. ``uv_depth`` (T,) optional depth for overlapping layouts (smaller wins)."""

    def __init__(self, uv_coords, uv_faces, faces, size: int = 256, uv_depth=None):
        super().__init__()
        uv = np.asarray(uv_coords, np.float32)
        uf = np.asarray(uv_faces, np.int64)
        f = np.asarray(faces, np.int64)
        if uf.shape != f.shape:
            raise ValueError(f"UVSpace: uv_faces {uf.shape} and faces {f.shape} must have one row per triangle")
        self.size = int(size)
        pix = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size,
                        np.zeros(len(uv), np.float32) if uv_depth is None else np.asarray(uv_depth, np.float32)], 1)
        tri, _, bary = native_rasterize(pix.astype(np.float32), uf.astype(np.int32), size, size)
        self.register_buffer("uv_coords", torch.from_numpy(uv))
        self.register_buffer("uv_faces", torch.from_numpy(uf))
        self.register_buffer("faces", torch.from_numpy(f))
        self.register_buffer("texel_triangle", torch.from_numpy(tri.astype(np.int64)))   # (S,S), -1 empty
        self.register_buffer("texel_bary", torch.from_numpy(bary.astype(np.float32)))    # (S,S,3)

    @property
    def texel_mask(self) -> torch.Tensor:
        """(1, 1, S, S) float, 1 on texels covered by the layout."""
        return (self.texel_triangle >= 0).to(self.texel_bary.dtype)[None, None]

    def to_uv(self, attributes: torch.Tensor) -> torch.Tensor:
        """Per-vertex attributes (N, V, C) -> UV map (N, C, S, S), 0 outside the layout."""
        tri = self.texel_triangle.clamp_min(0)
        corner = self.faces[tri]                                          # (S,S,3)
        vals = attributes[:, corner]                                      # (N,S,S,3,C)
        out = (vals * self.texel_bary.to(attributes.dtype)[None, ..., None]).sum(3)
        return (out * self.texel_mask.to(out.dtype)[0, 0, ..., None]).permute(0, 3, 1, 2)

    def pixel_uv(self, frags: Fragments) -> torch.Tensor:
        """UV coordinates of each pixel (N, 2, H, W) (0 where empty)."""
        n = frags.size[0]
        return frags.interpolate(self.uv_coords.to(frags.bary.dtype).expand(n, -1, -1), self.uv_faces)

    def sample(self, uv_map: torch.Tensor, frags: Fragments) -> torch.Tensor:
        """Bilinear lookup of a UV map (N, C, S, S) at each pixel's UV -> (N, C, H, W) (0 where empty)."""
        uv = self.pixel_uv(frags).permute(0, 2, 3, 1)                     # (N,H,W,2)
        grid = torch.stack([uv[..., 0] * 2 - 1, (1 - uv[..., 1]) * 2 - 1], -1)
        out = F.grid_sample(uv_map, grid.to(uv_map.dtype), mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out * frags.mask(out.dtype)


class AlbedoModel(torch.nn.Module):
    """Linear albedo model in UV space: albedo = mean + basis @ code, clamped to [0, 1].

    ``mean`` (Ht, Wt, 3) and ``basis`` (Ht, Wt, 3, K) in linear [0, 1] RGB (e.g. converted from
    FLAME's albedo model; see docs/training.md). Without a model (``mean`` None) the albedo is the
    constant grey ``constant``."""

    def __init__(self, mean=None, basis=None, constant: float = 0.5):
        super().__init__()
        self.constant = float(constant)
        if mean is None:
            self.register_buffer("mean", None)
            self.register_buffer("basis", None)
        else:
            m = torch.as_tensor(np.asarray(mean, np.float32))
            b = torch.as_tensor(np.asarray(basis, np.float32))
            if m.dim() != 3 or m.shape[2] != 3 or b.shape[:3] != m.shape:
                raise ValueError(f"AlbedoModel: mean must be (Ht, Wt, 3) and basis (Ht, Wt, 3, K), got "
                                 f"{tuple(m.shape)} and {tuple(b.shape)}")
            self.register_buffer("mean", m.permute(2, 0, 1).contiguous())
            self.register_buffer("basis", b.permute(3, 2, 0, 1).contiguous())

    @classmethod
    def from_npz(cls, path) -> "AlbedoModel":
        p = Path(path)
        with np.load(p, allow_pickle=False) as z:
            if "mean" not in z or "basis" not in z:
                raise ValueError(f"{p}: albedo model needs arrays 'mean' (Ht,Wt,3) and 'basis' (Ht,Wt,3,K)")
            return cls(z["mean"], z["basis"])

    def uv_albedo(self, code: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """(N, 3, Ht, Wt) UV albedo, or None for the constant model."""
        if self.mean is None:
            return None
        k = self.basis.shape[0]
        c = code[:, :k].to(self.mean.dtype)
        return (self.mean + torch.einsum("nk,kchw->nchw", c, self.basis)).clamp(0, 1)


def detail_normals(uv: UVSpace, vertices: torch.Tensor, uv_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normals of the coarse surface displaced by the detail map, in UV space.

    vertices: (N, V, 3) model space (metres); uv_z: (N, 1, S, S) displacement along the coarse
    normal (model units). The displaced position map P = P_coarse + uv_z * n_coarse is
    differentiated with central differences along the UV axes; n = dP/du x dP/dv, normalised and
    oriented like the coarse normal. Returns (detail normals, coarse normals), each (N, 3, S, S)
    unit length on the layout and 0 outside.
    """
    if uv_z.shape[-1] != uv.size:
        uv_z = F.interpolate(uv_z, size=(uv.size, uv.size), mode="bilinear", align_corners=False)
    nrm = uv.to_uv(vertex_normals(vertices, uv.faces))
    nrm = nrm / nrm.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pos = uv.to_uv(vertices) + uv_z * nrm
    padded = F.pad(pos, (1, 1, 1, 1), mode="replicate")
    du = padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]
    dv = padded[:, :, :-2, 1:-1] - padded[:, :, 2:, 1:-1]               # rows go down = v decreasing
    n = torch.cross(du, dv, dim=1)
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-20)
    sign = torch.where((n * nrm).sum(1, keepdim=True) < 0, -1.0, 1.0).to(n.dtype)
    mask = uv.texel_mask.to(n.dtype)
    return n * sign * mask, nrm * mask


def render_sh(vertices_px: torch.Tensor, faces: torch.Tensor, light: torch.Tensor, albedo, height: int, width: int,
              *, normals: torch.Tensor | None = None, cull: str = "none"):
    """SH-shaded render: albedo * (SH basis(n) @ light).

    vertices_px (N, V, 3) pixel space; faces (F, 3); light (N, 9, 3); albedo: a float, per-vertex
    colours (N, V, 3), or an image (N, 3, H, W); normals: optional view-space normal image
    (N, 3, H, W) (e.g. detail normals), default the interpolated vertex normals.
    Returns (image (N, 3, H, W), coverage mask (N, 1, H, W), fragments); 0 where empty, not clipped.
    """
    frags = rasterize(vertices_px, faces, height, width, cull=cull)
    if normals is None:
        normals = view_normals_image(frags, vertices_px, faces)
    shading = sh_shading(normals, light.to(vertices_px.dtype))
    mask = frags.mask(vertices_px.dtype)
    if isinstance(albedo, torch.Tensor) and albedo.dim() == 3:
        albedo = frags.interpolate(albedo, faces)
    return albedo * shading * mask, mask, frags
