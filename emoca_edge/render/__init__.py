"""Rendering on emoca-edge's own rasterizer (no pytorch3d, no OpenGL): rasterization, attribute
interpolation, spherical-harmonics and shape-preview shading, overlays on full-resolution frames,
depth and normal maps. Vertices are in pixel space (x right, y down, z depth, smaller = nearer).
"""
from .images import (depth_map, normal_map, normal_map_to_rgb, overlay_mesh, render_sh, render_shape_preview,
                     transform_vertices)
from .raster import CULL_MODES, RenderTarget, cuda_available, cuda_device_name, rasterize, rasterize_region
from .shading import (PREVIEW_ALBEDO, PREVIEW_INTENSITY, PREVIEW_LIGHT_DIRECTIONS, SH_CONSTANTS, interpolate,
                      pixel_to_view, sample_texture, sh_basis, shade_preview, shade_sh, vertex_normals)

__all__ = [
    "CULL_MODES", "RenderTarget", "cuda_available", "cuda_device_name", "rasterize", "rasterize_region",
    "vertex_normals", "interpolate", "pixel_to_view", "sh_basis", "shade_sh", "shade_preview", "sample_texture",
    "SH_CONSTANTS", "PREVIEW_LIGHT_DIRECTIONS", "PREVIEW_INTENSITY", "PREVIEW_ALBEDO",
    "render_shape_preview", "render_sh", "depth_map", "normal_map", "normal_map_to_rgb", "overlay_mesh",
    "transform_vertices",
]
