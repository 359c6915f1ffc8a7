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

}  // namespace ee
