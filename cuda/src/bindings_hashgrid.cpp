// Bindings of the multiresolution hash-grid encoding ops (a fragment of the `nerfgen` library, see
// bindings.cpp): checks tensors at the boundary and forwards raw pointers to hashgrid_api.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "bindings.h"
#include "nerfgen/hashgrid_api.h"

#ifdef NERFGEN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that one needs cuSPARSE/cuBLAS headers
#endif

namespace nerfgen {
namespace {

using bindings::num;  // numbers and shapes in messages: see bindings.h
using bindings::shape_of;

// The same entry points for CPU and CUDA tensors; `Launch` holds the device's launchers.
struct CpuLaunch {
  using Guard = bindings::NoDeviceGuard;
  template <typename T>
  static void forward(const HashGridProblem<T>& p, const T* table, T* out) {
    cpu::hash_grid_forward(p, table, out);
  }
  template <typename T>
  static void backward_table(const HashGridProblem<T>& p, const T* grad_out, T* grad_table) {
    cpu::hash_grid_backward_table(p, grad_out, grad_table);
  }
  template <typename T>
  static void backward_positions(const HashGridProblem<T>& p, const T* table, const T* grad_out, T* grad_pos) {
    cpu::hash_grid_backward_positions(p, table, grad_out, grad_pos);
  }
};

#ifdef NERFGEN_WITH_CUDA
struct CudaLaunch {
  using Guard = c10::cuda::CUDAGuard;  // launches on the tensors' device and its current stream
  template <typename T>
  static void forward(const HashGridProblem<T>& p, const T* table, T* out) {
    bindings::check_cuda("hash_grid", cuda::hash_grid_forward(p, table, out, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void backward_table(const HashGridProblem<T>& p, const T* grad_out, T* grad_table) {
    bindings::check_cuda("hash_grid",
                         cuda::hash_grid_backward_table(p, grad_out, grad_table, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void backward_positions(const HashGridProblem<T>& p, const T* table, const T* grad_out, T* grad_pos) {
    bindings::check_cuda("hash_grid", cuda::hash_grid_backward_positions(p, table, grad_out, grad_pos,
                                                                         c10::cuda::getCurrentCUDAStream()));
  }
};
#endif

// Shapes, dtypes and devices of the hash-grid arguments; returns the number of features F.
int64_t check_hash_grid(const at::Tensor& feats, int64_t feat_cols_per_level, const at::Tensor& positions,
                        const at::Tensor& resolutions, const at::Tensor& strides, int64_t log2_table_size) {
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3, "hash_grid: positions must be [n, 3], got ",
              shape_of(positions.sizes()));
  TORCH_CHECK(positions.scalar_type() == feats.scalar_type(), "hash_grid: positions are ",
              positions.scalar_type(), " but the table/gradient is ", feats.scalar_type());
  TORCH_CHECK(resolutions.dim() == 1 && resolutions.scalar_type() == at::kFloat,
              "hash_grid: resolutions must be a float32 [n_levels] tensor, got ", resolutions.scalar_type(),
              shape_of(resolutions.sizes()));
  const int64_t n_levels = resolutions.size(0);
  TORCH_CHECK(n_levels >= 1, "hash_grid: need at least one level");
  TORCH_CHECK(strides.dim() == 2 && strides.size(0) == n_levels && strides.size(1) == 3 &&
                  strides.scalar_type() == at::kInt,
              "hash_grid: strides must be int32 [n_levels, 3] = [", num(n_levels), ", 3], got ",
              strides.scalar_type(), shape_of(strides.sizes()));
  TORCH_CHECK(log2_table_size >= 1 && log2_table_size <= 30 && (n_levels << log2_table_size) <= (int64_t{1} << 31),
              "hash_grid: need n_levels << log2_table_size <= 2^31, got n_levels=", num(n_levels),
              ", log2_table_size=", num(log2_table_size));
  for (const at::Tensor* t : {&feats, &positions, &resolutions, &strides}) {
    TORCH_CHECK(t->is_contiguous(), "hash_grid: all tensors must be contiguous");
    TORCH_CHECK(t->device() == positions.device(), "hash_grid: all tensors must be on ", positions.device(),
                ", got one on ", t->device());
  }
  TORCH_CHECK(feat_cols_per_level > 0, "hash_grid: need at least one feature");
  return feat_cols_per_level;
}

template <typename scalar_t>
HashGridProblem<scalar_t> make_problem(const at::Tensor& positions, const at::Tensor& resolutions,
                                       const at::Tensor& strides, int64_t log2_table_size, int64_t n_features) {
  return HashGridProblem<scalar_t>{positions.data_ptr<scalar_t>(),
                                   resolutions.data_ptr<float>(),
                                   strides.data_ptr<int32_t>(),
                                   positions.size(0),
                                   static_cast<int>(resolutions.size(0)),
                                   static_cast<int>(n_features),
                                   static_cast<int>(log2_table_size),
                                   at::get_num_threads()};
}

int64_t table_features(const at::Tensor& table, const at::Tensor& resolutions, int64_t log2_table_size) {
  TORCH_CHECK(table.dim() == 2 && table.size(0) == (resolutions.size(0) << log2_table_size),
              "hash_grid: table must be [n_levels << log2_table_size, F] = [",
              num(resolutions.size(0) << log2_table_size), ", F], got ", shape_of(table.sizes()));
  return table.size(1);
}

int64_t grad_features(const at::Tensor& grad_out, const at::Tensor& positions, const at::Tensor& resolutions) {
  const int64_t n_levels = resolutions.size(0);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == positions.size(0) && grad_out.size(1) % n_levels == 0,
              "hash_grid: grad_out must be [n, n_levels * F] with n=", num(positions.size(0)),
              ", n_levels=", num(n_levels), ", got ", shape_of(grad_out.sizes()));
  return grad_out.size(1) / n_levels;
}

template <typename Launch>
at::Tensor hash_grid_fwd(const at::Tensor& positions, const at::Tensor& table, const at::Tensor& resolutions,
                         const at::Tensor& strides, int64_t log2_table_size) {
  const int64_t F = check_hash_grid(table, table_features(table, resolutions, log2_table_size), positions,
                                    resolutions, strides, log2_table_size);
  const typename Launch::Guard guard(positions.device());
  auto out = at::empty({positions.size(0), resolutions.size(0) * F}, table.options());
  if (positions.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "hash_grid_fwd", [&] {
    Launch::forward(make_problem<scalar_t>(positions, resolutions, strides, log2_table_size, F),
                    table.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
  });
  return out;
}

template <typename Launch>
at::Tensor hash_grid_bwd(const at::Tensor& grad_out, const at::Tensor& positions, const at::Tensor& resolutions,
                         const at::Tensor& strides, int64_t log2_table_size) {
  const int64_t F = check_hash_grid(grad_out, grad_features(grad_out, positions, resolutions), positions,
                                    resolutions, strides, log2_table_size);
  const typename Launch::Guard guard(positions.device());
  auto grad_table = at::empty({resolutions.size(0) << log2_table_size, F}, grad_out.options());
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "hash_grid_bwd", [&] {
    Launch::backward_table(make_problem<scalar_t>(positions, resolutions, strides, log2_table_size, F),
                           grad_out.data_ptr<scalar_t>(), grad_table.data_ptr<scalar_t>());
  });
  return grad_table;
}

template <typename Launch>
at::Tensor hash_grid_bwd_positions(const at::Tensor& grad_out, const at::Tensor& positions, const at::Tensor& table,
                                   const at::Tensor& resolutions, const at::Tensor& strides,
                                   int64_t log2_table_size) {
  const int64_t F = check_hash_grid(table, table_features(table, resolutions, log2_table_size), positions,
                                    resolutions, strides, log2_table_size);
  TORCH_CHECK(grad_features(grad_out, positions, resolutions) == F && grad_out.scalar_type() == table.scalar_type() &&
                  grad_out.is_contiguous() && grad_out.device() == table.device(),
              "hash_grid: grad_out must be a contiguous [n, n_levels * F] tensor like the output");
  const typename Launch::Guard guard(positions.device());
  auto grad_positions = at::empty_like(positions);
  if (positions.size(0) == 0) return grad_positions;
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "hash_grid_bwd_positions", [&] {
    Launch::backward_positions(make_problem<scalar_t>(positions, resolutions, strides, log2_table_size, F),
                               table.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(),
                               grad_positions.data_ptr<scalar_t>());
  });
  return grad_positions;
}


}  // namespace
}  // namespace nerfgen

TORCH_LIBRARY_FRAGMENT(nerfgen, m) {
  m.set_python_module("nerfgen.ops._kernels");
  m.def("hash_grid_fwd(Tensor positions, Tensor table, Tensor resolutions, Tensor strides, "
        "int log2_table_size) -> Tensor");
  m.def("hash_grid_bwd(Tensor grad_out, Tensor positions, Tensor resolutions, Tensor strides, "
        "int log2_table_size) -> Tensor");
  m.def("hash_grid_bwd_positions(Tensor grad_out, Tensor positions, Tensor table, Tensor resolutions, "
        "Tensor strides, int log2_table_size) -> Tensor");
}

TORCH_LIBRARY_IMPL(nerfgen, CPU, m) {
  m.impl("hash_grid_fwd", &nerfgen::hash_grid_fwd<nerfgen::CpuLaunch>);
  m.impl("hash_grid_bwd", &nerfgen::hash_grid_bwd<nerfgen::CpuLaunch>);
  m.impl("hash_grid_bwd_positions", &nerfgen::hash_grid_bwd_positions<nerfgen::CpuLaunch>);
}

#ifdef NERFGEN_WITH_CUDA
TORCH_LIBRARY_IMPL(nerfgen, CUDA, m) {
  m.impl("hash_grid_fwd", &nerfgen::hash_grid_fwd<nerfgen::CudaLaunch>);
  m.impl("hash_grid_bwd", &nerfgen::hash_grid_bwd<nerfgen::CudaLaunch>);
  m.impl("hash_grid_bwd_positions", &nerfgen::hash_grid_bwd_positions<nerfgen::CudaLaunch>);
}
#endif
