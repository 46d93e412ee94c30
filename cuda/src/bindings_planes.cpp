// Bindings of the factorised-plane ops (a fragment of the `nerfgen` library, see bindings.cpp):
// checks tensors at the boundary and forwards raw pointers to planes_api.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "bindings.h"
#include "nerfgen/planes_api.h"

#ifdef NERFGEN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that one needs cuSPARSE/cuBLAS headers
#endif

namespace nerfgen {
namespace {

using bindings::num;  // numbers and shapes in messages: see bindings.h
using bindings::shape_of;

struct CpuLaunch {
  using Guard = bindings::NoDeviceGuard;
  template <typename T>
  static void plane_forward(const PlaneProblem<T>& p, const T* table, T* out) {
    cpu::plane_forward(p, table, out);
  }
  template <typename T>
  static void plane_backward(const PlaneProblem<T>& p, const T* table, const T* grad_out, int64_t rows, T* grad_table,
                             T* grad_coords) {
    cpu::plane_backward(p, table, grad_out, rows, grad_table, grad_coords);
  }
};

#ifdef NERFGEN_WITH_CUDA
struct CudaLaunch {
  using Guard = c10::cuda::CUDAGuard;  // launches on the tensors' device and its current stream
  template <typename T>
  static void plane_forward(const PlaneProblem<T>& p, const T* table, T* out) {
    bindings::check_cuda("planes", cuda::plane_forward(p, table, out, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void plane_backward(const PlaneProblem<T>& p, const T* table, const T* grad_out, int64_t rows, T* grad_table,
                             T* grad_coords) {
    bindings::check_cuda("planes", cuda::plane_backward(p, table, grad_out, rows, grad_table, grad_coords,
                                                        c10::cuda::getCurrentCUDAStream()));
  }
};
#endif

void check_planes(const at::Tensor& coords, const at::Tensor& table, const at::Tensor& axes, const at::Tensor& sizes,
                  const at::Tensor& offsets, int64_t n_levels) {
  TORCH_CHECK(coords.dim() == 2 && coords.size(1) >= 2, "planes: coords must be [n, D >= 2], got ",
              shape_of(coords.sizes()));
  TORCH_CHECK(table.dim() == 2 && table.size(1) >= 1 && table.size(1) <= kMaxPlaneFeatures &&
                  table.scalar_type() == coords.scalar_type(),
              "planes: table must be [rows, C <= ", num(kMaxPlaneFeatures), "] of the coordinates' dtype, got ",
              table.scalar_type(), shape_of(table.sizes()));
  const int64_t n_planes = axes.dim() == 2 ? axes.size(0) : 0;
  TORCH_CHECK(n_planes >= 1 && axes.size(1) == 2 && axes.scalar_type() == at::kInt && sizes.scalar_type() == at::kInt &&
                  sizes.dim() == 2 && sizes.size(0) == n_planes && sizes.size(1) == 2 && offsets.dim() == 1 &&
                  offsets.size(0) == n_planes && offsets.scalar_type() == at::kLong,
              "planes: axes and sizes must be int32 [P, 2], offsets int64 [P]");
  TORCH_CHECK(n_levels >= 1 && n_planes % n_levels == 0 && n_planes / n_levels <= kMaxPlanesPerLevel,
              "planes: ", num(n_planes), " planes do not split into ", num(n_levels), " levels of at most ",
              num(kMaxPlanesPerLevel));
  for (const at::Tensor* t : {&coords, &table, &axes, &sizes, &offsets}) {
    TORCH_CHECK(t->is_contiguous() && t->device() == coords.device(), "planes: tensors must be contiguous, on ",
                coords.device());
  }
}

template <typename scalar_t>
PlaneProblem<scalar_t> make_planes(const at::Tensor& coords, const at::Tensor& table, const at::Tensor& axes,
                                   const at::Tensor& sizes, const at::Tensor& offsets, int64_t n_levels) {
  return PlaneProblem<scalar_t>{coords.data_ptr<scalar_t>(), axes.data_ptr<int32_t>(),   sizes.data_ptr<int32_t>(),
                                offsets.data_ptr<int64_t>(), coords.size(0),             static_cast<int>(coords.size(1)),
                                static_cast<int>(axes.size(0)), static_cast<int>(n_levels), static_cast<int>(table.size(1)),
                                at::get_num_threads()};
}

template <typename Launch>
at::Tensor plane_fwd_op(const at::Tensor& coords, const at::Tensor& table, const at::Tensor& axes,
                        const at::Tensor& sizes, const at::Tensor& offsets, int64_t n_levels) {
  check_planes(coords, table, axes, sizes, offsets, n_levels);
  const typename Launch::Guard guard(coords.device());
  auto out = at::empty({coords.size(0), n_levels * table.size(1)}, table.options());
  if (coords.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "plane_fwd", [&] {
    Launch::plane_forward(make_planes<scalar_t>(coords, table, axes, sizes, offsets, n_levels),
                          table.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
  });
  return out;
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> plane_bwd_op(const at::Tensor& grad_out, const at::Tensor& coords,
                                                const at::Tensor& table, const at::Tensor& axes,
                                                const at::Tensor& sizes, const at::Tensor& offsets, int64_t n_levels,
                                                bool table_grad, bool coords_grad) {
  check_planes(coords, table, axes, sizes, offsets, n_levels);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == coords.size(0) &&
                  grad_out.size(1) == n_levels * table.size(1) && grad_out.is_contiguous() &&
                  grad_out.scalar_type() == table.scalar_type() && grad_out.device() == table.device(),
              "plane_bwd: grad_out must be a contiguous [n, n_levels * C] tensor like the output, got ",
              shape_of(grad_out.sizes()));
  const typename Launch::Guard guard(coords.device());
  auto grad_table = table_grad ? at::empty_like(table) : at::empty({0}, table.options());
  auto grad_coords = coords_grad ? at::empty_like(coords) : at::empty({0}, coords.options());
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "plane_bwd", [&] {
    Launch::plane_backward(make_planes<scalar_t>(coords, table, axes, sizes, offsets, n_levels),
                           table.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(), table.size(0),
                           table_grad ? grad_table.data_ptr<scalar_t>() : nullptr,
                           coords_grad ? grad_coords.data_ptr<scalar_t>() : nullptr);
  });
  return {grad_table, grad_coords};
}

}  // namespace
}  // namespace nerfgen

TORCH_LIBRARY_FRAGMENT(nerfgen, m) {
  m.set_python_module("nerfgen.ops._kernels");
  m.def("plane_fwd(Tensor coords, Tensor table, Tensor axes, Tensor sizes, Tensor offsets, int n_levels) -> Tensor");
  m.def("plane_bwd(Tensor grad_out, Tensor coords, Tensor table, Tensor axes, Tensor sizes, Tensor offsets, "
        "int n_levels, bool table_grad, bool coords_grad) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(nerfgen, CPU, m) {
  m.impl("plane_fwd", &nerfgen::plane_fwd_op<nerfgen::CpuLaunch>);
  m.impl("plane_bwd", &nerfgen::plane_bwd_op<nerfgen::CpuLaunch>);
}

#ifdef NERFGEN_WITH_CUDA
TORCH_LIBRARY_IMPL(nerfgen, CUDA, m) {
  m.impl("plane_fwd", &nerfgen::plane_fwd_op<nerfgen::CudaLaunch>);
  m.impl("plane_bwd", &nerfgen::plane_bwd_op<nerfgen::CudaLaunch>);
}
#endif
