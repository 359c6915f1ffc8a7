// Per-thread bodies of the CUDA visibility and resolve kernels, shared with a sequential host
// emulation (emoca_edge._raster.emulate_cuda_into) so that the CPU test suite exercises the exact
// code the GPU runs: key packing, atomic-min semantics and the resolve pass.
#pragma once

#include <cstdint>
#include <cstring>

#include "raster_common.h"

namespace ee {

constexpr unsigned long long kEmptyKey = ~0ull;

EE_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

EE_HD float inf_float() {
#if defined(__CUDA_ARCH__)
  return __int_as_float(0x7f800000);
#else
  return HUGE_VALF;
#endif
}

EE_HD float narrow(double d) {
#if defined(__CUDA_ARCH__)
  return __double2float_rn(d);
#else
  return float(d);
#endif
}

// Key of a covered sample: ordered depth bits in the high word, triangle index in the low word,
// so the minimum key is the nearest sample and, among equal depths, the lowest triangle index.
EE_HD unsigned long long pack_key(float depth, int64_t t) {
  return ((unsigned long long)ordered_float_bits(float_bits(depth)) << 32) | (unsigned long long)(uint32_t(t));
}

// Visibility pass of triangle t: atomic_min(slot, key) for each covered sample of its clipped box.
template <class AtomicMin>
EE_HD void visibility_triangle(const QVert* q, const int32_t* faces, int64_t t, int cull, int width, int x0, int y0,
                               int x1, int y1, unsigned long long* keys, AtomicMin atomic_min) {
  TriSetup s;
  if (!setup_triangle(q[faces[3 * t]], q[faces[3 * t + 1]], q[faces[3 * t + 2]], cull, x0, y0, x1, y1, &s)) return;
  int64_t row_e[3];
  edges_at(s, s.j0, s.i0, row_e);
  for (int i = s.i0; i < s.i1; ++i) {
    int64_t e[3] = {row_e[0], row_e[1], row_e[2]};
    for (int j = s.j0; j < s.j1; ++j) {
      if (covered(s, e)) atomic_min(keys + size_t(i) * size_t(width) + size_t(j), pack_key(depth_at(s, e), t));
      e[0] += s.a[0] * kSub;
      e[1] += s.a[1] * kSub;
      e[2] += s.a[2] * kSub;
    }
    row_e[0] += s.b[0] * kSub;
    row_e[1] += s.b[1] * kSub;
    row_e[2] += s.b[2] * kSub;
  }
}

// Resolve pass of pixel (row i, column j): decode the winning triangle and recompute its depth
// and barycentrics from the same integer edge functions.
EE_HD void resolve_pixel(const QVert* q, const int32_t* faces, int cull, int width, int x0, int y0, int x1, int y1,
                         const unsigned long long* keys, int j, int i, int32_t* tri_id, float* depth, float* bary) {
  const size_t p = size_t(i) * size_t(width) + size_t(j);
  const unsigned long long key = keys[p];
  if (key != kEmptyKey) {
    const int64_t t = int64_t(uint32_t(key & 0xffffffffull));
    TriSetup s;
    if (setup_triangle(q[faces[3 * t]], q[faces[3 * t + 1]], q[faces[3 * t + 2]], cull, x0, y0, x1, y1, &s)) {
      int64_t e[3];
      edges_at(s, j, i, e);
      double w[3];
      weights_at(s, e, w);
      tri_id[p] = int32_t(t);
      depth[p] = depth_at(s, e);
      bary[3 * p] = narrow(w[0]);
      bary[3 * p + 1] = narrow(w[1]);
      bary[3 * p + 2] = narrow(w[2]);
      return;
    }
  }
  tri_id[p] = -1;
  depth[p] = inf_float();
  bary[3 * p] = 0.0f;
  bary[3 * p + 1] = 0.0f;
  bary[3 * p + 2] = 0.0f;
}

}  // namespace ee
