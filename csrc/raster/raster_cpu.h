// CPU rasterizer and per-pixel helpers (no Python dependency).
#pragma once

#include <cstdint>

namespace ee {

struct RasterArgs {
  const float* vertices;  // (V, 3)
  int64_t num_vertices;
  const int32_t* faces;  // (F, 3), indices already validated to lie in [0, V)
  int64_t num_faces;
  int32_t* tri_id;  // (H, W), row-major
  float* depth;     // (H, W)
  float* bary;      // (H, W, 3)
  int height, width;
  int clip_x0, clip_y0, clip_x1, clip_y1;  // pixel rectangle to clear and render
  int64_t origin_x, origin_y;              // buffer pixel (0,0) samples (origin + 0.5)
  int cull;
  int threads;  // 0 = auto, 1 = single-threaded
};

// Clears the clip rectangle (id -1, depth +inf, bary 0) and rasterizes every triangle into it.
// Returns the number of threads used.
int rasterize_cpu(const RasterArgs& args);

// Sequential host run of the CUDA kernels' per-thread code (raster_kernels.h): snap, clear keys,
// visibility of the triangles in the given order (a permutation of 0..F-1, or index order when
// null) with a plain minimum standing in for atomicMin, then the resolve pass. For tests.
void emulate_cuda_cpu(const RasterArgs& args, const int64_t* order);

// Test aid: enables (default) or disables the SIMD triangle kernel of rasterize_cpu, so that the
// portable scalar kernel can be checked on machines that have the SIMD one; returns the previous
// setting.
bool set_simd_enabled(bool enabled);

// Number of hardware threads (at least 1).
int hardware_threads();

// out[p, :] = sum_k bary[p, k] * attr[faces[tri_id[p], k], :] for covered pixels, 0 elsewhere,
// within the rectangle [x0, x1) x [y0, y1) of (H, W) buffers.
void interpolate_cpu(const float* attr, int64_t num_vertices, int channels, const int32_t* faces,
                     int64_t num_faces, const int32_t* tri_id, const float* bary, float* out, int height,
                     int width, int x0, int y0, int x1, int y1, int threads);

// Area-weighted vertex normals (unit length; zero for vertices without a non-degenerate face).
void vertex_normals_cpu(const float* vertices, int64_t num_vertices, const int32_t* faces, int64_t num_faces,
                        float* normals);

constexpr int kMaxLights = 16;  // directional lights of the compositor

struct CompositeArgs {
  uint8_t* frame;  // (H, W, 3) RGB, row-major
  int frame_h, frame_w;
  int x0, y0;  // frame position of buffer pixel (0, 0)
  const int32_t* tri_id;  // (h, w)
  const float* bary;      // (h, w, 3)
  int h, w;
  const int32_t* faces;  // (F, 3)
  int64_t num_faces;
  const float* normals;  // (V, 3) per-vertex view-space normals
  int albedo_kind;       // 0: constant (3,), 1: per vertex (V, 3), 2: per pixel (h, w, 3)
  const float* albedo;
  int mode;              // 0: directional lights (preview), 1: spherical harmonics
  const float* light;    // mode 0: (L, 3) unit directions; mode 1: (9, 3) coefficients
  int num_lights;
  float intensity;       // mode 0 only
  float alpha;           // opacity of the mesh
  int threads;
};

// For every covered buffer pixel: n = sum_k bary_k * normals[face_k] (not renormalised),
// albedo likewise (or constant / per pixel), colour = albedo * shading with
//   mode 0: shading = intensity * mean_l clamp(n . l, 0, 1)
//   mode 1: shading = sum_k SH_k(n) * light[k]   (order-2 basis with DECA's constants)
// then frame = uint8(src * (1 - alpha) + clamp(colour, 0, 1) * 255 * alpha + 0.5).
void composite_cpu(const CompositeArgs& args);

}  // namespace ee
