// Rasterization arithmetic shared by the CPU rasterizer (raster_cpu.cpp) and the CUDA kernels
// (raster_cuda.cu): vertex snapping, triangle setup, the top-left fill rule, depth and barycentric
// weights. Everything here is integer arithmetic or IEEE double operations in a fixed order, so
// the two back ends (and the NumPy reference in tests/test_raster.py) compute bit-identical
// coverage, depth keys and weights.
//
// Conventions
//   * Vertices are in pixel space: x right, y down, z depth (smaller = nearer).
//   * Pixel (row i, column j) of a buffer whose origin is (ox, oy) samples the point
//     (ox + j + 0.5, oy + i + 0.5).
//   * x and y are snapped to a grid of 1/256 pixel (8 sub-pixel bits) with round-half-to-even;
//     coverage is decided exactly on that grid with 64-bit edge functions.
//   * A vertex is usable when x, y, z are finite and the snapped x, y lie within +-2^21 pixels of
//     the buffer origin (the guard band that keeps every product inside int64); a triangle with an
//     unusable vertex, or with zero snapped area, is skipped.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define EE_HD __host__ __device__ __forceinline__
#else
#define EE_HD inline
#endif

namespace ee {

constexpr int kSubBits = 8;                      // sub-pixel bits
constexpr int64_t kSub = int64_t(1) << kSubBits;  // 256 grid steps per pixel
constexpr int64_t kHalf = kSub / 2;               // pixel centre offset on the grid
constexpr int64_t kGuard = int64_t(1) << 29;      // |snapped coordinate| limit (2^21 px)
constexpr int kMaxSide = 32768;                   // largest buffer side

enum Cull : int { kCullNone = 0, kCullBack = 1, kCullFront = 2 };

// A snapped vertex, relative to the buffer origin, in 1/256 pixel units.
struct QVert {
  int32_t x, y;
  float z;
  int32_t ok;  // 1 when usable
};

// Floor / ceil of a / 256 for signed values (arithmetic shift is a floor division).
EE_HD int64_t floor_sub(int64_t a) { return a >> kSubBits; }
EE_HD int64_t ceil_sub(int64_t a) { return -((-a) >> kSubBits); }

EE_HD QVert quantize_vertex(float x, float y, float z, int64_t ox, int64_t oy) {
  QVert q;
  q.x = 0;
  q.y = 0;
  q.z = z;
  q.ok = 0;
  const double sx = double(x) * double(kSub);  // exact: power-of-two scaling
  const double sy = double(y) * double(kSub);
  const double lim = 1099511627776.0;  // 2^40: keeps the int64 conversion defined
  if (!(fabs(sx) <= lim) || !(fabs(sy) <= lim) || !(fabs(double(z)) <= 3.0e38)) return q;  // NaN fails too
  const int64_t qx = int64_t(rint(sx)) - ox * kSub;  // rint: round half to even
  const int64_t qy = int64_t(rint(sy)) - oy * kSub;
  if (qx < -kGuard || qx > kGuard || qy < -kGuard || qy > kGuard) return q;
  q.x = int32_t(qx);
  q.y = int32_t(qy);
  q.ok = 1;
  return q;
}

// Edge function k (k = 0, 1, 2 is the weight of vertex k) at grid point (px, py):
//   E_k = a[k] * px + b[k] * py + c[k]  >= bias[k]  <=>  the sample is covered by edge k.
// Orientation is normalised so that the interior has E >= 0; area = E0 + E1 + E2 > 0.
struct TriSetup {
  int64_t a[3], b[3], c[3];
  int64_t bias[3];
  int64_t area;
  double inv_area;
  double zs[3];  // z_k / area
  float z[3];
  int32_t j0, j1, i0, i1;  // pixel range [j0, j1) x [i0, i1), already clipped
};

// Pixel range [j0, j1) x [i0, i1) whose sample points fall inside the bounding box of the snapped
// triangle, clipped to [cx0, cx1) x [cy0, cy1); false when it is empty.
EE_HD bool triangle_box(const QVert& v0, const QVert& v1, const QVert& v2, int cx0, int cy0, int cx1, int cy1,
                        int32_t box[4]) {
  const int64_t x0 = v0.x, y0 = v0.y, x1 = v1.x, y1 = v1.y, x2 = v2.x, y2 = v2.y;
  const int64_t minx = x0 < x1 ? (x0 < x2 ? x0 : x2) : (x1 < x2 ? x1 : x2);
  const int64_t maxx = x0 > x1 ? (x0 > x2 ? x0 : x2) : (x1 > x2 ? x1 : x2);
  const int64_t miny = y0 < y1 ? (y0 < y2 ? y0 : y2) : (y1 < y2 ? y1 : y2);
  const int64_t maxy = y0 > y1 ? (y0 > y2 ? y0 : y2) : (y1 > y2 ? y1 : y2);
  int64_t j0 = ceil_sub(minx - kHalf), j1 = floor_sub(maxx - kHalf) + 1;
  int64_t i0 = ceil_sub(miny - kHalf), i1 = floor_sub(maxy - kHalf) + 1;
  if (j0 < cx0) j0 = cx0;
  if (j1 > cx1) j1 = cx1;
  if (i0 < cy0) i0 = cy0;
  if (i1 > cy1) i1 = cy1;
  box[0] = int32_t(j0);
  box[1] = int32_t(j1);
  box[2] = int32_t(i0);
  box[3] = int32_t(i1);
  return j0 < j1 && i0 < i1;
}

// Signed area (twice the area, in grid units squared) of the snapped triangle: positive when it
// is clockwise on screen (y down).
EE_HD int64_t signed_area(const QVert& v0, const QVert& v1, const QVert& v2) {
  const int64_t x0 = v0.x, y0 = v0.y, x1 = v1.x, y1 = v1.y, x2 = v2.x, y2 = v2.y;
  return (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0);
}

// Culling decision for a non-zero signed area (see setup_triangle).
EE_HD bool culled(int cull, int64_t area) {
  return (cull == kCullBack && area > 0) || (cull == kCullFront && area < 0);
}

// Edge functions, fill-rule biases and depth factors of a usable triangle with non-zero signed
// area `area` (signed_area); the pixel range is set by the caller.
EE_HD void setup_edges(const QVert& v0, const QVert& v1, const QVert& v2, int64_t area, TriSetup* s) {
  const int64_t x0 = v0.x, y0 = v0.y, x1 = v1.x, y1 = v1.y, x2 = v2.x, y2 = v2.y;
  const int64_t sg = area > 0 ? 1 : -1;
  const int64_t ax[3] = {x1, x2, x0}, ay[3] = {y1, y2, y0};  // edge k runs from vertex k+1 to k+2
  const int64_t bx[3] = {x2, x0, x1}, by[3] = {y2, y0, y1};
  for (int k = 0; k < 3; ++k) {
    const int64_t dx = sg * (bx[k] - ax[k]), dy = sg * (by[k] - ay[k]);
    // E(p) = dx * (py - ay) - dy * (px - ax), sign-normalised.
    s->a[k] = -dy;
    s->b[k] = dx;
    s->c[k] = dy * ax[k] - dx * ay[k];
    // Top-left rule (y down): an edge owns its boundary samples when it is a left edge
    // (dy < 0) or a top edge (dy == 0, dx > 0). Reversing an edge flips ownership, so a
    // sample on an edge shared by two triangles belongs to exactly one of them.
    const bool owned = (dy < 0) || (dy == 0 && dx > 0);
    s->bias[k] = owned ? 0 : 1;
  }
  s->area = sg * area;
  s->inv_area = 1.0 / double(s->area);
  s->z[0] = v0.z;
  s->z[1] = v1.z;
  s->z[2] = v2.z;
#if defined(__CUDA_ARCH__)
  s->zs[0] = __dmul_rn(double(v0.z), s->inv_area);
  s->zs[1] = __dmul_rn(double(v1.z), s->inv_area);
  s->zs[2] = __dmul_rn(double(v2.z), s->inv_area);
#else
  s->zs[0] = double(v0.z) * s->inv_area;
  s->zs[1] = double(v1.z) * s->inv_area;
  s->zs[2] = double(v2.z) * s->inv_area;
#endif
}

// Builds the setup of triangle (v0, v1, v2) clipped to the pixel rectangle [cx0, cx1) x [cy0, cy1).
// Returns false when the triangle is unusable, culled, degenerate or misses the rectangle.
// Cull: kCullBack drops triangles that are clockwise on screen (pixel-space signed area
// (v1-v0) x (v2-v0) > 0 with y down), kCullFront drops counter-clockwise ones; a mesh whose
// triangles are counter-clockwise seen from outside (FLAME) shows its front faces
// counter-clockwise on screen.
EE_HD bool setup_triangle(const QVert& v0, const QVert& v1, const QVert& v2, int cull, int cx0,
                          int cy0, int cx1, int cy1, TriSetup* s) {
  if (!(v0.ok & v1.ok & v2.ok)) return false;
  int32_t box[4];
  if (!triangle_box(v0, v1, v2, cx0, cy0, cx1, cy1, box)) return false;
  const int64_t area = signed_area(v0, v1, v2);
  if (area == 0 || culled(cull, area)) return false;
  setup_edges(v0, v1, v2, area, s);
  s->j0 = box[0];
  s->j1 = box[1];
  s->i0 = box[2];
  s->i1 = box[3];
  return true;
}

EE_HD int64_t sample_coord(int pixel) { return int64_t(pixel) * kSub + kHalf; }

// Edge values at pixel (row i, column j).
EE_HD void edges_at(const TriSetup& s, int j, int i, int64_t e[3]) {
  const int64_t px = sample_coord(j), py = sample_coord(i);
  for (int k = 0; k < 3; ++k) e[k] = s.a[k] * px + s.b[k] * py + s.c[k];
}

EE_HD bool covered(const TriSetup& s, const int64_t e[3]) {
  return ((e[0] - s.bias[0]) | (e[1] - s.bias[1]) | (e[2] - s.bias[2])) >= 0;
}

// Depth key (float) of a covered sample and its barycentric weights (double):
//   zs_k  = double(z_k) * (1 / area)                      (per triangle, TriSetup::zs)
//   depth = float((e0 * zs_0 + e1 * zs_1) + e2 * zs_2) + 0 (the +0 turns -0 into +0 so that the
//           packed GPU key and the CPU float comparison agree on ties)
//   w_k   = double(e_k) * (1 / area)
#if defined(__CUDA_ARCH__)
EE_HD float depth_at(const TriSetup& s, const int64_t e[3]) {
  const double d = __dadd_rn(__dadd_rn(__dmul_rn(double(e[0]), s.zs[0]), __dmul_rn(double(e[1]), s.zs[1])),
                             __dmul_rn(double(e[2]), s.zs[2]));
  return __fadd_rn(__double2float_rn(d), 0.0f);
}
EE_HD void weights_at(const TriSetup& s, const int64_t e[3], double w[3]) {
  w[0] = __dmul_rn(double(e[0]), s.inv_area);
  w[1] = __dmul_rn(double(e[1]), s.inv_area);
  w[2] = __dmul_rn(double(e[2]), s.inv_area);
}
#else
EE_HD float depth_at(const TriSetup& s, const int64_t e[3]) {
  const double d = (double(e[0]) * s.zs[0] + double(e[1]) * s.zs[1]) + double(e[2]) * s.zs[2];
  return float(d) + 0.0f;
}
EE_HD void weights_at(const TriSetup& s, const int64_t e[3], double w[3]) {
  w[0] = double(e[0]) * s.inv_area;
  w[1] = double(e[1]) * s.inv_area;
  w[2] = double(e[2]) * s.inv_area;
}
#endif

// Order-preserving map of a float to uint32 (for the packed depth/id key of the CUDA path).
EE_HD uint32_t ordered_float_bits(uint32_t bits) {
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

}  // namespace ee
