"""Rendering on emoca-edge's own rasterizer (no pytorch3d, no OpenGL): rasterization, attribute
interpolation, spherical-harmonics and shape-preview shading, overlays on full-resolution frames,
depth and normal maps. Vertices are in pixel space (x right, y down, z depth, smaller = nearer).
"""
from .raster import CULL_MODES, RenderTarget, cuda_available, cuda_device_name, rasterize, rasterize_region

__all__ = ["CULL_MODES", "RenderTarget", "cuda_available", "cuda_device_name", "rasterize", "rasterize_region"]
