// CPU rasterizer: bands of rows processed by std::thread workers; each worker walks all triangles
// (with cull = none, those facing the viewer first, then the others with an explicit tie check),
// so every pixel gets the nearest depth with ties going to the lowest triangle index, regardless
// of the band split.
#include "raster_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "raster_common.h"
#include "raster_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define EE_HAVE_AVX2_PATH 1
#else
#define EE_HAVE_AVX2_PATH 0
#endif

namespace ee {

int hardware_threads() {
  // Cached: glibc answers hardware_concurrency by reading sysfs, about 8 us per call.
  static const int n = [] {
    const unsigned c = std::thread::hardware_concurrency();
    return c == 0 ? 1 : int(c);
  }();
  return n;
}

#if EE_HAVE_AVX2_PATH
bool cpu_has_avx2();
#endif

namespace {
std::atomic<bool> g_simd_enabled{true};
}  // namespace

bool set_simd_enabled(bool enabled) { return g_simd_enabled.exchange(enabled); }

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

// Depth test of a covered sample (pixel index p, edge values e) and, when the triangle wins, the
// stores of its depth, id and weights. kTie: an equal depth wins when the stored triangle's index
// is higher (ties go to the lowest index when triangles are not visited in index order).
template <bool kTie>
__attribute__((always_inline)) inline void depth_test_and_store(const TriSetup& s, const int64_t e[3], size_t p,
                                                                int32_t id, int32_t* __restrict tri_id,
                                                                float* __restrict depth, float* __restrict bary) {
  const float d = depth_at(s, e);
  if (__builtin_expect(d < depth[p], 1) || (kTie && d == depth[p] && id < tri_id[p])) {
    double w[3];
    weights_at(s, e, w);
    depth[p] = d;
    tri_id[p] = id;
    float* b = bary + 3 * p;
    b[0] = float(w[0]);
    b[1] = float(w[1]);
    b[2] = float(w[2]);
  }
}

// Pixel loop of one set-up triangle. Edge values are stepped with the fill-rule bias already
// subtracted, so the coverage test is a sign test of three registers; the bias is added back for
// the weights. kTie: the triangle may be visited after a higher-indexed one (second pass), so an
// equal depth wins when the stored triangle's index is higher (ties go to the lowest index).
template <bool kTie>
inline void raster_triangle(const TriSetup& s, int32_t id, float zlo, int W, int32_t* __restrict tri_id,
                            float* __restrict depth, float* __restrict bary) {
  const int64_t px = sample_coord(s.j0), py = sample_coord(s.i0);
  const int64_t b0 = s.bias[0], b1 = s.bias[1], b2 = s.bias[2];
  int64_t r0e = s.a[0] * px + s.b[0] * py + s.c[0] - b0;
  int64_t r1e = s.a[1] * px + s.b[1] * py + s.c[1] - b1;
  int64_t r2e = s.a[2] * px + s.b[2] * py + s.c[2] - b2;
  const int64_t sx0 = s.a[0] * kSub, sx1 = s.a[1] * kSub, sx2 = s.a[2] * kSub;
  const int64_t sy0 = s.b[0] * kSub, sy1 = s.b[1] * kSub, sy2 = s.b[2] * kSub;
  for (int i = s.i0; i < s.i1; ++i) {
    int64_t e0 = r0e, e1 = r1e, e2 = r2e;
    const size_t row = size_t(i) * size_t(W);
    for (int j = s.j0; j < s.j1; ++j) {
      // Samples already nearer than the triangle's lowest possible depth are skipped early.
      if ((e0 | e1 | e2) >= 0 && (kTie ? depth[row + size_t(j)] >= zlo : depth[row + size_t(j)] > zlo)) {
        const int64_t e[3] = {e0 + b0, e1 + b1, e2 + b2};
        depth_test_and_store<kTie>(s, e, row + size_t(j), id, tri_id, depth, bary);
      }
      e0 += sx0;
      e1 += sx1;
      e2 += sx2;
    }
    r0e += sy0;
    r1e += sy1;
    r2e += sy2;
  }
}

// Per-triangle kernels of the band loop (raster_band_t): the portable scalar one, and on x86-64
// with AVX2 one that covers the box in blocks of 8 x 8 samples (a single block for every FLAME
// triangle at crop size): the coverage of a block is a 64-bit mask computed with 8-lane integer
// edge values, then only the covered samples are visited. Both give bit-identical results: the same integer edge values
// and the same depth and weight arithmetic (depth_at, weights_at).
// A triangle drawn in the band's second pass: its index, pixel box (j0, j1, i0, i1, clipped to the
// band) and depth floor (depth_floor).
struct Deferred {
  int32_t t;
  int32_t box[4];
  float zlo;
};

// A band's second-pass triangles: large boxes facing the viewer, and those facing away.
struct BandLists {
  std::vector<Deferred> large, away;
};

// Conservative lower bound of any depth a triangle can produce (the weights are >= 0 and sum to
// 1 within 1e-15; 1e-6 of the magnitude covers that rounding).
inline float depth_floor(float z0, float z1, float z2) {
  const float zmin = std::min(z0, std::min(z1, z2));
  const float zmag = std::max(std::fabs(z0), std::max(std::fabs(z1), std::fabs(z2)));
  return zmin - 1e-6f * zmag;
}

// bary[p] = (0, 0, 0) for the pixels p = row + j, x0 <= j < x1, whose tri_id is -1.
inline void zero_empty_bary(const int32_t* tri_id, float* bary, size_t row, int x0, int x1) {
  for (int j = x0; j < x1; ++j) {
    if (tri_id[row + size_t(j)] < 0) {
      float* b = bary + 3 * (row + size_t(j));
      b[0] = b[1] = b[2] = 0.0f;
    }
  }
}

struct ScalarKernel {
  static constexpr bool kDeferLarge = false;  // see Avx2Kernel
  static inline void zero_empty(const int32_t* tri_id, float* bary, size_t row, int x0, int x1) {
    zero_empty_bary(tri_id, bary, row, x0, x1);
  }
  // The second pass's triangles that passed the occlusion test (see Avx2Kernel::draw_later).
  template <class Late>
  static inline void draw_later(const QVert*, const int32_t*, const Deferred* recs, size_t n, int, int32_t*, float*,
                                float*, Late&& late) {
    for (size_t i = 0; i < n; ++i) late(recs[i]);
  }
  // Triangles triaged in groups (see Avx2Kernel::triage): none, the band loop does them all.
  template <class First, class Away>
  static inline int64_t triage(const QVert*, const int32_t*, int64_t, int, int, int, int, int, int,
                               int32_t*, float*, float*, First&&, Away&&) {
    return 0;
  }
  // True when every sample of the box [j0, j1) x [i0, i1) holds a depth strictly below zlo, so a
  // triangle whose depths are all >= zlo cannot win any of them.
  static inline bool box_nearer(const float* depth, int W, const int32_t box[4], float zlo) {
    float far = -std::numeric_limits<float>::infinity();
    for (int i = box[2]; i < box[3]; ++i) {
      const float* drow = depth + size_t(i) * size_t(W);
      for (int j = box[0]; j < box[1]; ++j) far = std::max(far, drow[j]);
    }
    return far < zlo;
  }
  template <bool kTie>
  static inline void draw(const TriSetup& s, int32_t id, float zlo, int W, int32_t* __restrict tri_id,
                          float* __restrict depth, float* __restrict bary) {
    raster_triangle<kTie>(s, id, zlo, W, tri_id, depth, bary);
  }
};

#if EE_HAVE_AVX2_PATH
// Splits eight consecutive 3-element records, held in order by v0 (elements 0-7), v1 (8-15) and
// v2 (16-23), into their first (c0), second (c1) and third (c2) members, record k in lane k.
__attribute__((target("avx2"), always_inline)) inline void deinterleave3_avx2(__m256 v0, __m256 v1, __m256 v2,
                                                                            __m256& c0, __m256& c1, __m256& c2) {
  const __m256i i0 = _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5), i1 = _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6),
                i2 = _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7);
  c0 = _mm256_blend_ps(_mm256_blend_ps(_mm256_permutevar8x32_ps(v0, i0), _mm256_permutevar8x32_ps(v1, i0), 0x38),
                       _mm256_permutevar8x32_ps(v2, i0), 0xc0);
  c1 = _mm256_blend_ps(_mm256_blend_ps(_mm256_permutevar8x32_ps(v0, i1), _mm256_permutevar8x32_ps(v1, i1), 0x18),
                       _mm256_permutevar8x32_ps(v2, i1), 0xe0);
  c2 = _mm256_blend_ps(_mm256_blend_ps(_mm256_permutevar8x32_ps(v0, i2), _mm256_permutevar8x32_ps(v1, i2), 0x1c),
                       _mm256_permutevar8x32_ps(v2, i2), 0xe0);
}

__attribute__((target("avx2"), always_inline)) inline void deinterleave3_avx2(__m256i v0, __m256i v1, __m256i v2,
                                                                            __m256i& c0, __m256i& c1, __m256i& c2) {
  __m256 f0, f1, f2;
  deinterleave3_avx2(_mm256_castsi256_ps(v0), _mm256_castsi256_ps(v1), _mm256_castsi256_ps(v2), f0, f1, f2);
  c0 = _mm256_castps_si256(f0);
  c1 = _mm256_castps_si256(f1);
  c2 = _mm256_castps_si256(f2);
}

// Lanes (all ones) holding a small triangle: pixel box of at most 8 x 8 samples and vertices
// within 16 pixels of each other. Every coordinate difference is then at most 2^12 grid steps, so
// the edge values at the box corner and the area are exact int32 products, and the int32 range
// bound of Avx2Kernel::draw holds.
__attribute__((target("avx2"), always_inline)) inline __m256i small8(__m256i minx, __m256i maxx, __m256i miny,
                                                                   __m256i maxy, __m256i j0, __m256i j1, __m256i i0,
                                                                   __m256i i1) {
  const __m256i span = _mm256_set1_epi32(16 * kSub + 1), nine = _mm256_set1_epi32(9);
  return _mm256_and_si256(
      _mm256_and_si256(_mm256_cmpgt_epi32(span, _mm256_sub_epi32(maxx, minx)), _mm256_cmpgt_epi32(span, _mm256_sub_epi32(maxy, miny))),
      _mm256_and_si256(_mm256_cmpgt_epi32(nine, _mm256_sub_epi32(j1, j0)), _mm256_cmpgt_epi32(nine, _mm256_sub_epi32(i1, i0))));
}

// Set-up of up to eight small triangles (small8), triangle l in lane l: for edge k, the edge
// value at the box corner with the fill-rule bias subtracted (r), its steps per column (sx) and
// row (sy), the bias, and the depth factors 1 / area (inv) and z_k / area (zs); the arithmetic
// of setup_edges.
struct SmallSetup8 {
  alignas(32) int32_t r[3][8], sx[3][8], sy[3][8], bias[3][8];
  alignas(32) double inv[8], zs[3][8];
};

// x[k], y[k]: snapped vertex k (grid units); z[k] its depth; (j0, i0): the box corner (pixels).
__attribute__((target("avx2"), always_inline)) inline void setup_small8(const __m256i x[3], const __m256i y[3],
                                                                      const __m256 z[3], __m256i j0, __m256i i0,
                                                                      SmallSetup8* o) {
  const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(int32_t(kHalf));
  const __m256i area = _mm256_sub_epi32(_mm256_mullo_epi32(_mm256_sub_epi32(x[1], x[0]), _mm256_sub_epi32(y[2], y[0])),
                                        _mm256_mullo_epi32(_mm256_sub_epi32(y[1], y[0]), _mm256_sub_epi32(x[2], x[0])));
  const __m256i sg = _mm256_blendv_epi8(_mm256_set1_epi32(-1), one, _mm256_cmpgt_epi32(area, zero));  // orientation
  const __m256i px = _mm256_add_epi32(_mm256_slli_epi32(j0, kSubBits), half);
  const __m256i py = _mm256_add_epi32(_mm256_slli_epi32(i0, kSubBits), half);
  for (int k = 0; k < 3; ++k) {
    const int ka = (k + 1) % 3, kb = (k + 2) % 3;  // edge k runs from vertex k+1 to vertex k+2
    const __m256i dx = _mm256_sign_epi32(_mm256_sub_epi32(x[kb], x[ka]), sg);
    const __m256i dy = _mm256_sign_epi32(_mm256_sub_epi32(y[kb], y[ka]), sg);
    const __m256i e = _mm256_sub_epi32(_mm256_mullo_epi32(dx, _mm256_sub_epi32(py, y[ka])),
                                       _mm256_mullo_epi32(dy, _mm256_sub_epi32(px, x[ka])));
    const __m256i owned = _mm256_or_si256(_mm256_cmpgt_epi32(zero, dy),
                                          _mm256_and_si256(_mm256_cmpeq_epi32(dy, zero), _mm256_cmpgt_epi32(dx, zero)));
    const __m256i bias = _mm256_andnot_si256(owned, one);
    _mm256_store_si256(reinterpret_cast<__m256i*>(o->bias[k]), bias);
    _mm256_store_si256(reinterpret_cast<__m256i*>(o->r[k]), _mm256_sub_epi32(e, bias));
    _mm256_store_si256(reinterpret_cast<__m256i*>(o->sx[k]), _mm256_sub_epi32(zero, _mm256_slli_epi32(dy, kSubBits)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(o->sy[k]), _mm256_slli_epi32(dx, kSubBits));
  }
  const __m256i area_abs = _mm256_abs_epi32(area);
  const __m256d one_d = _mm256_set1_pd(1.0);
  const __m256d inv_lo = _mm256_div_pd(one_d, _mm256_cvtepi32_pd(_mm256_castsi256_si128(area_abs)));
  const __m256d inv_hi = _mm256_div_pd(one_d, _mm256_cvtepi32_pd(_mm256_extracti128_si256(area_abs, 1)));
  _mm256_store_pd(o->inv, inv_lo);
  _mm256_store_pd(o->inv + 4, inv_hi);
  for (int k = 0; k < 3; ++k) {
    _mm256_store_pd(o->zs[k], _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(z[k])), inv_lo));
    _mm256_store_pd(o->zs[k] + 4, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(z[k], 1)), inv_hi));
  }
}

// x, y, z of the snapped vertices idx[0], idx[stride], ..., idx[7 * stride] in the lanes: eight
// 16-byte loads and a transpose (several times faster than gathers on Zen 3).
static_assert(sizeof(QVert) == 16, "load_vertices8 reads a vertex as one 16-byte record (x, y, z, ok)");
__attribute__((target("avx2"), always_inline)) inline void load_vertices8(const QVert* qv, const int32_t* idx,
                                                                        int stride, __m256i& x, __m256i& y,
                                                                        __m256& z) {
  const auto q = [&](int l) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(qv + idx[stride * l])); };
  const __m256i a0 = _mm256_inserti128_si256(_mm256_castsi128_si256(q(0)), q(4), 1);
  const __m256i a1 = _mm256_inserti128_si256(_mm256_castsi128_si256(q(1)), q(5), 1);
  const __m256i a2 = _mm256_inserti128_si256(_mm256_castsi128_si256(q(2)), q(6), 1);
  const __m256i a3 = _mm256_inserti128_si256(_mm256_castsi128_si256(q(3)), q(7), 1);
  const __m256i t0 = _mm256_unpacklo_epi32(a0, a1), t1 = _mm256_unpacklo_epi32(a2, a3);
  const __m256i t2 = _mm256_unpackhi_epi32(a0, a1), t3 = _mm256_unpackhi_epi32(a2, a3);
  x = _mm256_unpacklo_epi64(t0, t1);
  y = _mm256_unpackhi_epi64(t0, t1);
  z = _mm256_castsi256_ps(_mm256_unpacklo_epi64(t2, t3));
}

struct Avx2Kernel {
  // Boxes larger than 8 x 8 samples are drawn in the band's second pass (with the tie
  // check, so the result does not depend on that order), which keeps the first pass's loop free
  // of that code.
  static constexpr bool kDeferLarge = true;
  // zero_empty_bary, 8 pixels per test (runs of empty pixels: three 32-byte stores).
  __attribute__((target("avx2"))) static inline void zero_empty(const int32_t* tri_id, float* bary, size_t row, int x0,
                                                                int x1) {
    const __m256i none = _mm256_set1_epi32(-1);
    const __m256 zero = _mm256_setzero_ps();
    int j = x0;
    for (; j + 8 <= x1; j += 8) {
      const size_t p = row + size_t(j);
      const unsigned m = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(
          _mm256_cmpeq_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tri_id + p)), none))));
      if (m == 0xffu) {
        _mm256_storeu_ps(bary + 3 * p, zero);
        _mm256_storeu_ps(bary + 3 * p + 8, zero);
        _mm256_storeu_ps(bary + 3 * p + 16, zero);
      } else if (m) {
        zero_empty_bary(tri_id, bary, row, j, j + 8);
      }
    }
    zero_empty_bary(tri_id, bary, row, j, x1);
  }
  // The band loop's triage of triangles 0 .. 8 * floor(F / 8) - 1, eight at a time, with the
  // same integer tests: usable vertices (rasterize_cpu marks an unusable vertex with y =
  // INT32_MIN), pixel box clipped to [cx0, cx1) x [cy0, cy1) not empty, signed area (exact
  // 64-bit products) non-zero and not culled. In index order, first(t, box, area) receives the
  // triangles of the first pass and away(t, box, zlo) those facing away (cull = none); small first-pass
  // triangles are set up in the lanes too and drawn here (see below). Returns the number of
  // triangles triaged.
  template <class First, class Away>
  __attribute__((target("avx2"))) static inline int64_t triage(const QVert* qv, const int32_t* faces, int64_t nf,
                                                               int cull, int cx0, int cy0, int cx1,
                                                               int cy1, int W, int32_t* __restrict tri_id,
                                                               float* __restrict depth, float* __restrict bary,
                                                               First&& first, Away&& away) {
    const int64_t n8 = nf & ~int64_t(7);
    const __m256i unusable = _mm256_set1_epi32(INT32_MIN);
    const __m256i half = _mm256_set1_epi32(int32_t(kHalf)), one = _mm256_set1_epi32(1);
    const __m256i vx0 = _mm256_set1_epi32(cx0), vx1 = _mm256_set1_epi32(cx1);
    const __m256i vy0 = _mm256_set1_epi32(cy0), vy1 = _mm256_set1_epi32(cy1);
    const __m256i zero = _mm256_setzero_si256();
    for (int64_t t = 0; t < n8; t += 8) {
      __m256i X[3], Y[3];
      __m256 Zv[3];
      const int32_t* ft = faces + 3 * t;
      for (int k = 0; k < 3; ++k) load_vertices8(qv, ft + k, 3, X[k], Y[k], Zv[k]);
      const __m256i x0 = X[0], x1 = X[1], x2 = X[2], y0 = Y[0], y1 = Y[1], y2 = Y[2];
      const __m256i bad = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi32(y0, unusable), _mm256_cmpeq_epi32(y1, unusable)),
                                          _mm256_cmpeq_epi32(y2, unusable));
      const __m256i minx = _mm256_min_epi32(x0, _mm256_min_epi32(x1, x2)), maxx = _mm256_max_epi32(x0, _mm256_max_epi32(x1, x2));
      const __m256i miny = _mm256_min_epi32(y0, _mm256_min_epi32(y1, y2)), maxy = _mm256_max_epi32(y0, _mm256_max_epi32(y1, y2));
      // Pixel box (triangle_box): j0 = ceil((min x - half) / 256), j1 = floor((max x - half) / 256) + 1.
      const __m256i j0 = _mm256_max_epi32(vx0, _mm256_sub_epi32(zero, _mm256_srai_epi32(_mm256_sub_epi32(half, minx), kSubBits)));
      const __m256i j1 = _mm256_min_epi32(vx1, _mm256_add_epi32(_mm256_srai_epi32(_mm256_sub_epi32(maxx, half), kSubBits), one));
      const __m256i i0 = _mm256_max_epi32(vy0, _mm256_sub_epi32(zero, _mm256_srai_epi32(_mm256_sub_epi32(half, miny), kSubBits)));
      const __m256i i1 = _mm256_min_epi32(vy1, _mm256_add_epi32(_mm256_srai_epi32(_mm256_sub_epi32(maxy, half), kSubBits), one));
      const __m256i live = _mm256_andnot_si256(bad, _mm256_and_si256(_mm256_cmpgt_epi32(j1, j0), _mm256_cmpgt_epi32(i1, i0)));
      if (_mm256_testz_si256(live, live)) continue;
      // Signed area (x1 - x0)(y2 - y0) - (y1 - y0)(x2 - x0): differences fit int32 (|coordinate|
      // <= 2^29), products are exact 64-bit; even triangles in the low halves, odd ones shifted down.
      const __m256i dx1 = _mm256_sub_epi32(x1, x0), dy1 = _mm256_sub_epi32(y1, y0);
      const __m256i dx2 = _mm256_sub_epi32(x2, x0), dy2 = _mm256_sub_epi32(y2, y0);
      const __m256i ae = _mm256_sub_epi64(_mm256_mul_epi32(dx1, dy2), _mm256_mul_epi32(dy1, dx2));
      const __m256i ao = _mm256_sub_epi64(_mm256_mul_epi32(_mm256_srli_epi64(dx1, 32), _mm256_srli_epi64(dy2, 32)),
                                          _mm256_mul_epi32(_mm256_srli_epi64(dy1, 32), _mm256_srli_epi64(dx2, 32)));
      const __m256i pos = _mm256_blend_epi32(_mm256_cmpgt_epi64(ae, zero), _mm256_cmpgt_epi64(ao, zero), 0xaa);
      const __m256i neg = _mm256_blend_epi32(_mm256_cmpgt_epi64(zero, ae), _mm256_cmpgt_epi64(zero, ao), 0xaa);
      // Clockwise on screen (pos) faces away; see setup_triangle.
      const __m256i keep = cull == kCullBack ? neg : cull == kCullFront ? pos : _mm256_or_si256(pos, neg);
      const __m256i front = cull == kCullNone ? neg : keep;
      const unsigned live8 = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(live, keep))));
      if (!live8) continue;
      unsigned mf = live8 & unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(front)));
      unsigned ma = live8 & ~mf;
      alignas(32) int32_t bj0[8], bj1[8], bi0[8], bi1[8];
      alignas(32) int64_t area[2][4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(bj0), j0);
      _mm256_store_si256(reinterpret_cast<__m256i*>(bj1), j1);
      _mm256_store_si256(reinterpret_cast<__m256i*>(bi0), i0);
      _mm256_store_si256(reinterpret_cast<__m256i*>(bi1), i1);
      _mm256_store_si256(reinterpret_cast<__m256i*>(area[0]), ae);
      _mm256_store_si256(reinterpret_cast<__m256i*>(area[1]), ao);
      // Small first-pass triangles (small8) are set up in the lanes and drawn here; others go to
      // first().
      const unsigned fast = mf & unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(small8(minx, maxx, miny, maxy, j0, j1, i0, i1))));
      alignas(32) float zlo[8];
      __m256 z[3];
      z[0] = Zv[0];
      z[1] = Zv[1];
      z[2] = Zv[2];
      if (ma) {  // depth_floor in the lanes
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        const __m256 zmin = _mm256_min_ps(z[0], _mm256_min_ps(z[1], z[2]));
        const __m256 zmag = _mm256_max_ps(_mm256_and_ps(z[0], absmask),
                                          _mm256_max_ps(_mm256_and_ps(z[1], absmask), _mm256_and_ps(z[2], absmask)));
        _mm256_store_ps(zlo, _mm256_sub_ps(zmin, _mm256_mul_ps(_mm256_set1_ps(1e-6f), zmag)));
      }
      SmallSetup8 ss;
      if (fast) {
        const __m256i xs[3] = {x0, x1, x2}, ys[3] = {y0, y1, y2};
        setup_small8(xs, ys, z, j0, i0, &ss);
      }
      while (mf) {
        const int l = __builtin_ctz(mf);
        mf &= mf - 1;
        if ((fast >> l) & 1u) {
          draw_small<false>(ss, l, int32_t(t + l), bj1[l] - bj0[l], bi1[l] - bi0[l],
                            size_t(bi0[l]) * size_t(W) + size_t(bj0[l]), 0.0f, W, tri_id, depth, bary);
        } else {
          const int32_t box[4] = {bj0[l], bj1[l], bi0[l], bi1[l]};
          first(t + l, box, area[l & 1][l >> 1]);
        }
      }
      while (ma) {
        const int l = __builtin_ctz(ma);
        ma &= ma - 1;
        const int32_t box[4] = {bj0[l], bj1[l], bi0[l], bi1[l]};
        away(t + l, box, zlo[l]);
      }
    }
    return n8;
  }
  // ScalarKernel::box_nearer, 8 columns per compare; without branches for boxes of at most 8 x 8
  // (rows past the box repeat its last row).
  __attribute__((target("avx2"))) static inline bool box_nearer(const float* depth, int W, const int32_t box[4],
                                                                float zlo) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 zl = _mm256_set1_ps(zlo);
    const int bw = box[1] - box[0], bh = box[3] - box[2];
    if (bw <= 8 && bh <= 8) {
      const __m256i inbox = _mm256_cmpgt_epi32(_mm256_set1_epi32(bw), lane);
      const float* p = depth + size_t(box[2]) * size_t(W) + size_t(box[0]);
      __m256 any = _mm256_setzero_ps();
      for (int r = 0; r < 8; ++r) {
        const __m256 d = _mm256_maskload_ps(p + size_t(r < bh ? r : bh - 1) * size_t(W), inbox);
        any = _mm256_or_ps(any, _mm256_cmp_ps(d, zl, _CMP_GE_OQ));
      }
      return _mm256_testz_si256(_mm256_castps_si256(any), inbox);
    }
    for (int j = box[0]; j < box[1]; j += 8) {
      const __m256i inbox = _mm256_cmpgt_epi32(_mm256_set1_epi32(box[1] - j), lane);
      __m256 any = _mm256_setzero_ps();
      for (int i = box[2]; i < box[3]; ++i) {
        const __m256 d = _mm256_maskload_ps(depth + size_t(i) * size_t(W) + size_t(j), inbox);
        any = _mm256_or_ps(any, _mm256_cmp_ps(d, zl, _CMP_GE_OQ));
      }
      if (!_mm256_testz_si256(_mm256_castps_si256(any), inbox)) return false;
    }
    return true;
  }
  template <bool kTie>
  __attribute__((target("avx2"))) static inline void draw(const TriSetup& s, int32_t id, float zlo, int W,
                                                           int32_t* __restrict tri_id, float* __restrict depth,
                                                           float* __restrict bary) {
    // The box is covered in blocks of 8 x 8 samples (one block for every FLAME triangle at crop
    // size). Exactness: edge values (bias subtracted) at every sample of the box padded to whole
    // blocks are bounded by |E(j0, i0)| + (|a| * (width + 7) + |b| * (height + 7)) * 256; when that
    // is below 2^30 for the three edges they, their steps and the bias added back are exact in
    // int32 lanes. Otherwise (a long sliver clipped to a small box, or a very large triangle) the
    // scalar kernel draws it.
    const int bw = s.j1 - s.j0, bh = s.i1 - s.i0;
    const int64_t px = sample_coord(s.j0), py = sample_coord(s.i0);
    int64_t r[3];
    bool fits = true;
    for (int k = 0; k < 3; ++k) {
      r[k] = s.a[k] * px + s.b[k] * py + s.c[k] - s.bias[k];
      const int64_t bound = (r[k] < 0 ? -r[k] : r[k]) + (s.a[k] < 0 ? -s.a[k] : s.a[k]) * (int64_t(bw + 7) * kSub) +
                            (s.b[k] < 0 ? -s.b[k] : s.b[k]) * (int64_t(bh + 7) * kSub);
      fits &= bound < (int64_t(1) << 30);
    }
    if (!fits) {
      raster_triangle<kTie>(s, id, zlo, W, tri_id, depth, bary);
      return;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ax0 = _mm256_mullo_epi32(_mm256_set1_epi32(int32_t(s.a[0] * kSub)), lane);
    const __m256i ax1 = _mm256_mullo_epi32(_mm256_set1_epi32(int32_t(s.a[1] * kSub)), lane);
    const __m256i ax2 = _mm256_mullo_epi32(_mm256_set1_epi32(int32_t(s.a[2] * kSub)), lane);
    const __m256i sy0 = _mm256_set1_epi32(int32_t(s.b[0] * kSub)), sy1 = _mm256_set1_epi32(int32_t(s.b[1] * kSub)),
                  sy2 = _mm256_set1_epi32(int32_t(s.b[2] * kSub));
    if (bw <= 8 && bh <= 8) {  // a single block, the common case: no block loops
      draw_block<kTie>(s, id, W, tri_id, depth, bary, r[0], r[1], r[2], bw, bh, ax0, ax1, ax2, sy0, sy1, sy2,
                       size_t(s.i0) * size_t(W) + size_t(s.j0), zlo);
      return;
    }
    for (int by = 0; by < bh; by += 8) {
      for (int bx = 0; bx < bw; bx += 8) {
        const int64_t ox = int64_t(bx) * kSub, oy = int64_t(by) * kSub;
        draw_block<kTie>(s, id, W, tri_id, depth, bary, r[0] + s.a[0] * ox + s.b[0] * oy,
                         r[1] + s.a[1] * ox + s.b[1] * oy, r[2] + s.a[2] * ox + s.b[2] * oy, bw - bx,
                         bh - by < 8 ? bh - by : 8, ax0, ax1, ax2, sy0, sy1, sy2,
                         size_t(s.i0 + by) * size_t(W) + size_t(s.j0 + bx), zlo);
      }
    }
  }

  // One block: samples (col, row), col < min(cols, 8), row < rows <= 8, of pixel index base +
  // row * W + col, whose edge values (bias subtracted) at (0, 0) are c0, c1, c2. kTie: samples
  // whose stored depth is below zlo (the triangle's depth floor) are left out of the mask.
  template <bool kTie>
  __attribute__((target("avx2"), always_inline)) static inline void draw_block(
      const TriSetup& s, int32_t id, int W, int32_t* __restrict tri_id, float* __restrict depth,
      float* __restrict bary, int64_t c0, int64_t c1, int64_t c2, int cols, int rows, __m256i ax0, __m256i ax1,
      __m256i ax2, __m256i sy0, __m256i sy1, __m256i sy2, size_t base, float zlo) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i inbox = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
    __m256i v0 = _mm256_add_epi32(_mm256_set1_epi32(int32_t(c0)), ax0);
    __m256i v1 = _mm256_add_epi32(_mm256_set1_epi32(int32_t(c1)), ax1);
    __m256i v2 = _mm256_add_epi32(_mm256_set1_epi32(int32_t(c2)), ax2);
    // E[k][8 * row + col]: edge value k of block sample (col, row), P[8 * row + col] its pixel
    // index (below 2^30: buffer sides are at most 2^15); bit 8 * row + col of mask: that sample
    // is covered.
    alignas(32) int32_t E[3][64];
    alignas(32) int32_t P[64];
    const __m256i bv0 = _mm256_set1_epi32(int32_t(s.bias[0])), bv1 = _mm256_set1_epi32(int32_t(s.bias[1])),
                  bv2 = _mm256_set1_epi32(int32_t(s.bias[2]));
    __m256i pv = _mm256_add_epi32(_mm256_set1_epi32(int32_t(base)), lane);
    const __m256i wv = _mm256_set1_epi32(W);
    uint64_t mask = 0;
    for (int rr = 0; rr < rows; ++rr) {
      const __m256i out = _mm256_cmpgt_epi32(zero, _mm256_or_si256(_mm256_or_si256(v0, v1), v2));
      unsigned m = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(out, inbox))));
      if (kTie) {
        const __m256 d = _mm256_maskload_ps(depth + base + size_t(rr) * size_t(W), inbox);
        m &= unsigned(_mm256_movemask_ps(_mm256_cmp_ps(d, _mm256_set1_ps(zlo), _CMP_GE_OQ)));
      }
      mask |= uint64_t(m) << (8 * rr);
      _mm256_store_si256(reinterpret_cast<__m256i*>(E[0] + 8 * rr), _mm256_add_epi32(v0, bv0));
      _mm256_store_si256(reinterpret_cast<__m256i*>(E[1] + 8 * rr), _mm256_add_epi32(v1, bv1));
      _mm256_store_si256(reinterpret_cast<__m256i*>(E[2] + 8 * rr), _mm256_add_epi32(v2, bv2));
      _mm256_store_si256(reinterpret_cast<__m256i*>(P + 8 * rr), pv);
      pv = _mm256_add_epi32(pv, wv);
      v0 = _mm256_add_epi32(v0, sy0);
      v1 = _mm256_add_epi32(v1, sy1);
      v2 = _mm256_add_epi32(v2, sy2);
    }
    while (mask) {
      const int l = __builtin_ctzll(mask);
      mask &= mask - 1;
      const size_t p = size_t(uint32_t(P[l]));
      const int64_t e[3] = {int64_t(E[0][l]), int64_t(E[1][l]), int64_t(E[2][l])};
      depth_test_and_store<kTie>(s, e, p, id, tri_id, depth, bary);
    }
  }

  // Lane l of a SmallSetup8: triangle id with a box of cols x rows samples whose corner is pixel
  // index base.
  template <bool kTie>
  __attribute__((target("avx2"), always_inline)) static inline void draw_small(
      const SmallSetup8& o, int l, int32_t id, int cols, int rows, size_t base, float zlo, int W,
      int32_t* __restrict tri_id, float* __restrict depth, float* __restrict bary) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    TriSetup s;
    s.inv_area = o.inv[l];
    for (int k = 0; k < 3; ++k) {
      s.bias[k] = o.bias[k][l];
      s.zs[k] = o.zs[k][l];
    }
    draw_block<kTie>(s, id, W, tri_id, depth, bary, o.r[0][l], o.r[1][l], o.r[2][l], cols, rows,
                     _mm256_mullo_epi32(_mm256_set1_epi32(o.sx[0][l]), lane),
                     _mm256_mullo_epi32(_mm256_set1_epi32(o.sx[1][l]), lane),
                     _mm256_mullo_epi32(_mm256_set1_epi32(o.sx[2][l]), lane), _mm256_set1_epi32(o.sy[0][l]),
                     _mm256_set1_epi32(o.sy[1][l]), _mm256_set1_epi32(o.sy[2][l]), base, zlo);
  }

  // The second pass's triangles that passed the occlusion test, drawn with the tie check: small
  // ones (small8) set up eight at a time in the lanes, the others (and the last n % 8) by late(d).
  template <class Late>
  __attribute__((target("avx2"))) static inline void draw_later(const QVert* qv, const int32_t* faces,
                                                                const Deferred* recs, size_t n, int W,
                                                                int32_t* __restrict tri_id, float* __restrict depth,
                                                                float* __restrict bary, Late&& late) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const Deferred* d = recs + i;
      __m256i x[3], y[3];
      __m256 z[3];
      for (int k = 0; k < 3; ++k) {
        const int32_t idx[8] = {faces[3 * d[0].t + k], faces[3 * d[1].t + k], faces[3 * d[2].t + k], faces[3 * d[3].t + k],
                                faces[3 * d[4].t + k], faces[3 * d[5].t + k], faces[3 * d[6].t + k], faces[3 * d[7].t + k]};
        load_vertices8(qv, idx, 1, x[k], y[k], z[k]);
      }
#define EE_BOX_LANES(c) _mm256_setr_epi32(d[0].box[c], d[1].box[c], d[2].box[c], d[3].box[c], d[4].box[c], d[5].box[c], d[6].box[c], d[7].box[c])
      const __m256i j0 = EE_BOX_LANES(0), j1 = EE_BOX_LANES(1), i0 = EE_BOX_LANES(2), i1 = EE_BOX_LANES(3);
#undef EE_BOX_LANES
      const __m256i small = small8(_mm256_min_epi32(x[0], _mm256_min_epi32(x[1], x[2])), _mm256_max_epi32(x[0], _mm256_max_epi32(x[1], x[2])),
                                   _mm256_min_epi32(y[0], _mm256_min_epi32(y[1], y[2])), _mm256_max_epi32(y[0], _mm256_max_epi32(y[1], y[2])),
                                   j0, j1, i0, i1);
      const unsigned fast = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(small)));
      SmallSetup8 ss;
      if (fast) setup_small8(x, y, z, j0, i0, &ss);
      for (int l = 0; l < 8; ++l) {
        if ((fast >> l) & 1u) {
          draw_small<true>(ss, l, d[l].t, d[l].box[1] - d[l].box[0], d[l].box[3] - d[l].box[2],
                           size_t(d[l].box[2]) * size_t(W) + size_t(d[l].box[0]), d[l].zlo, W, tri_id, depth, bary);
        } else {
          late(d[l]);
        }
      }
    }
    for (; i < n; ++i) late(recs[i]);
  }
};
#endif


// Rasterizes the rows [r0, r1) of the clip rectangle. The result is the per-pixel minimum of
// (depth, triangle index) over all covering triangles, so the visiting order is free: with
// cull = none, triangles facing the viewer (those back-face culling keeps) are drawn first and
// the others afterwards, each of the latter skipped without setup when every sample of its box is
// already nearer than its nearest vertex (the hidden half of a closed mesh).
template <class Kernel>
inline void raster_band_t(const RasterArgs& a, const QVert* qv, int r0, int r1, BandLists& lists) {
  const int W = a.width;
  const int x0 = a.clip_x0, x1 = a.clip_x1;
  const float inf = std::numeric_limits<float>::infinity();
  int32_t* const tri_id = a.tri_id;
  float* const depth = a.depth;
  float* const bary = a.bary;
  for (int i = r0; i < r1; ++i) {
    const size_t row = size_t(i) * size_t(W);
    std::fill(tri_id + row + x0, tri_id + row + x1, -1);
    std::fill(depth + row + x0, depth + row + x1, inf);
  }
  const int32_t* faces = a.faces;
  const int64_t nf = a.num_faces;
  const int cull = a.cull;
  const int64_t band_lo = sample_coord(r0), band_hi = sample_coord(r1 - 1);
  // Deferred to the second pass (drawn with the tie check, so order does not matter): large
  // boxes facing the viewer (Kernel::kDeferLarge), then those facing away (cull = none).
  std::vector<Deferred>& later_large = lists.large;
  std::vector<Deferred>& later_away = lists.away;
  later_large.clear();
  later_away.clear();
  TriSetup s;
  // First pass, for a triangle that survived the triage (usable, box clipped to the band not
  // empty, non-zero area, not culled, facing the viewer when cull = none): large boxes are
  // deferred (Kernel::kDeferLarge), the others drawn now in index order, so that an equal depth
  // keeps the lower index without a tie check.
  const auto first = [&](int64_t t, const int32_t box[4], int64_t area) {
    const QVert& v0 = qv[faces[3 * t]];
    const QVert& v1 = qv[faces[3 * t + 1]];
    const QVert& v2 = qv[faces[3 * t + 2]];
    const float zlo = depth_floor(v0.z, v1.z, v2.z);
    if (Kernel::kDeferLarge && (box[1] - box[0] > 8 || box[3] - box[2] > 8)) {
      later_large.push_back(Deferred{int32_t(t), {box[0], box[1], box[2], box[3]}, zlo});
      return;
    }
    setup_edges(v0, v1, v2, area, &s);
    s.j0 = box[0];
    s.j1 = box[1];
    s.i0 = box[2];
    s.i1 = box[3];
    Kernel::template draw<false>(s, int32_t(t), zlo, W, tri_id, depth, bary);
  };
  const auto away = [&](int64_t t, const int32_t box[4], float zlo) {
    later_away.push_back(Deferred{int32_t(t), {box[0], box[1], box[2], box[3]}, zlo});
  };
  // Triangles [0, t_done) are triaged eight at a time where the kernel can; the rest one by one.
  const int64_t t_done = Kernel::triage(qv, faces, nf, cull, x0, r0, x1, r1, W, tri_id, depth, bary, first, away);
  for (int64_t t = t_done; t < nf; ++t) {
    const QVert& v0 = qv[faces[3 * t]];
    const QVert& v1 = qv[faces[3 * t + 1]];
    const QVert& v2 = qv[faces[3 * t + 2]];
    // Cheap band rejection before the full setup.
    if (std::max(v0.y, std::max(v1.y, v2.y)) < band_lo || std::min(v0.y, std::min(v1.y, v2.y)) > band_hi) continue;
    if (!(v0.ok & v1.ok & v2.ok)) continue;
    int32_t box[4];
    if (!triangle_box(v0, v1, v2, x0, r0, x1, r1, box)) continue;  // no sample point inside its box
    const int64_t area = signed_area(v0, v1, v2);
    if (area == 0 || culled(cull, area)) continue;
    if (cull == kCullNone && area > 0) {
      away(t, box, depth_floor(v0.z, v1.z, v2.z));  // clockwise on screen
      continue;
    }
    first(t, box, area);
  }
  const auto late = [&](const Deferred& d) {
    const QVert& v0 = qv[faces[3 * d.t]];
    const QVert& v1 = qv[faces[3 * d.t + 1]];
    const QVert& v2 = qv[faces[3 * d.t + 2]];
    setup_edges(v0, v1, v2, signed_area(v0, v1, v2), &s);
    s.j0 = d.box[0];
    s.j1 = d.box[1];
    s.i0 = d.box[2];
    s.i1 = d.box[3];
    Kernel::template draw<true>(s, d.t, d.zlo, W, tri_id, depth, bary);
  };
  for (const Deferred& d : later_large) late(d);
  // Triangles facing away are skipped when every sample of their box is strictly nearer than
  // anything they can produce (the hidden half of a closed mesh); the rest are drawn.
  size_t kept = 0;
  for (const Deferred& d : later_away)
    if (!Kernel::box_nearer(depth, W, d.box, d.zlo)) later_away[kept++] = d;
  Kernel::draw_later(qv, faces, later_away.data(), kept, W, tri_id, depth, bary, late);
  // Barycentrics are written only where a triangle wins, so the empty pixels get their zeros
  // now (cheaper than clearing all of them first).
  for (int i = r0; i < r1; ++i) Kernel::zero_empty(tri_id, bary, size_t(i) * size_t(W), x0, x1);
}

#if EE_HAVE_AVX2_PATH
__attribute__((target("avx2"), flatten)) void raster_band_avx2(const RasterArgs& a, const QVert* qv, int r0, int r1,
                                                              BandLists& lists) {
  raster_band_t<Avx2Kernel>(a, qv, r0, r1, lists);
}
#endif

void raster_band(const RasterArgs& a, const QVert* qv, int r0, int r1, BandLists& lists) {
#if EE_HAVE_AVX2_PATH
  if (g_simd_enabled.load(std::memory_order_relaxed) && cpu_has_avx2()) {
    raster_band_avx2(a, qv, r0, r1, lists);
    return;
  }
#endif
  raster_band_t<ScalarKernel>(a, qv, r0, r1, lists);
}

int auto_threads(int requested, int64_t pixels, int64_t faces) {
  if (requested > 0) return requested;
  // Spawning a worker costs tens of microseconds and every band repeats the per-triangle
  // rejection; small jobs (below ~60k pixels + 4 x triangles, e.g. 200x200 with 2k triangles)
  // stay on the calling thread; a FLAME mesh at 224x224 uses two.
  const int64_t work = pixels + 4 * faces;
  if (work < 60000) return 1;
  return int(std::min<int64_t>(hardware_threads(), 1 + work / 60000));
}

}  // namespace

#if EE_HAVE_AVX2_PATH
// One coordinate of 4 vertices snapped (int32 grid units relative to the origin, 0 where unusable,
// NaN included) and its usability (64-bit lanes, all ones when usable); see snap_vertices_avx2.
__attribute__((target("avx2"), always_inline)) inline __m256i snap4_avx2(__m128 c, __m256d origin, __m256d sub,
                                                                       __m256d lim, __m256d guard, __m256d absd,
                                                                       __m128i* q) {
  const __m256d s = _mm256_mul_pd(_mm256_cvtps_pd(c), sub);
  const __m256d r = _mm256_sub_pd(_mm256_round_pd(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), origin);
  const __m256d good = _mm256_and_pd(_mm256_cmp_pd(_mm256_and_pd(s, absd), lim, _CMP_LE_OQ),
                                     _mm256_cmp_pd(_mm256_and_pd(r, absd), guard, _CMP_LE_OQ));
  *q = _mm256_cvtpd_epi32(_mm256_and_pd(r, good));
  return _mm256_castpd_si256(good);
}

// Two 4-lane 64-bit masks (lo, hi) to one 8-lane 32-bit mask.
__attribute__((target("avx2"), always_inline)) inline __m256i narrow_avx2(__m256i lo, __m256i hi) {
  const __m256i perm = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  return _mm256_blend_epi32(_mm256_permutevar8x32_epi32(lo, perm), _mm256_permutevar8x32_epi32(hi, perm), 0xf0);
}

// quantize_vertex for vertices [0, 8 * floor(n / 8)), eight at a time, with the same double
// operations (scaling by 256 and rounding half to even are exact; the origin offset is exact for
// |origin| < 2^44), and the unusable marker of rasterize_cpu (x = 0, y = INT32_MIN). Returns the
// number of vertices snapped (0 when the origin is too far out).
__attribute__((target("avx2"))) int64_t snap_vertices_avx2(const float* v, int64_t n, int64_t ox, int64_t oy,
                                                           QVert* out) {
  if (ox < -(int64_t(1) << 44) || ox > (int64_t(1) << 44) || oy < -(int64_t(1) << 44) || oy > (int64_t(1) << 44))
    return 0;
  const int64_t n8 = n & ~int64_t(7);
  const __m256d sub = _mm256_set1_pd(double(kSub)), lim = _mm256_set1_pd(1099511627776.0),
                guard = _mm256_set1_pd(double(kGuard)), zlim = _mm256_set1_pd(3.0e38);
  const __m256d oxs = _mm256_set1_pd(double(ox * kSub)), oys = _mm256_set1_pd(double(oy * kSub));
  const __m256d absd = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  for (int64_t i = 0; i < n8; i += 8) {
    __m256 x, y, z;
    deinterleave3_avx2(_mm256_loadu_ps(v + 3 * i), _mm256_loadu_ps(v + 3 * i + 8), _mm256_loadu_ps(v + 3 * i + 16), x, y, z);
    __m128i qx[2], qy[2];
    const __m256i gx = narrow_avx2(snap4_avx2(_mm256_castps256_ps128(x), oxs, sub, lim, guard, absd, &qx[0]),
                                   snap4_avx2(_mm256_extractf128_ps(x, 1), oxs, sub, lim, guard, absd, &qx[1]));
    const __m256i gy = narrow_avx2(snap4_avx2(_mm256_castps256_ps128(y), oys, sub, lim, guard, absd, &qy[0]),
                                   snap4_avx2(_mm256_extractf128_ps(y, 1), oys, sub, lim, guard, absd, &qy[1]));
    const __m256i gz = narrow_avx2(
        _mm256_castpd_si256(_mm256_cmp_pd(_mm256_and_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(z)), absd), zlim, _CMP_LE_OQ)),
        _mm256_castpd_si256(_mm256_cmp_pd(_mm256_and_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(z, 1)), absd), zlim, _CMP_LE_OQ)));
    const __m256i ok = _mm256_and_si256(gx, _mm256_and_si256(gy, gz));
    const __m256i ix = _mm256_and_si256(_mm256_set_m128i(qx[1], qx[0]), ok);
    const __m256i iy = _mm256_blendv_epi8(_mm256_set1_epi32(INT32_MIN), _mm256_set_m128i(qy[1], qy[0]), ok);
    const __m256i iz = _mm256_castps_si256(z), iok = _mm256_and_si256(ok, _mm256_set1_epi32(1));
    // 8 x (x, y, z, ok) records: transpose within 128-bit halves, then pair the halves.
    const __m256i a = _mm256_unpacklo_epi32(ix, iy), b = _mm256_unpacklo_epi32(iz, iok);
    const __m256i c = _mm256_unpackhi_epi32(ix, iy), d = _mm256_unpackhi_epi32(iz, iok);
    const __m256i r0 = _mm256_unpacklo_epi64(a, b), r1 = _mm256_unpackhi_epi64(a, b);
    const __m256i r2 = _mm256_unpacklo_epi64(c, d), r3 = _mm256_unpackhi_epi64(c, d);
    __m256i* o = reinterpret_cast<__m256i*>(out + i);
    _mm256_storeu_si256(o, _mm256_permute2x128_si256(r0, r1, 0x20));
    _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(r2, r3, 0x20));
    _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(r0, r1, 0x31));
    _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(r2, r3, 0x31));
  }
  return n8;
}
#endif

int rasterize_cpu(const RasterArgs& a) {
  const int rows = a.clip_y1 - a.clip_y0, cols = a.clip_x1 - a.clip_x0;
  if (rows <= 0 || cols <= 0) return 1;
  thread_local std::vector<QVert> qbuf;
  if (qbuf.size() < size_t(a.num_vertices)) qbuf.resize(size_t(a.num_vertices));
  QVert* qv = qbuf.data();
  int64_t snapped = 0;
#if EE_HAVE_AVX2_PATH
  if (g_simd_enabled.load(std::memory_order_relaxed) && cpu_has_avx2())
    snapped = snap_vertices_avx2(a.vertices, a.num_vertices, a.origin_x, a.origin_y, qv);
#endif
  for (int64_t v = snapped; v < a.num_vertices; ++v) {
    const float* p = a.vertices + 3 * v;
    qv[v] = quantize_vertex(p[0], p[1], p[2], a.origin_x, a.origin_y);
    if (!qv[v].ok) qv[v].y = INT32_MIN;  // the marker Avx2Kernel::triage tests
  }
  // At most 4 workers per hardware thread and one per row.
  const int threads = std::min(std::min(auto_threads(a.threads, int64_t(rows) * cols, a.num_faces), rows),
                               4 * hardware_threads());
  // The bands' second-pass lists belong to the calling thread and are reused from call to call
  // (workers are started per call, so their own thread-local storage would not be).
  thread_local std::vector<BandLists> lists;
  if (lists.size() < size_t(threads)) lists.resize(size_t(threads));
  BandLists* band_lists = lists.data();
  run_bands(threads, a.clip_y0, a.clip_y1, [&](int b, int r0, int r1) { raster_band(a, qv, r0, r1, band_lists[b]); });
  return threads;
}

void emulate_cuda_cpu(const RasterArgs& a, const int64_t* order) {
  const int x0 = a.clip_x0, y0 = a.clip_y0, x1 = a.clip_x1, y1 = a.clip_y1;
  if (x1 <= x0 || y1 <= y0) return;
  std::vector<QVert> qv(size_t(a.num_vertices));
  for (int64_t v = 0; v < a.num_vertices; ++v) {
    const float* p = a.vertices + 3 * v;
    qv[size_t(v)] = quantize_vertex(p[0], p[1], p[2], a.origin_x, a.origin_y);
  }
  std::vector<unsigned long long> keys(size_t(a.height) * size_t(a.width), kEmptyKey);
  const auto host_min = [](unsigned long long* slot, unsigned long long key) {
    if (key < *slot) *slot = key;
  };
  for (int64_t k = 0; k < a.num_faces; ++k) {
    const int64_t t = order ? order[k] : k;
    visibility_triangle(qv.data(), a.faces, t, a.cull, a.width, x0, y0, x1, y1, keys.data(), host_min);
  }
  for (int i = y0; i < y1; ++i)
    for (int j = x0; j < x1; ++j)
      resolve_pixel(qv.data(), a.faces, a.cull, a.width, x0, y0, x1, y1, keys.data(), j, i, a.tri_id, a.depth, a.bary);
}

void interpolate_cpu(const float* attr, int64_t num_vertices, int channels, const int32_t* faces,
                     int64_t num_faces, const int32_t* tri_id, const float* bary, float* out, int height,
                     int width, int x0, int y0, int x1, int y1, int threads) {
  (void)num_vertices;
  (void)height;
  if (x1 <= x0 || y1 <= y0) return;
  const int64_t pixels = int64_t(x1 - x0) * (y1 - y0);
  int n = threads > 0 ? std::min(threads, 4 * hardware_threads()) : auto_threads(0, pixels, 0);
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

namespace {

// Order-2 SH constants (DECA): 1/sqrt(4pi), (2pi/3)sqrt(3/(4pi)), (pi/4)3sqrt(5/(12pi)),
// (pi/4)(3/2)sqrt(5/(12pi)), (pi/4)(1/2)sqrt(5/(4pi)).
const double kPi = 3.14159265358979323846;
const float kSh[9] = {
    float(1.0 / std::sqrt(4 * kPi)),
    float((2 * kPi / 3) * std::sqrt(3 / (4 * kPi))),
    float((2 * kPi / 3) * std::sqrt(3 / (4 * kPi))),
    float((2 * kPi / 3) * std::sqrt(3 / (4 * kPi))),
    float((kPi / 4) * 3 * std::sqrt(5 / (12 * kPi))),
    float((kPi / 4) * 3 * std::sqrt(5 / (12 * kPi))),
    float((kPi / 4) * 3 * std::sqrt(5 / (12 * kPi))),
    float((kPi / 4) * 1.5 * std::sqrt(5 / (12 * kPi))),
    float((kPi / 4) * 0.5 * std::sqrt(5 / (4 * kPi))),
};

// NaN maps to 0 so that the uint8 conversion below is always defined.
inline float clamp01(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }

}  // namespace

// One band of rows of the compositor. Everything the loop reads is copied into locals first:
// the uint8 frame stores may alias any memory, which would otherwise force reloads.
template <int kMode, int kAlbedo, int kLights>
void composite_rows(const CompositeArgs& c, const float (&lights_in)[kMaxLights][3], int num_lights_in,
                    const float (&lsh_in)[9][3], int r0, int r1) {
  // kLights > 0: that many directional lights, unrolled; 0: num_lights_in (runtime).
  const int num_lights = kLights > 0 ? kLights : num_lights_in;
  float lights[kMaxLights][3];
  float lsh[9][3];
  for (int l = 0; l < kMaxLights; ++l)
    for (int ch = 0; ch < 3; ++ch) lights[l][ch] = lights_in[l][ch];
  for (int k = 0; k < 9; ++k)
    for (int ch = 0; ch < 3; ++ch) lsh[k][ch] = lsh_in[k][ch];
  uint8_t* const frame = c.frame;
  const int32_t* const tri_id = c.tri_id;
  const float* const bary = c.bary;
  const int32_t* const faces = c.faces;
  const float* const normals = c.normals;
  const float* const albedo = c.albedo;
  const int64_t nf = c.num_faces;
  const int w = c.w, x0 = c.x0, y0 = c.y0, fw = c.frame_w, fh = c.frame_h;
  const float scale = kMode == 0 ? c.intensity / float(num_lights > 0 ? num_lights : 1) : 1.0f;
  const float a255 = c.alpha * 255.0f, keep = 1.0f - c.alpha;
  const float ca0 = albedo[0], ca1 = kAlbedo == 0 ? albedo[1] : 0.0f, ca2 = kAlbedo == 0 ? albedo[2] : 0.0f;
  const int jlo = std::max(0, -x0), jhi = std::min(w, fw - x0);  // buffer columns inside the frame
  for (int i = r0; i < r1; ++i) {
    const int fy = y0 + i;
    if (fy < 0 || fy >= fh) continue;
    const int64_t frow = int64_t(fy) * fw + x0;  // frame index of buffer column 0
    for (int j = jlo; j < jhi; ++j) {
      const size_t p = size_t(i) * size_t(w) + size_t(j);
      const int32_t t = tri_id[p];
      if (t < 0 || t >= nf) continue;
      const float b0 = bary[3 * p], b1 = bary[3 * p + 1], b2 = bary[3 * p + 2];
      const int32_t f0 = faces[3 * size_t(t)], f1 = faces[3 * size_t(t) + 1], f2 = faces[3 * size_t(t) + 2];
      const float* n0 = normals + 3 * size_t(f0);
      const float* n1 = normals + 3 * size_t(f1);
      const float* n2 = normals + 3 * size_t(f2);
      const float nx = b0 * n0[0] + b1 * n1[0] + b2 * n2[0];
      const float ny = b0 * n0[1] + b1 * n1[1] + b2 * n2[1];
      const float nz = b0 * n0[2] + b1 * n1[2] + b2 * n2[2];
      float alb0, alb1, alb2;
      if (kAlbedo == 1) {
        const float* a0 = albedo + 3 * size_t(f0);
        const float* a1 = albedo + 3 * size_t(f1);
        const float* a2 = albedo + 3 * size_t(f2);
        alb0 = b0 * a0[0] + b1 * a1[0] + b2 * a2[0];
        alb1 = b0 * a0[1] + b1 * a1[1] + b2 * a2[1];
        alb2 = b0 * a0[2] + b1 * a1[2] + b2 * a2[2];
      } else if (kAlbedo == 2) {
        alb0 = albedo[3 * p];
        alb1 = albedo[3 * p + 1];
        alb2 = albedo[3 * p + 2];
      } else {
        alb0 = ca0;
        alb1 = ca1;
        alb2 = ca2;
      }
      float r, g, bl;
      if (kMode == 0) {
        float s = 0.0f;
        if (kLights > 0) {
          for (int l = 0; l < kLights; ++l) s += clamp01(nx * lights[l][0] + ny * lights[l][1] + nz * lights[l][2]);
        } else {
          for (int l = 0; l < num_lights; ++l) s += clamp01(nx * lights[l][0] + ny * lights[l][1] + nz * lights[l][2]);
        }
        s *= scale;
        r = alb0 * s;
        g = alb1 * s;
        bl = alb2 * s;
      } else {
        const float basis[9] = {1.0f, nx, ny, nz, nx * ny, nx * nz, ny * nz, nx * nx - ny * ny, 3.0f * nz * nz - 1.0f};
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f;
        for (int k = 0; k < 9; ++k) {
          s0 += basis[k] * lsh[k][0];
          s1 += basis[k] * lsh[k][1];
          s2 += basis[k] * lsh[k][2];
        }
        r = alb0 * s0;
        g = alb1 * s1;
        bl = alb2 * s2;
      }
      uint8_t* o = frame + 3 * size_t(frow + j);
      const float v0 = float(o[0]) * keep + clamp01(r) * a255 + 0.5f;
      const float v1 = float(o[1]) * keep + clamp01(g) * a255 + 0.5f;
      const float v2 = float(o[2]) * keep + clamp01(bl) * a255 + 0.5f;
      o[0] = uint8_t(v0 >= 255.0f ? 255.0f : v0);
      o[1] = uint8_t(v1 >= 255.0f ? 255.0f : v1);
      o[2] = uint8_t(v2 >= 255.0f ? 255.0f : v2);
    }
  }
}

#if EE_HAVE_AVX2_PATH
bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

// Lane-wise clamp01 (NaN -> 0), the same comparisons as the scalar one.
__attribute__((target("avx2"))) inline __m256 clamp01_avx2(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 r = _mm256_blendv_ps(one, x, _mm256_cmp_ps(x, one, _CMP_LT_OQ));
  return _mm256_and_ps(r, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
}

// Eight frame bytes of one channel blended with the mesh colour col (= clamp01(c) * alpha * 255):
// uint8(min(float(src) * keep + col + 0.5, 255)), the scalar formula lane by lane.
__attribute__((target("avx2"))) inline __m128i blend_channel_avx2(__m128i ch8, __m256 col, __m256 keepv, __m256 half,
                                                                  __m256 cap) {
  const __m256 src = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(ch8));
  const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(src, keepv), col), half);
  const __m256i q = _mm256_cvttps_epi32(_mm256_blendv_ps(v, cap, _mm256_cmp_ps(v, cap, _CMP_GE_OQ)));
  const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  return _mm_packus_epi16(w16, w16);  // the 8 bytes in order in the low half
}

// composite_rows<0, 0, *> (directional lights, constant albedo) eight buffer pixels at a time:
// the same float operations in the same order per lane (no fused multiply-add), so the frame
// bytes are identical; the final blend with the frame bytes is done per covered pixel.
__attribute__((target("avx2"))) void composite_rows_preview_avx2(const CompositeArgs& c,
                                                                 const float (&lights)[kMaxLights][3],
                                                                 int num_lights, int r0, int r1) {
  uint8_t* const frame = c.frame;
  const int32_t* const tri_id = c.tri_id;
  const float* const bary = c.bary;
  const int32_t* const faces = c.faces;
  const float* const normals = c.normals;
  const int w = c.w, x0 = c.x0, y0 = c.y0, fw = c.frame_w, fh = c.frame_h;
  const float scale = c.intensity / float(num_lights > 0 ? num_lights : 1);
  const float a255 = c.alpha * 255.0f, keep = 1.0f - c.alpha;
  const __m256 alb0 = _mm256_set1_ps(c.albedo[0]), alb1 = _mm256_set1_ps(c.albedo[1]),
               alb2 = _mm256_set1_ps(c.albedo[2]);
  const __m256 scalev = _mm256_set1_ps(scale), a255v = _mm256_set1_ps(a255);
  const int jlo = std::max(0, -x0), jhi = std::min(w, fw - x0);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i nf = _mm256_set1_epi32(int32_t(std::min<int64_t>(c.num_faces, INT32_MAX)));
  for (int i = r0; i < r1; ++i) {
    const int fy = y0 + i;
    if (fy < 0 || fy >= fh) continue;
    const int64_t frow = int64_t(fy) * fw + x0;
    for (int j = jlo; j < jhi; j += 8) {
      const size_t p = size_t(i) * size_t(w) + size_t(j);
      const __m256i in_row = _mm256_cmpgt_epi32(_mm256_set1_epi32(jhi - j), lane);
      const __m256i t = _mm256_maskload_epi32(tri_id + p, in_row);
      const __m256i valid = _mm256_and_si256(
          in_row, _mm256_and_si256(_mm256_cmpgt_epi32(t, _mm256_set1_epi32(-1)), _mm256_cmpgt_epi32(nf, t)));
      unsigned m = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(valid)));
      if (!m) continue;
      // Interpolated normal of each covered pixel, (b0 * n_f0 + b1 * n_f1) + b2 * n_f2, in the
      // (x, y, z, 0) lanes of one register per pixel from plain loads (gathers are slow on Zen 3),
      // then transposed to one register per component.
      alignas(32) int32_t ts[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(ts), t);
      const __m128i xyz = _mm_setr_epi32(-1, -1, -1, 0);
      __m128 nl[8];
      for (int l = 0; l < 8; ++l) {
        if (!((m >> l) & 1u)) {
          nl[l] = _mm_setzero_ps();
          continue;
        }
        const int32_t* fc = faces + 3 * size_t(ts[l]);
        const float* b = bary + 3 * (p + size_t(l));
        const __m128 n0 = _mm_maskload_ps(normals + 3 * size_t(fc[0]), xyz);
        const __m128 n1 = _mm_maskload_ps(normals + 3 * size_t(fc[1]), xyz);
        const __m128 n2 = _mm_maskload_ps(normals + 3 * size_t(fc[2]), xyz);
        nl[l] = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_set1_ps(b[0]), n0), _mm_mul_ps(_mm_set1_ps(b[1]), n1)),
                           _mm_mul_ps(_mm_set1_ps(b[2]), n2));
      }
      const __m256 q0 = _mm256_insertf128_ps(_mm256_castps128_ps256(nl[0]), nl[4], 1);
      const __m256 q1 = _mm256_insertf128_ps(_mm256_castps128_ps256(nl[1]), nl[5], 1);
      const __m256 q2 = _mm256_insertf128_ps(_mm256_castps128_ps256(nl[2]), nl[6], 1);
      const __m256 q3 = _mm256_insertf128_ps(_mm256_castps128_ps256(nl[3]), nl[7], 1);
      const __m256d u0 = _mm256_castps_pd(_mm256_unpacklo_ps(q0, q1)), u1 = _mm256_castps_pd(_mm256_unpacklo_ps(q2, q3));
      const __m256d u2 = _mm256_castps_pd(_mm256_unpackhi_ps(q0, q1)), u3 = _mm256_castps_pd(_mm256_unpackhi_ps(q2, q3));
      const __m256 n[3] = {_mm256_castpd_ps(_mm256_unpacklo_pd(u0, u1)), _mm256_castpd_ps(_mm256_unpackhi_pd(u0, u1)),
                           _mm256_castpd_ps(_mm256_unpacklo_pd(u2, u3))};
      __m256 sh = _mm256_setzero_ps();
      for (int l = 0; l < num_lights; ++l) {
        const __m256 dot = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(n[0], _mm256_set1_ps(lights[l][0])),
                                                       _mm256_mul_ps(n[1], _mm256_set1_ps(lights[l][1]))),
                                         _mm256_mul_ps(n[2], _mm256_set1_ps(lights[l][2])));
        sh = _mm256_add_ps(sh, clamp01_avx2(dot));
      }
      sh = _mm256_mul_ps(sh, scalev);
      const __m256 cr = _mm256_mul_ps(clamp01_avx2(_mm256_mul_ps(alb0, sh)), a255v);
      const __m256 cg = _mm256_mul_ps(clamp01_avx2(_mm256_mul_ps(alb1, sh)), a255v);
      const __m256 cb = _mm256_mul_ps(clamp01_avx2(_mm256_mul_ps(alb2, sh)), a255v);
      if (m == 0xffu) {
        // All eight pixels covered: their 24 frame bytes are blended in registers.
        uint8_t* o = frame + 3 * size_t(frow + j);
        const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(o));
        const __m128i hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(o + 16));
        const __m128i r8 = _mm_or_si128(_mm_shuffle_epi8(lo, _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)),
                                        _mm_shuffle_epi8(hi, _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1)));
        const __m128i g8 = _mm_or_si128(_mm_shuffle_epi8(lo, _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)),
                                        _mm_shuffle_epi8(hi, _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1)));
        const __m128i b8 = _mm_or_si128(_mm_shuffle_epi8(lo, _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)),
                                        _mm_shuffle_epi8(hi, _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1)));
        const __m256 keepv = _mm256_set1_ps(keep), half = _mm256_set1_ps(0.5f), cap = _mm256_set1_ps(255.0f);
        const __m128i rg = _mm_unpacklo_epi64(blend_channel_avx2(r8, cr, keepv, half, cap), blend_channel_avx2(g8, cg, keepv, half, cap));
        const __m128i bb = blend_channel_avx2(b8, cb, keepv, half, cap);
        const __m128i out_lo =
            _mm_or_si128(_mm_shuffle_epi8(rg, _mm_setr_epi8(0, 8, -1, 1, 9, -1, 2, 10, -1, 3, 11, -1, 4, 12, -1, 5)),
                         _mm_shuffle_epi8(bb, _mm_setr_epi8(-1, -1, 0, -1, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4, -1)));
        const __m128i out_hi =
            _mm_or_si128(_mm_shuffle_epi8(rg, _mm_setr_epi8(13, -1, 6, 14, -1, 7, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1)),
                         _mm_shuffle_epi8(bb, _mm_setr_epi8(-1, 5, -1, -1, 6, -1, -1, 7, -1, -1, -1, -1, -1, -1, -1, -1)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), out_lo);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 16), out_hi);
        continue;
      }
      alignas(32) float col[3][8];
      _mm256_store_ps(col[0], cr);
      _mm256_store_ps(col[1], cg);
      _mm256_store_ps(col[2], cb);
      do {
        const int l = __builtin_ctz(m);
        m &= m - 1;
        uint8_t* o = frame + 3 * size_t(frow + j + l);
        for (int ch = 0; ch < 3; ++ch) {
          const float v = float(o[ch]) * keep + col[ch][l] + 0.5f;
          o[ch] = uint8_t(v >= 255.0f ? 255.0f : v);
        }
      } while (m);
    }
  }
}
#endif

void composite_cpu(const CompositeArgs& c) {
  if (c.h <= 0 || c.w <= 0) return;
  const int64_t pixels = int64_t(c.h) * c.w;
  const int n = c.threads > 0 ? std::min(c.threads, 4 * hardware_threads()) : auto_threads(0, pixels, 0);
  // Premultiplied SH light: lsh[k][ch] = constant_k * light[k][ch].
  float lsh[9][3] = {};
  float lights[kMaxLights][3] = {};
  int num_lights = 0;
  if (c.mode == 1) {
    for (int k = 0; k < 9; ++k)
      for (int ch = 0; ch < 3; ++ch) lsh[k][ch] = kSh[k] * c.light[3 * k + ch];
  } else {
    num_lights = std::min(c.num_lights, kMaxLights);
    for (int l = 0; l < num_lights; ++l)
      for (int ch = 0; ch < 3; ++ch) lights[l][ch] = c.light[3 * l + ch];
  }
  run_bands(n, 0, c.h, [&](int, int r0, int r1) {
    const int key = c.mode * 3 + c.albedo_kind;
    const bool five = num_lights == 5;  // the shape preview's light rig
    switch (key) {
      case 0:
#if EE_HAVE_AVX2_PATH
        if (cpu_has_avx2()) {
          composite_rows_preview_avx2(c, lights, num_lights, r0, r1);
          break;
        }
#endif
        five ? composite_rows<0, 0, 5>(c, lights, num_lights, lsh, r0, r1)
             : composite_rows<0, 0, 0>(c, lights, num_lights, lsh, r0, r1);
        break;
      case 1:
        five ? composite_rows<0, 1, 5>(c, lights, num_lights, lsh, r0, r1)
             : composite_rows<0, 1, 0>(c, lights, num_lights, lsh, r0, r1);
        break;
      case 2: composite_rows<0, 2, 0>(c, lights, num_lights, lsh, r0, r1); break;
      case 3: composite_rows<1, 0, 0>(c, lights, num_lights, lsh, r0, r1); break;
      case 4: composite_rows<1, 1, 0>(c, lights, num_lights, lsh, r0, r1); break;
      default: composite_rows<1, 2, 0>(c, lights, num_lights, lsh, r0, r1); break;
    }
  });
}

}  // namespace ee
