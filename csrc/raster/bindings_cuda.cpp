// pybind11 module emoca_edge._raster_cuda: the CUDA rasterizer (built only where nvcc exists;
// the CUDA runtime is linked statically, so importing it without a GPU or driver works and
// device_count() returns 0).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "raster_cuda.h"
#include "validate.h"

namespace py = pybind11;

namespace {

float rasterize_into(const py::array& vertices, const py::array& faces, py::array tri_id, py::array depth,
                     py::array bary, int x0, int y0, int x1, int y1, int64_t origin_x, int64_t origin_y, int cull,
                     int repeats) {
  const ee::RasterArgs a =
      ee_py::make_raster_args(vertices, faces, tri_id, depth, bary, x0, y0, x1, y1, origin_x, origin_y, cull, 1);
  if (repeats < 1) throw py::value_error("repeats: must be >= 1");
  float ms = 0.0f;
  std::string err;
  {
    py::gil_scoped_release release;
    if (ee::cuda_device_count() < 1) {
      err = "no CUDA device is available";
    } else {
      err = ee::rasterize_cuda(a, repeats, &ms);
    }
  }
  if (!err.empty()) throw std::runtime_error("CUDA rasterizer: " + err);
  return ms;
}

}  // namespace

PYBIND11_MODULE(_raster_cuda, m) {
  m.doc() = "emoca-edge CUDA rasterizer (see emoca_edge.render for the documented API).";
  m.def("device_count", &ee::cuda_device_count, "Number of CUDA devices (0 without driver or GPU).");
  m.def("device_name", &ee::cuda_device_name);
  m.def("rasterize_into", &rasterize_into, py::arg("vertices"), py::arg("faces"), py::arg("tri_id"),
        py::arg("depth"), py::arg("bary"), py::arg("x0"), py::arg("y0"), py::arg("x1"), py::arg("y1"),
        py::arg("origin_x"), py::arg("origin_y"), py::arg("cull"), py::arg("repeats") = 1,
        "Rasterize on the GPU into host buffers (clip rectangle only); returns the mean device time "
        "of one repeat in milliseconds, transfers excluded.");
}
