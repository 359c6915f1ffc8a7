// CPU rasterizer: bands of rows processed by std::thread workers; each worker walks all triangles
// in index order, so ties in depth go to the lowest triangle index regardless of the band split.
#include "raster_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "raster_common.h"

namespace ee {

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

namespace {

// Runs fn(band_index, row_begin, row_end) over `bands` equal row bands of [y0, y1).
template <class Fn>
void run_bands(int bands, int y0, int y1, Fn&& fn) {
  const int rows = y1 - y0;
  if (bands <= 1 || rows <= 1) {
    fn(0, y0, y1);
    return;
  }
  bands = std::min(bands, rows);
  std::vector<std::thread> pool;
  pool.reserve(size_t(bands - 1));
  for (int b = 1; b < bands; ++b) {
    const int r0 = y0 + int(int64_t(rows) * b / bands), r1 = y0 + int(int64_t(rows) * (b + 1) / bands);
    pool.emplace_back([&fn, b, r0, r1] { fn(b, r0, r1); });
  }
  fn(0, y0, y0 + int(int64_t(rows) / bands));
  for (auto& t : pool) t.join();
}

void raster_band(const RasterArgs& a, const QVert* qv, int r0, int r1) {
  const int W = a.width;
  const int x0 = a.clip_x0, x1 = a.clip_x1;
  const float inf = std::numeric_limits<float>::infinity();
  for (int i = r0; i < r1; ++i) {
    const size_t row = size_t(i) * size_t(W);
    std::fill(a.tri_id + row + x0, a.tri_id + row + x1, -1);
    std::fill(a.depth + row + x0, a.depth + row + x1, inf);
    std::fill(a.bary + 3 * (row + x0), a.bary + 3 * (row + x1), 0.0f);
  }
  const int32_t* faces = a.faces;
  const int64_t nf = a.num_faces;
  const int64_t band_lo = sample_coord(r0) , band_hi = sample_coord(r1 - 1);
  for (int64_t t = 0; t < nf; ++t) {
    const QVert& v0 = qv[faces[3 * t]];
    const QVert& v1 = qv[faces[3 * t + 1]];
    const QVert& v2 = qv[faces[3 * t + 2]];
    // Cheap band rejection before the full setup.
    if (std::max(v0.y, std::max(v1.y, v2.y)) < band_lo || std::min(v0.y, std::min(v1.y, v2.y)) > band_hi) continue;
    TriSetup s;
    if (!setup_triangle(v0, v1, v2, a.cull, x0, r0, x1, r1, &s)) continue;
    const int64_t px = sample_coord(s.j0), py = sample_coord(s.i0);
    int64_t row_e[3];
    int64_t step_x[3], step_y[3];
    for (int k = 0; k < 3; ++k) {
      row_e[k] = s.a[k] * px + s.b[k] * py + s.c[k];
      step_x[k] = s.a[k] * kSub;
      step_y[k] = s.b[k] * kSub;
    }
    const int32_t id = int32_t(t);
    for (int i = s.i0; i < s.i1; ++i) {
      int64_t e[3] = {row_e[0], row_e[1], row_e[2]};
      const size_t row = size_t(i) * size_t(W);
      for (int j = s.j0; j < s.j1; ++j) {
        if (covered(s, e)) {
          double w[3];
          float d;
          weights_depth(s, e, w, &d);
          const size_t p = row + size_t(j);
          if (d < a.depth[p]) {
            a.depth[p] = d;
            a.tri_id[p] = id;
            float* b = a.bary + 3 * p;
            b[0] = float(w[0]);
            b[1] = float(w[1]);
            b[2] = float(w[2]);
          }
        }
        e[0] += step_x[0];
        e[1] += step_x[1];
        e[2] += step_x[2];
      }
      row_e[0] += step_y[0];
      row_e[1] += step_y[1];
      row_e[2] += step_y[2];
    }
  }
}

int auto_threads(int requested, int64_t pixels, int64_t faces) {
  if (requested > 0) return requested;
  // Spawning a worker costs tens of microseconds and every band repeats the per-triangle
  // rejection; below ~64k pixels and few triangles the single thread wins.
  const int64_t work = pixels + 4 * faces;
  int n = int(std::min<int64_t>(hardware_threads(), std::max<int64_t>(1, work / 100000)));
  return std::max(1, n);
}

}  // namespace

int rasterize_cpu(const RasterArgs& a) {
  const int rows = a.clip_y1 - a.clip_y0, cols = a.clip_x1 - a.clip_x0;
  if (rows <= 0 || cols <= 0) return 1;
  thread_local std::vector<QVert> qbuf;
  if (qbuf.size() < size_t(a.num_vertices)) qbuf.resize(size_t(a.num_vertices));
  QVert* qv = qbuf.data();
  for (int64_t v = 0; v < a.num_vertices; ++v) {
    const float* p = a.vertices + 3 * v;
    qv[v] = quantize_vertex(p[0], p[1], p[2], a.origin_x, a.origin_y);
  }
  const int threads = std::min(auto_threads(a.threads, int64_t(rows) * cols, a.num_faces), rows);
  run_bands(threads, a.clip_y0, a.clip_y1, [&](int, int r0, int r1) { raster_band(a, qv, r0, r1); });
  return threads;
}

void interpolate_cpu(const float* attr, int64_t num_vertices, int channels, const int32_t* faces,
                     int64_t num_faces, const int32_t* tri_id, const float* bary, float* out, int height,
                     int width, int x0, int y0, int x1, int y1, int threads) {
  (void)num_vertices;
  (void)height;
  if (x1 <= x0 || y1 <= y0) return;
  const int64_t pixels = int64_t(x1 - x0) * (y1 - y0);
  int n = threads > 0 ? threads : int(std::min<int64_t>(hardware_threads(), std::max<int64_t>(1, pixels / 100000)));
  const int C = channels;
  run_bands(n, y0, y1, [&](int, int r0, int r1) {
    for (int i = r0; i < r1; ++i) {
      for (int j = x0; j < x1; ++j) {
        const size_t p = size_t(i) * size_t(width) + size_t(j);
        float* o = out + p * size_t(C);
        const int32_t t = tri_id[p];
        if (t < 0 || t >= num_faces) {
          for (int c = 0; c < C; ++c) o[c] = 0.0f;
          continue;
        }
        const float* b = bary + 3 * p;
        const float* a0 = attr + size_t(faces[3 * t]) * C;
        const float* a1 = attr + size_t(faces[3 * t + 1]) * C;
        const float* a2 = attr + size_t(faces[3 * t + 2]) * C;
        for (int c = 0; c < C; ++c) o[c] = b[0] * a0[c] + b[1] * a1[c] + b[2] * a2[c];
      }
    }
  });
}

void vertex_normals_cpu(const float* v, int64_t num_vertices, const int32_t* faces, int64_t num_faces,
                        float* normals) {
  thread_local std::vector<double> acc;
  acc.assign(size_t(num_vertices) * 3, 0.0);
  for (int64_t t = 0; t < num_faces; ++t) {
    const int32_t i0 = faces[3 * t], i1 = faces[3 * t + 1], i2 = faces[3 * t + 2];
    const double ax = double(v[3 * i1]) - v[3 * i0], ay = double(v[3 * i1 + 1]) - v[3 * i0 + 1],
                 az = double(v[3 * i1 + 2]) - v[3 * i0 + 2];
    const double bx = double(v[3 * i2]) - v[3 * i0], by = double(v[3 * i2 + 1]) - v[3 * i0 + 1],
                 bz = double(v[3 * i2 + 2]) - v[3 * i0 + 2];
    // Cross product: its length is twice the area, so the sum is area-weighted.
    const double nx = ay * bz - az * by, ny = az * bx - ax * bz, nz = ax * by - ay * bx;
    if (!std::isfinite(nx) || !std::isfinite(ny) || !std::isfinite(nz)) continue;
    for (const int32_t i : {i0, i1, i2}) {
      acc[3 * size_t(i)] += nx;
      acc[3 * size_t(i) + 1] += ny;
      acc[3 * size_t(i) + 2] += nz;
    }
  }
  for (int64_t i = 0; i < num_vertices; ++i) {
    const double x = acc[3 * i], y = acc[3 * i + 1], z = acc[3 * i + 2];
    const double len = std::sqrt(x * x + y * y + z * z);
    const double inv = len > 0.0 ? 1.0 / len : 0.0;
    normals[3 * i] = float(x * inv);
    normals[3 * i + 1] = float(y * inv);
    normals[3 * i + 2] = float(z * inv);
  }
}

}  // namespace ee
