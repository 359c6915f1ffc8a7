// Randomised robustness driver for the CPU rasterizer, the CUDA kernels' host emulation, interpolation,
// normals and the compositor: adversarial coordinates (NaN, inf, guard-band limits, huge values), random
// clip rectangles, origins, cull modes and thread counts. Built with -fsanitize=address,undefined by
// tests/test_raster_sanitizers.py; exits non-zero on a sanitizer report or a CPU/emulation mismatch.
// Usage: fuzz_raster [iterations] [seed]
#include "raster_cpu.h"
#include <vector>
#include <random>
#include <cmath>
#include <cstdio>
#include <cstdlib>
int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 3000;
  std::mt19937_64 rng(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1);
  const float specials[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 2097152.0f, -2097152.0f, 2097152.5f, 8388607.5f,
                            0.5f, 0.0f, -0.0f, 1e-30f, 3.0e38f, -3.0e38f, 4194304.0f};
  long covered = 0;
  for (int iter = 0; iter < iterations; ++iter) {
    int H = 1 + rng() % 70, W = 1 + rng() % 90;
    int nv = 1 + rng() % 40, nf = rng() % 80;
    std::vector<float> v(nv * 3);
    // One mesh in three is clustered within ~10 pixels on a half-pixel grid, so that boxes of at
    // most 8 x 8 samples (the SIMD kernel's set-up-in-lanes paths) and sample points exactly on
    // edges (the fill rule) are common.
    const float c0 = float(rng() % 100) - 10.f;
    const bool cluster = rng() % 3 == 0;
    std::uniform_real_distribution<float> u = cluster ? std::uniform_real_distribution<float>(c0, c0 + 10.f)
                                                      : std::uniform_real_distribution<float>(-20.f, 100.f);
    for (auto& x : v) x = (rng() % 8 == 0) ? specials[rng() % 16] : cluster ? std::round(2.f * u(rng)) / 2.f : u(rng);
    std::vector<int> f(nf * 3);
    for (auto& i : f) i = rng() % nv;
    std::vector<int> id(H * W, 123);
    std::vector<float> d(H * W, 5.f), b(H * W * 3, 5.f);
    int x0 = rng() % (W + 1), y0 = rng() % (H + 1);
    int x1 = x0 + rng() % (W - x0 + 1), y1 = y0 + rng() % (H - y0 + 1);
    long ox = (long)(rng() % 2000) - 1000, oy = (long)(rng() % 2000) - 1000;
    if (rng() % 2) { ox = 0; oy = 0; }
    ee::RasterArgs a{v.data(), nv, f.data(), nf, id.data(), d.data(), b.data(), H, W, x0, y0, x1, y1, ox, oy,
                     int(rng() % 3), int(rng() % 4)};
    ee::rasterize_cpu(a);
    std::vector<int> id2(H * W, 123);
    std::vector<float> d2(H * W, 5.f), b2(H * W * 3, 5.f);
    a.tri_id = id2.data(); a.depth = d2.data(); a.bary = b2.data();
    std::vector<int64_t> order(nf);
    for (int k = 0; k < nf; ++k) order[k] = nf - 1 - k;
    ee::emulate_cuda_cpu(a, order.data());
    for (int p = 0; p < H * W; ++p) {
      if (id[p] != id2[p] || (id[p] >= 0 && (d[p] != d2[p] || b[3*p] != b2[3*p]))) { printf("MISMATCH iter %d p %d: %d %d\n", iter, p, id[p], id2[p]); return 1; }
      if (id[p] >= 0) covered++;
    }
    std::vector<float> attr(nv * 2, 1.f), out(H * W * 2);
    ee::interpolate_cpu(attr.data(), nv, 2, f.data(), nf, id.data(), b.data(), out.data(), H, W, x0, y0, x1, y1, 0);
    std::vector<float> nrm(nv * 3);
    ee::vertex_normals_cpu(v.data(), nv, f.data(), nf, nrm.data());
    std::vector<uint8_t> frame(50 * 60 * 3, 7);
    float lights[15] = {0,0,1, 1,0,0, 0,1,0, 0.5f,0.5f,0.5f, -1,0,0};
    float alb[3] = {0.5f, 0.5f, 0.5f};
    ee::CompositeArgs c{frame.data(), 50, 60, int(rng() % 200) - 100, int(rng() % 200) - 100, id.data(), b.data(), H, W,
                        f.data(), nf, nrm.data(), 0, alb, int(rng() % 2), lights, 5, 1.7f, 0.6f, int(rng() % 3)};
    float sh[27] = {1,1,1};
    if (c.mode == 1) c.light = sh;
    // tri ids outside the clip rectangle are 123 (stale): composite only over the clip rect rows
    for (auto& t : id) if (t >= nf) t = -1;
    ee::composite_cpu(c);
  }
  printf("ok, covered %ld\n", covered);
}
