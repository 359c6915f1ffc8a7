// Argument validation shared by the CPU and CUDA pybind11 modules.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>

#include "raster_common.h"
#include "raster_cpu.h"

namespace py = pybind11;

namespace ee_py {


inline std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

template <class T>
inline void check_array(const py::array& a, const char* name, const char* dtype_name, bool writeable) {
  if (!py::isinstance<py::array_t<T>>(a)) {
    throw py::value_error(std::string(name) + ": expected dtype " + dtype_name + ", got " +
                          std::string(py::str(a.dtype())));
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": array must be C-contiguous");
  if (writeable && !a.writeable()) throw py::value_error(std::string(name) + ": output array is read-only");
}

inline void check_shape(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape,
                 const char* expected) {
  bool ok = a.ndim() == py::ssize_t(shape.size());
  py::ssize_t i = 0;
  for (const auto s : shape) {
    if (!ok) break;
    if (s >= 0 && a.shape(i) != s) ok = false;
    ++i;
  }
  if (!ok) throw py::value_error(std::string(name) + ": expected shape " + expected + ", got " + shape_str(a));
}

inline void check_faces(const py::array& faces, int64_t num_vertices) {
  check_array<int32_t>(faces, "faces", "int32", false);
  check_shape(faces, "faces", {-1, 3}, "(F, 3)");
  const int32_t* f = static_cast<const int32_t*>(faces.data());
  const int64_t n = faces.shape(0) * 3;
  // Branch-free scan first (int32 compares the compiler vectorises even for plain SSE2); the
  // offending index is only searched for when there is one.
  const int32_t last = num_vertices > INT32_MAX ? INT32_MAX : int32_t(num_vertices - 1);  // -1: none valid
  unsigned bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= unsigned(f[i] < 0) | unsigned(f[i] > last);
  if (!bad) return;
  for (int64_t i = 0; i < n; ++i) {
    if (f[i] < 0 || f[i] >= num_vertices) {
      std::ostringstream s;
      s << "faces: index " << f[i] << " in triangle " << i / 3 << " is out of range for " << num_vertices
        << " vertices";
      throw py::index_error(s.str());
    }
  }
}

struct Buffers {
  int height, width;
};

inline Buffers check_targets(const py::array& tri_id, const py::array& depth, const py::array& bary) {
  check_array<int32_t>(tri_id, "tri_id", "int32", true);
  check_array<float>(depth, "depth", "float32", true);
  check_array<float>(bary, "bary", "float32", true);
  check_shape(tri_id, "tri_id", {-1, -1}, "(H, W)");
  const py::ssize_t h = tri_id.shape(0), w = tri_id.shape(1);
  if (h < 1 || w < 1 || h > ee::kMaxSide || w > ee::kMaxSide) {
    throw py::value_error("tri_id: buffer size " + shape_str(tri_id) + " must be within 1.." +
                          std::to_string(ee::kMaxSide) + " per side");
  }
  check_shape(depth, "depth", {h, w}, "(H, W) like tri_id");
  check_shape(bary, "bary", {h, w, 3}, "(H, W, 3) like tri_id");
  return {int(h), int(w)};
}

inline void check_rect(int x0, int y0, int x1, int y1, int h, int w) {
  if (x0 < 0 || y0 < 0 || x1 > w || y1 > h || x0 > x1 || y0 > y1) {
    std::ostringstream s;
    s << "clip rectangle (x0=" << x0 << ", y0=" << y0 << ", x1=" << x1 << ", y1=" << y1
      << ") must satisfy 0 <= x0 <= x1 <= " << w << " and 0 <= y0 <= y1 <= " << h;
    throw py::value_error(s.str());
  }
}


// Validates the arguments of a rasterize call and fills RasterArgs (pointers into the arrays).
inline ee::RasterArgs make_raster_args(const py::array& vertices, const py::array& faces, py::array& tri_id,
                                       py::array& depth, py::array& bary, int x0, int y0, int x1, int y1,
                                       int64_t origin_x, int64_t origin_y, int cull, int threads) {
  check_array<float>(vertices, "vertices", "float32", false);
  check_shape(vertices, "vertices", {-1, 3}, "(V, 3)");
  check_faces(faces, vertices.shape(0));
  const Buffers b = check_targets(tri_id, depth, bary);
  check_rect(x0, y0, x1, y1, b.height, b.width);
  if (cull < ee::kCullNone || cull > ee::kCullFront) throw py::value_error("cull: expected 0 (none), 1 (back) or 2 (front)");
  if (threads < 0) throw py::value_error("threads: must be >= 0 (0 = automatic)");
  const int64_t lim = int64_t(1) << 40;
  if (origin_x < -lim || origin_x > lim || origin_y < -lim || origin_y > lim) throw py::value_error("origin: out of range");
  ee::RasterArgs a;
  a.vertices = static_cast<const float*>(vertices.data());
  a.num_vertices = vertices.shape(0);
  a.faces = static_cast<const int32_t*>(faces.data());
  a.num_faces = faces.shape(0);
  a.tri_id = static_cast<int32_t*>(tri_id.mutable_data());
  a.depth = static_cast<float*>(depth.mutable_data());
  a.bary = static_cast<float*>(bary.mutable_data());
  a.height = b.height;
  a.width = b.width;
  a.clip_x0 = x0;
  a.clip_y0 = y0;
  a.clip_x1 = x1;
  a.clip_y1 = y1;
  a.origin_x = origin_x;
  a.origin_y = origin_y;
  a.cull = cull;
  a.threads = threads;
  return a;
}

}  // namespace ee_py
