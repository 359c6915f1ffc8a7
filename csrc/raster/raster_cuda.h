// CUDA rasterizer entry points (host pointers in, host pointers out), compiled by nvcc into an
// object linked into emoca_edge._raster_cuda. No Python or pybind11 here.
#pragma once

#include <string>

#include "raster_cpu.h"

namespace ee {

// Number of CUDA devices, 0 when there is no driver or no device (never throws).
int cuda_device_count();

// Name of device 0, or the CUDA error text.
std::string cuda_device_name();

// Same contract as rasterize_cpu (args.threads is ignored): uploads vertices and faces, runs
// `repeats` times [snap vertices, clear keys, visibility pass, resolve pass] on the GPU, copies
// the clip rectangle of the three buffers back. *kernel_ms receives the mean device time of one
// repeat (CUDA events, transfers excluded). Returns "" on success or a description of the error.
std::string rasterize_cuda(const RasterArgs& args, int repeats, float* kernel_ms);

}  // namespace ee
