// pybind11 module emoca_edge._raster: strict wrappers around the CPU rasterizer.
// Every array is checked for dtype, shape, C-contiguity and (for outputs) writeability, and
// every face index for range, before any raw pointer is touched; errors are ValueError /
// IndexError with the name of the offending argument. The GIL is released while computing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "raster_common.h"
#include "raster_cpu.h"
#include "validate.h"

namespace py = pybind11;

namespace {

using namespace ee_py;

int rasterize_into(const py::array& vertices, const py::array& faces, py::array tri_id, py::array depth,
                   py::array bary, int x0, int y0, int x1, int y1, int64_t origin_x, int64_t origin_y, int cull,
                   int threads) {
  const ee::RasterArgs a =
      make_raster_args(vertices, faces, tri_id, depth, bary, x0, y0, x1, y1, origin_x, origin_y, cull, threads);
  py::gil_scoped_release release;
  return ee::rasterize_cpu(a);
}

void emulate_cuda_into(const py::array& vertices, const py::array& faces, py::array tri_id, py::array depth,
                       py::array bary, int x0, int y0, int x1, int y1, int64_t origin_x, int64_t origin_y, int cull,
                       const py::array& order) {
  const ee::RasterArgs a =
      make_raster_args(vertices, faces, tri_id, depth, bary, x0, y0, x1, y1, origin_x, origin_y, cull, 1);
  check_array<int64_t>(order, "order", "int64", false);
  check_shape(order, "order", {faces.shape(0)}, "(F,) like faces");
  const int64_t* o = static_cast<const int64_t*>(order.data());
  for (py::ssize_t k = 0; k < order.shape(0); ++k) {
    if (o[k] < 0 || o[k] >= faces.shape(0)) throw py::index_error("order: triangle index out of range");
  }
  py::gil_scoped_release release;
  ee::emulate_cuda_cpu(a, o);
}

void interpolate_into(const py::array& attr, const py::array& faces, const py::array& tri_id, const py::array& bary,
                      py::array out, int x0, int y0, int x1, int y1, int threads) {
  check_array<float>(attr, "attributes", "float32", false);
  check_shape(attr, "attributes", {-1, -1}, "(V, C)");
  check_faces(faces, attr.shape(0));
  check_array<int32_t>(tri_id, "tri_id", "int32", false);
  check_array<float>(bary, "bary", "float32", false);
  check_array<float>(out, "out", "float32", true);
  check_shape(tri_id, "tri_id", {-1, -1}, "(H, W)");
  const py::ssize_t h = tri_id.shape(0), w = tri_id.shape(1), c = attr.shape(1);
  check_shape(bary, "bary", {h, w, 3}, "(H, W, 3) like tri_id");
  check_shape(out, "out", {h, w, c}, "(H, W, C) like tri_id and attributes");
  check_rect(x0, y0, x1, y1, int(h), int(w));
  if (threads < 0) throw py::value_error("threads: must be >= 0 (0 = automatic)");
  const float* ap = static_cast<const float*>(attr.data());
  const int32_t* fp = static_cast<const int32_t*>(faces.data());
  const int32_t* tp = static_cast<const int32_t*>(tri_id.data());
  const float* bp = static_cast<const float*>(bary.data());
  float* op = static_cast<float*>(out.mutable_data());
  const int64_t nv = attr.shape(0), nf = faces.shape(0);
  py::gil_scoped_release release;
  ee::interpolate_cpu(ap, nv, int(c), fp, nf, tp, bp, op, int(h), int(w), x0, y0, x1, y1, threads);
}

py::array_t<float> vertex_normals(const py::array& vertices, const py::array& faces) {
  check_array<float>(vertices, "vertices", "float32", false);
  check_shape(vertices, "vertices", {-1, 3}, "(V, 3)");
  check_faces(faces, vertices.shape(0));
  py::array_t<float> out({vertices.shape(0), py::ssize_t(3)});
  const float* vp = static_cast<const float*>(vertices.data());
  const int32_t* fp = static_cast<const int32_t*>(faces.data());
  float* op = out.mutable_data();
  const int64_t nv = vertices.shape(0), nf = faces.shape(0);
  {
    py::gil_scoped_release release;
    ee::vertex_normals_cpu(vp, nv, fp, nf, op);
  }
  return out;
}

void composite_into(py::array frame, int x0, int y0, const py::array& tri_id, const py::array& bary,
                    const py::array& faces, const py::array& normals, int albedo_kind, const py::array& albedo, int mode,
                    const py::array& light, float intensity, float alpha, int threads) {
  check_array<uint8_t>(frame, "frame", "uint8", true);
  check_shape(frame, "frame", {-1, -1, 3}, "(H, W, 3)");
  check_array<int32_t>(tri_id, "tri_id", "int32", false);
  check_shape(tri_id, "tri_id", {-1, -1}, "(h, w)");
  const py::ssize_t h = tri_id.shape(0), w = tri_id.shape(1);
  check_array<float>(bary, "bary", "float32", false);
  check_shape(bary, "bary", {h, w, 3}, "(h, w, 3) like tri_id");
  check_array<float>(normals, "normals", "float32", false);
  check_shape(normals, "normals", {-1, 3}, "(V, 3)");
  check_faces(faces, normals.shape(0));
  check_array<float>(albedo, "albedo", "float32", false);
  if (albedo_kind == 0) {
    check_shape(albedo, "albedo", {3}, "(3,)");
  } else if (albedo_kind == 1) {
    check_shape(albedo, "albedo", {normals.shape(0), 3}, "(V, 3) like normals");
  } else if (albedo_kind == 2) {
    check_shape(albedo, "albedo", {h, w, 3}, "(h, w, 3) like tri_id");
  } else {
    throw py::value_error("albedo_kind: expected 0 (constant), 1 (per vertex) or 2 (per pixel)");
  }
  check_array<float>(light, "light", "float32", false);
  if (mode == 0) {
    check_shape(light, "light", {-1, 3}, "(L, 3) directions");
    if (light.shape(0) < 1 || light.shape(0) > ee::kMaxLights) {
      throw py::value_error("light: between 1 and " + std::to_string(ee::kMaxLights) + " directional lights");
    }
  } else if (mode == 1) {
    check_shape(light, "light", {9, 3}, "(9, 3) SH coefficients");
  } else {
    throw py::value_error("mode: expected 0 (directional) or 1 (spherical harmonics)");
  }
  if (!(alpha >= 0.0f && alpha <= 1.0f)) throw py::value_error("alpha: expected a value in [0, 1]");
  if (threads < 0) throw py::value_error("threads: must be >= 0 (0 = automatic)");
  const int32_t* t = static_cast<const int32_t*>(tri_id.data());
  const int64_t nf = faces.shape(0);
  int32_t tmax = -1;  // a max reduction (vectorised) first, the offending value only on failure
  for (py::ssize_t k = 0; k < h * w; ++k) tmax = t[k] > tmax ? t[k] : tmax;
  if (tmax >= nf) {
    for (py::ssize_t k = 0; k < h * w; ++k) {
      if (t[k] >= nf) throw py::index_error("tri_id: value " + std::to_string(t[k]) + " is out of range for " +
                                            std::to_string(nf) + " faces");
    }
  }
  ee::CompositeArgs c;
  c.frame = static_cast<uint8_t*>(frame.mutable_data());
  c.frame_h = int(frame.shape(0));
  c.frame_w = int(frame.shape(1));
  c.x0 = x0;
  c.y0 = y0;
  c.tri_id = t;
  c.bary = static_cast<const float*>(bary.data());
  c.h = int(h);
  c.w = int(w);
  c.faces = static_cast<const int32_t*>(faces.data());
  c.num_faces = nf;
  c.normals = static_cast<const float*>(normals.data());
  c.albedo_kind = albedo_kind;
  c.albedo = static_cast<const float*>(albedo.data());
  c.mode = mode;
  c.light = static_cast<const float*>(light.data());
  c.num_lights = int(light.shape(0));
  c.intensity = intensity;
  c.alpha = alpha;
  c.threads = threads;
  py::gil_scoped_release release;
  ee::composite_cpu(c);
}

}  // namespace

PYBIND11_MODULE(_raster, m) {
  m.doc() = "emoca-edge native CPU rasterizer (see emoca_edge.render for the documented API).";
  m.attr("SUBPIXEL_BITS") = ee::kSubBits;
  m.attr("GUARD_PIXELS") = int64_t(ee::kGuard >> ee::kSubBits);
  m.attr("MAX_SIDE") = ee::kMaxSide;
  m.def("rasterize_into", &rasterize_into, py::arg("vertices"), py::arg("faces"), py::arg("tri_id"),
        py::arg("depth"), py::arg("bary"), py::arg("x0"), py::arg("y0"), py::arg("x1"), py::arg("y1"),
        py::arg("origin_x"), py::arg("origin_y"), py::arg("cull"), py::arg("threads"),
        "Clear the clip rectangle of the buffers and rasterize into it; returns the thread count used.");
  m.def("emulate_cuda_into", &emulate_cuda_into, py::arg("vertices"), py::arg("faces"), py::arg("tri_id"),
        py::arg("depth"), py::arg("bary"), py::arg("x0"), py::arg("y0"), py::arg("x1"), py::arg("y1"),
        py::arg("origin_x"), py::arg("origin_y"), py::arg("cull"), py::arg("order"),
        "Test aid: the CUDA kernels' per-thread code run sequentially on the host, triangles in `order`.");
  m.def("interpolate_into", &interpolate_into, py::arg("attributes"), py::arg("faces"), py::arg("tri_id"),
        py::arg("bary"), py::arg("out"), py::arg("x0"), py::arg("y0"), py::arg("x1"), py::arg("y1"),
        py::arg("threads"), "Barycentric interpolation of per-vertex attributes into out (H, W, C).");
  m.def("vertex_normals", &vertex_normals, py::arg("vertices"), py::arg("faces"),
        "Area-weighted unit vertex normals (V, 3) float32.");
  m.def("composite_into", &composite_into, py::arg("frame"), py::arg("x0"), py::arg("y0"), py::arg("tri_id"),
        py::arg("bary"), py::arg("faces"), py::arg("normals"), py::arg("albedo_kind"), py::arg("albedo"),
        py::arg("mode"), py::arg("light"), py::arg("intensity"), py::arg("alpha"), py::arg("threads"),
        "Shade covered pixels (directional or SH lighting) and alpha-blend them into a uint8 frame.");
  m.def("hardware_threads", &ee::hardware_threads);
  m.def("_set_simd", &ee::set_simd_enabled, py::arg("enabled"),
        "Test aid: enable/disable the SIMD triangle kernel of rasterize_into; returns the previous setting.");
}
