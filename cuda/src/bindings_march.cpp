// Bindings of the ray-marching ops, ray/box intersection and occupancy-grid traversal (a fragment
// of the `nerfgen` library, see bindings.cpp): checks tensors at the boundary and forwards raw
// pointers to march_api.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <optional>
#include <tuple>

#include "bindings.h"
#include "nerfgen/march_api.h"

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
  static void intersect(const float* o, const float* d, const float* boxes, int64_t n, int n_boxes, float near_plane,
                        float far_plane, float* t_mins, float* t_maxs, bool* hits) {
    cpu::ray_aabb_intersect(o, d, boxes, n, n_boxes, near_plane, far_plane, t_mins, t_maxs, hits,
                            at::get_num_threads());
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> march(const MarchProblem& p, const at::TensorOptions& opts) {
    bindings::MarchTensors out{opts, {}, {}, {}};
    cpu::march(p, &bindings::MarchTensors::allocate, &out);
    return {out.t_starts, out.t_ends, out.ray_indices};
  }
};

#ifdef NERFGEN_WITH_CUDA
struct CudaLaunch {
  using Guard = c10::cuda::CUDAGuard;  // launches on the tensors' device and its current stream
  static void intersect(const float* o, const float* d, const float* boxes, int64_t n, int n_boxes, float near_plane,
                        float far_plane, float* t_mins, float* t_maxs, bool* hits) {
    bindings::check_cuda("ray_aabb_intersect",
                         cuda::ray_aabb_intersect(o, d, boxes, n, n_boxes, near_plane, far_plane, t_mins, t_maxs,
                                                  hits, c10::cuda::getCurrentCUDAStream()));
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> march(const MarchProblem& p, const at::TensorOptions& opts) {
    const auto stream = c10::cuda::getCurrentCUDAStream();
    return bindings::count_and_fill(
        p.n_rays, opts,
        [&](int64_t* counts) { bindings::check_cuda("traverse_grids", cuda::march_count(p, counts, stream)); },
        [&](const int64_t* offsets, float* t0, float* t1, int64_t* ri) {
          bindings::check_cuda("traverse_grids", cuda::march_fill(p, offsets, t0, t1, ri, stream));
        });
  }
};
#endif

void check_rays(const char* op, const at::Tensor& origins, const at::Tensor& directions) {
  TORCH_CHECK(origins.dim() == 2 && origins.size(1) == 3 && directions.sizes() == origins.sizes(), op,
              ": origins and directions must both be [n_rays, 3], got ", shape_of(origins.sizes()), " and ",
              shape_of(directions.sizes()));
  for (const at::Tensor* t : {&origins, &directions}) {
    TORCH_CHECK(t->scalar_type() == at::kFloat && t->is_contiguous(), op, ": rays must be contiguous float32");
    TORCH_CHECK(t->device() == origins.device(), op, ": all tensors must be on ", origins.device());
  }
}

void check_boxes(const char* op, const at::Tensor& aabbs, const at::Tensor& origins) {
  TORCH_CHECK(aabbs.dim() == 2 && aabbs.size(1) == 6 && aabbs.size(0) >= 1 && aabbs.scalar_type() == at::kFloat &&
                  aabbs.is_contiguous() && aabbs.device() == origins.device(),
              op, ": aabbs must be a contiguous float32 [n_boxes >= 1, 6] tensor on ", origins.device(), ", got ",
              aabbs.scalar_type(), shape_of(aabbs.sizes()));
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor> ray_aabb_intersect_op(const at::Tensor& origins,
                                                                     const at::Tensor& directions,
                                                                     const at::Tensor& aabbs, double near_plane,
                                                                     double far_plane) {
  check_rays("ray_aabb_intersect", origins, directions);
  check_boxes("ray_aabb_intersect", aabbs, origins);
  const typename Launch::Guard guard(origins.device());
  const int64_t n = origins.size(0), m = aabbs.size(0);
  auto t_mins = at::empty({n, m}, origins.options());
  auto t_maxs = at::empty({n, m}, origins.options());
  auto hits = at::empty({n, m}, origins.options().dtype(at::kBool));
  Launch::intersect(origins.data_ptr<float>(), directions.data_ptr<float>(), aabbs.data_ptr<float>(), n,
                    static_cast<int>(m), static_cast<float>(near_plane), static_cast<float>(far_plane),
                    t_mins.data_ptr<float>(), t_maxs.data_ptr<float>(), hits.data_ptr<bool>());
  return {t_mins, t_maxs, hits};
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor> traverse_grids_op(
    const at::Tensor& origins, const at::Tensor& directions, const at::Tensor& binaries, const at::Tensor& aabbs,
    const std::optional<at::Tensor>& jitter, double near_plane, double far_plane, double step_size,
    double cone_angle) {
  check_rays("traverse_grids", origins, directions);
  check_boxes("traverse_grids", aabbs, origins);
  const int64_t n = origins.size(0);
  TORCH_CHECK(binaries.dim() == 4 && binaries.size(0) == aabbs.size(0) && binaries.size(1) == binaries.size(2) &&
                  binaries.size(2) == binaries.size(3) && binaries.scalar_type() == at::kBool &&
                  binaries.is_contiguous() && binaries.device() == origins.device(),
              "traverse_grids: binaries must be a contiguous bool [n_levels, res, res, res] tensor with n_levels = ",
              num(aabbs.size(0)), ", got ", binaries.scalar_type(), shape_of(binaries.sizes()));
  if (jitter.has_value()) {
    TORCH_CHECK(jitter->dim() == 1 && jitter->size(0) == n && jitter->scalar_type() == at::kFloat &&
                    jitter->is_contiguous() && jitter->device() == origins.device(),
                "traverse_grids: jitter must be a contiguous float32 [n_rays] tensor");
  }
  TORCH_CHECK(step_size > 0 && cone_angle >= 0, "traverse_grids: need step_size > 0 and cone_angle >= 0");
  const typename Launch::Guard guard(origins.device());
  // A copy 4x coarser per axis (a cell occupied when any of its 64 is) lets marching skip empty
  // space in larger strides.
  const int64_t res = binaries.size(1);
  const at::Tensor coarse = res % 4 == 0 && res >= 8
      ? binaries.view({binaries.size(0), res / 4, 4, res / 4, 4, res / 4, 4}).any(6).any(4).any(2).contiguous()
      : at::Tensor();
  MarchProblem p{origins.data_ptr<float>(),
                 directions.data_ptr<float>(),
                 jitter.has_value() ? jitter->data_ptr<float>() : nullptr,
                 n,
                 OccupancyGrid{binaries.data_ptr<bool>(), aabbs.data_ptr<float>(), static_cast<int>(aabbs.size(0)),
                               static_cast<int>(res), coarse.defined() ? coarse.data_ptr<bool>() : nullptr,
                               coarse.defined() ? 4 : 1},
                 MarchParams{static_cast<float>(near_plane), static_cast<float>(far_plane),
                             static_cast<float>(step_size), static_cast<float>(cone_angle),
                             static_cast<float>(cone_angle > 0 ? step_size / cone_angle : 0.0),
                             static_cast<float>(std::log1p(cone_angle))},
                 at::get_num_threads()};
  return Launch::march(p, origins.options());
}

}  // namespace
}  // namespace nerfgen

TORCH_LIBRARY_FRAGMENT(nerfgen, m) {
  m.set_python_module("nerfgen.ops._kernels");
  m.def("ray_aabb_intersect(Tensor origins, Tensor directions, Tensor aabbs, float near_plane, float far_plane) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("traverse_grids(Tensor origins, Tensor directions, Tensor binaries, Tensor aabbs, Tensor? jitter, "
        "float near_plane, float far_plane, float step_size, float cone_angle) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(nerfgen, CPU, m) {
  m.impl("ray_aabb_intersect", &nerfgen::ray_aabb_intersect_op<nerfgen::CpuLaunch>);
  m.impl("traverse_grids", &nerfgen::traverse_grids_op<nerfgen::CpuLaunch>);
}

#ifdef NERFGEN_WITH_CUDA
TORCH_LIBRARY_IMPL(nerfgen, CUDA, m) {
  m.impl("ray_aabb_intersect", &nerfgen::ray_aabb_intersect_op<nerfgen::CudaLaunch>);
  m.impl("traverse_grids", &nerfgen::traverse_grids_op<nerfgen::CudaLaunch>);
}
#endif
