// CUDA rasterizer: single-pass, race-free visibility.
//   1. snap vertices (same arithmetic as the CPU path, raster_common.h);
//   2. clear a 64-bit key per pixel of the clip rectangle to ~0;
//   3. one thread per triangle walks its clipped box and does atomicMin(key, depth_bits << 32 | id)
//      for each covered sample: the minimum over all triangles is independent of execution order,
//      with ties in depth going to the lowest triangle index (as on the CPU);
//   4. resolve: one thread per pixel decodes the id and recomputes depth and barycentrics from
//      the same integer edge functions, so they are exactly those of the winning key.
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "raster_common.h"
#include "raster_cuda.h"
#include "raster_kernels.h"

namespace ee {
namespace {

__global__ void snap_kernel(const float* __restrict__ v, int64_t nv, int64_t ox, int64_t oy, QVert* __restrict__ q) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= nv) return;
  q[i] = quantize_vertex(v[3 * i], v[3 * i + 1], v[3 * i + 2], ox, oy);
}

__global__ void clear_kernel(unsigned long long* __restrict__ keys, int width, int x0, int y0, int x1, int y1) {
  const int j = x0 + blockIdx.x * blockDim.x + threadIdx.x;
  const int i = y0 + blockIdx.y * blockDim.y + threadIdx.y;
  if (j >= x1 || i >= y1) return;
  keys[size_t(i) * width + j] = kEmptyKey;
}

struct DeviceAtomicMin {
  __device__ void operator()(unsigned long long* slot, unsigned long long key) const {
    if (key < *slot) atomicMin(slot, key);  // the plain read only skips hopeless atomics
  }
};

__global__ void visibility_kernel(const QVert* __restrict__ q, const int32_t* __restrict__ faces, int64_t nf,
                                  int cull, int width, int x0, int y0, int x1, int y1, unsigned long long* keys) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= nf) return;
  visibility_triangle(q, faces, t, cull, width, x0, y0, x1, y1, keys, DeviceAtomicMin());
}

__global__ void resolve_kernel(const QVert* __restrict__ q, const int32_t* __restrict__ faces, int cull, int width,
                               int x0, int y0, int x1, int y1, const unsigned long long* __restrict__ keys,
                               int32_t* __restrict__ tri_id, float* __restrict__ depth, float* __restrict__ bary) {
  const int j = x0 + blockIdx.x * blockDim.x + threadIdx.x;
  const int i = y0 + blockIdx.y * blockDim.y + threadIdx.y;
  if (j >= x1 || i >= y1) return;
  resolve_pixel(q, faces, cull, width, x0, y0, x1, y1, keys, j, i, tri_id, depth, bary);
}

// Device buffers kept between calls (grown on demand), guarded by a mutex.
struct DeviceBuffers {
  float* vertices = nullptr;
  QVert* qverts = nullptr;
  size_t vcap = 0;
  int32_t* faces = nullptr;
  size_t fcap = 0;
  unsigned long long* keys = nullptr;
  int32_t* tri_id = nullptr;
  float* depth = nullptr;
  float* bary = nullptr;
  size_t pcap = 0;
  cudaEvent_t start = nullptr, stop = nullptr;
};

std::mutex g_mutex;
DeviceBuffers g_buf;

#define EE_CUDA(call)                                                                     \
  do {                                                                                    \
    const cudaError_t err_ = (call);                                                      \
    if (err_ != cudaSuccess) return std::string(#call) + ": " + cudaGetErrorString(err_); \
  } while (0)

std::string ensure(size_t nv, size_t nf, size_t np) {
  DeviceBuffers& b = g_buf;
  if (!b.start) {
    EE_CUDA(cudaEventCreate(&b.start));
    EE_CUDA(cudaEventCreate(&b.stop));
  }
  if (nv > b.vcap) {
    cudaFree(b.vertices);
    cudaFree(b.qverts);
    b.vertices = nullptr;
    b.qverts = nullptr;
    b.vcap = 0;
    EE_CUDA(cudaMalloc(&b.vertices, nv * 3 * sizeof(float)));
    EE_CUDA(cudaMalloc(&b.qverts, nv * sizeof(QVert)));
    b.vcap = nv;
  }
  if (nf > b.fcap) {
    cudaFree(b.faces);
    b.faces = nullptr;
    b.fcap = 0;
    EE_CUDA(cudaMalloc(&b.faces, nf * 3 * sizeof(int32_t)));
    b.fcap = nf;
  }
  if (np > b.pcap) {
    cudaFree(b.keys);
    cudaFree(b.tri_id);
    cudaFree(b.depth);
    cudaFree(b.bary);
    b.keys = nullptr;
    b.tri_id = nullptr;
    b.depth = nullptr;
    b.bary = nullptr;
    b.pcap = 0;
    EE_CUDA(cudaMalloc(&b.keys, np * sizeof(unsigned long long)));
    EE_CUDA(cudaMalloc(&b.tri_id, np * sizeof(int32_t)));
    EE_CUDA(cudaMalloc(&b.depth, np * sizeof(float)));
    EE_CUDA(cudaMalloc(&b.bary, np * 3 * sizeof(float)));
    b.pcap = np;
  }
  return "";
}

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a missing driver
    return 0;
  }
  return n;
}

std::string cuda_device_name() {
  cudaDeviceProp prop;
  const cudaError_t err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) return std::string("error: ") + cudaGetErrorString(err);
  return prop.name;
}

std::string rasterize_cuda(const RasterArgs& a, int repeats, float* kernel_ms) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *kernel_ms = 0.0f;
  const int x0 = a.clip_x0, y0 = a.clip_y0, x1 = a.clip_x1, y1 = a.clip_y1;
  if (x1 <= x0 || y1 <= y0) return "";
  const size_t nv = size_t(a.num_vertices), nf = size_t(a.num_faces), np = size_t(a.height) * a.width;
  const std::string err = ensure(nv > 0 ? nv : 1, nf > 0 ? nf : 1, np);
  if (!err.empty()) return err;
  DeviceBuffers& b = g_buf;
  if (nv) EE_CUDA(cudaMemcpy(b.vertices, a.vertices, nv * 3 * sizeof(float), cudaMemcpyHostToDevice));
  if (nf) EE_CUDA(cudaMemcpy(b.faces, a.faces, nf * 3 * sizeof(int32_t), cudaMemcpyHostToDevice));
  const dim3 block2(32, 8);
  const dim3 grid2((x1 - x0 + 31) / 32, (y1 - y0 + 7) / 8);
  if (repeats < 1) repeats = 1;
  EE_CUDA(cudaEventRecord(b.start));
  for (int r = 0; r < repeats; ++r) {
    if (nv) snap_kernel<<<unsigned((nv + 255) / 256), 256>>>(b.vertices, int64_t(nv), a.origin_x, a.origin_y, b.qverts);
    clear_kernel<<<grid2, block2>>>(b.keys, a.width, x0, y0, x1, y1);
    if (nf) {
      visibility_kernel<<<unsigned((nf + 127) / 128), 128>>>(b.qverts, b.faces, int64_t(nf), a.cull, a.width, x0, y0,
                                                             x1, y1, b.keys);
    }
    resolve_kernel<<<grid2, block2>>>(b.qverts, b.faces, a.cull, a.width, x0, y0, x1, y1, b.keys, b.tri_id, b.depth,
                                      b.bary);
  }
  EE_CUDA(cudaEventRecord(b.stop));
  EE_CUDA(cudaGetLastError());
  EE_CUDA(cudaEventSynchronize(b.stop));
  float ms = 0.0f;
  EE_CUDA(cudaEventElapsedTime(&ms, b.start, b.stop));
  *kernel_ms = ms / float(repeats);
  const size_t W = size_t(a.width), cols = size_t(x1 - x0), rows = size_t(y1 - y0);
  const size_t off = size_t(y0) * W + size_t(x0);
  EE_CUDA(cudaMemcpy2D(a.tri_id + off, W * sizeof(int32_t), b.tri_id + off, W * sizeof(int32_t),
                       cols * sizeof(int32_t), rows, cudaMemcpyDeviceToHost));
  EE_CUDA(cudaMemcpy2D(a.depth + off, W * sizeof(float), b.depth + off, W * sizeof(float), cols * sizeof(float), rows,
                       cudaMemcpyDeviceToHost));
  EE_CUDA(cudaMemcpy2D(a.bary + 3 * off, 3 * W * sizeof(float), b.bary + 3 * off, 3 * W * sizeof(float),
                       3 * cols * sizeof(float), rows, cudaMemcpyDeviceToHost));
  return "";
}

}  // namespace ee
