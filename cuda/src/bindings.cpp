// Registers the ops of the `nerfgen` namespace (the baked-field and fused-MLP ops in their own
// bindings_*.cpp fragments), checks tensors at the boundary and forwards raw pointers to the launchers.
// CUDA implementations are compiled only with -DNERFGEN_WITH_CUDA (a CUDA torch and hashgrid.cu).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string>

#include "bindings.h"
#include "nerfgen/hashgrid_api.h"
#include "nerfgen/march_api.h"
#include "nerfgen/planes_api.h"
#include "nerfgen/volrend_api.h"

#ifdef NERFGEN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that one needs cuSPARSE/cuBLAS headers
#endif

namespace nerfgen {
namespace {

using bindings::num;  // numbers and shapes in messages: see bindings.h
using bindings::shape_of;

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

// The same three entry points for CPU and CUDA tensors; `Launch` holds the device's launchers.
struct CpuLaunch {
  struct Guard {
    explicit Guard(c10::Device) {}
  };
  template <typename T>
  static void plane_forward(const PlaneProblem<T>& p, const T* table, T* out) {
    cpu::plane_forward(p, table, out);
  }
  template <typename T>
  static void plane_backward(const PlaneProblem<T>& p, const T* table, const T* grad_out, int64_t rows, T* grad_table,
                             T* grad_coords) {
    cpu::plane_backward(p, table, grad_out, rows, grad_table, grad_coords);
  }
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
  template <typename T>
  static void composite_forward(const CompositeProblem<T>& p, const CompositeOutputs<T>& out) {
    cpu::composite_forward(p, out);
  }
  template <typename T>
  static void composite_backward(const CompositeProblem<T>& p, const T* weights, const T* transmittance,
                                 const CompositeGrads<T>& grads) {
    cpu::composite_backward(p, weights, transmittance, grads);
  }
};

#ifdef NERFGEN_WITH_CUDA
void check_cuda(cudaError_t status) {
  TORCH_CHECK(status == cudaSuccess, "hash_grid: CUDA launch failed: ", cudaGetErrorString(status));
}

struct CudaLaunch {
  using Guard = c10::cuda::CUDAGuard;  // launches on the tensors' device and its current stream
  template <typename T>
  static void plane_forward(const PlaneProblem<T>& p, const T* table, T* out) {
    check_cuda(cuda::plane_forward(p, table, out, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void plane_backward(const PlaneProblem<T>& p, const T* table, const T* grad_out, int64_t rows, T* grad_table,
                             T* grad_coords) {
    check_cuda(cuda::plane_backward(p, table, grad_out, rows, grad_table, grad_coords,
                                    c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void forward(const HashGridProblem<T>& p, const T* table, T* out) {
    check_cuda(cuda::hash_grid_forward(p, table, out, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void backward_table(const HashGridProblem<T>& p, const T* grad_out, T* grad_table) {
    check_cuda(cuda::hash_grid_backward_table(p, grad_out, grad_table, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void backward_positions(const HashGridProblem<T>& p, const T* table, const T* grad_out, T* grad_pos) {
    check_cuda(cuda::hash_grid_backward_positions(p, table, grad_out, grad_pos, c10::cuda::getCurrentCUDAStream()));
  }
  static void intersect(const float* o, const float* d, const float* boxes, int64_t n, int n_boxes, float near_plane,
                        float far_plane, float* t_mins, float* t_maxs, bool* hits) {
    check_cuda(cuda::ray_aabb_intersect(o, d, boxes, n, n_boxes, near_plane, far_plane, t_mins, t_maxs, hits,
                                        c10::cuda::getCurrentCUDAStream()));
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> march(const MarchProblem& p, const at::TensorOptions& opts) {
    const auto stream = c10::cuda::getCurrentCUDAStream();
    return bindings::count_and_fill(
        p.n_rays, opts, [&](int64_t* counts) { check_cuda(cuda::march_count(p, counts, stream)); },
        [&](const int64_t* offsets, float* t0, float* t1, int64_t* ri) {
          check_cuda(cuda::march_fill(p, offsets, t0, t1, ri, stream));
        });
  }
  template <typename T>
  static void composite_forward(const CompositeProblem<T>& p, const CompositeOutputs<T>& out) {
    check_cuda(cuda::composite_forward(p, out, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void composite_backward(const CompositeProblem<T>& p, const T* weights, const T* transmittance,
                                 const CompositeGrads<T>& grads) {
    check_cuda(cuda::composite_backward(p, weights, transmittance, grads, c10::cuda::getCurrentCUDAStream()));
  }
};
#endif

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


// --- ray marching ---------------------------------------------------------------------------------

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

// --- volume rendering -----------------------------------------------------------------------------

void check_samples(const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& sigmas,
                   const at::Tensor& colors, const at::Tensor& packed_info) {
  const int64_t n = sigmas.size(0);
  TORCH_CHECK(sigmas.dim() == 1 && t_starts.sizes() == sigmas.sizes() && t_ends.sizes() == sigmas.sizes(),
              "composite: t_starts, t_ends and sigmas must all be [n_samples]");
  TORCH_CHECK(colors.dim() == 2 && colors.size(0) == n && colors.size(1) >= 1,
              "composite: colors must be [n_samples, C] with n_samples = ", num(n), ", got ", shape_of(colors.sizes()));
  TORCH_CHECK(packed_info.dim() == 2 && packed_info.size(1) == 2 && packed_info.scalar_type() == at::kLong,
              "composite: packed_info must be int64 [n_rays, 2], got ", packed_info.scalar_type(),
              shape_of(packed_info.sizes()));
  for (const at::Tensor* t : {&t_starts, &t_ends, &sigmas, &colors, &packed_info}) {
    TORCH_CHECK(t->is_contiguous() && t->device() == sigmas.device(), "composite: tensors must be contiguous, on ",
                sigmas.device());
    if (t != &packed_info) {
      TORCH_CHECK(t->scalar_type() == sigmas.scalar_type(), "composite: sample tensors must share one dtype");
    }
  }
}

template <typename scalar_t>
CompositeProblem<scalar_t> make_composite(const at::Tensor& t_starts, const at::Tensor& t_ends,
                                          const at::Tensor& sigmas, const at::Tensor& colors,
                                          const at::Tensor& packed_info, double early_stop_eps) {
  return CompositeProblem<scalar_t>{t_starts.data_ptr<scalar_t>(),   t_ends.data_ptr<scalar_t>(),
                                    sigmas.data_ptr<scalar_t>(),     colors.data_ptr<scalar_t>(),
                                    packed_info.data_ptr<int64_t>(), packed_info.size(0),
                                    static_cast<int>(colors.size(1)), static_cast<scalar_t>(early_stop_eps),
                                    at::get_num_threads()};
}

template <typename scalar_t>
CompositeOutputs<scalar_t> outputs_of(const at::Tensor& color, const at::Tensor& opacity, const at::Tensor& depth,
                                      const at::Tensor& weights, const at::Tensor& transmittance) {
  return CompositeOutputs<scalar_t>{color.data_ptr<scalar_t>(), opacity.data_ptr<scalar_t>(),
                                    depth.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(),
                                    transmittance.data_ptr<scalar_t>()};
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_fwd_op(
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& sigmas, const at::Tensor& colors,
    const at::Tensor& packed_info, double early_stop_eps) {
  check_samples(t_starts, t_ends, sigmas, colors, packed_info);
  const typename Launch::Guard guard(sigmas.device());
  const int64_t n_rays = packed_info.size(0);
  auto color = at::empty({n_rays, colors.size(1)}, colors.options());
  auto opacity = at::empty({n_rays}, sigmas.options());
  auto depth = at::empty({n_rays}, sigmas.options());
  auto weights = at::empty_like(sigmas);
  auto transmittance = at::empty_like(sigmas);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_fwd", [&] {
    Launch::composite_forward(make_composite<scalar_t>(t_starts, t_ends, sigmas, colors, packed_info, early_stop_eps),
                              outputs_of<scalar_t>(color, opacity, depth, weights, transmittance));
  });
  return {color, opacity, depth, weights, transmittance};
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> composite_bwd_op(
    const at::Tensor& grad_color, const at::Tensor& grad_opacity, const at::Tensor& grad_depth,
    const at::Tensor& grad_weights, const at::Tensor& grad_transmittance, const at::Tensor& t_starts,
    const at::Tensor& t_ends, const at::Tensor& sigmas, const at::Tensor& colors, const at::Tensor& packed_info,
    const at::Tensor& weights, const at::Tensor& transmittance, double early_stop_eps) {
  check_samples(t_starts, t_ends, sigmas, colors, packed_info);
  const int64_t n_rays = packed_info.size(0), n_samples = sigmas.size(0), C = colors.size(1);
  const std::vector<std::pair<const at::Tensor*, std::vector<int64_t>>> shapes = {
      {&grad_color, {n_rays, C}},         {&grad_opacity, {n_rays}}, {&grad_depth, {n_rays}},
      {&grad_weights, {n_samples}},       {&grad_transmittance, {n_samples}},
      {&weights, {n_samples}},            {&transmittance, {n_samples}}};
  for (const auto& [t, shape] : shapes) {
    TORCH_CHECK(t->sizes() == at::IntArrayRef(shape) && t->is_contiguous() && t->scalar_type() == sigmas.scalar_type() &&
                    t->device() == sigmas.device(),
                "composite_bwd: expected a contiguous ", sigmas.scalar_type(), " tensor of shape ", shape_of(shape), ", got ",
                t->scalar_type(), shape_of(t->sizes()));
  }
  const typename Launch::Guard guard(sigmas.device());
  auto grad_sigmas = at::empty_like(sigmas);
  auto grad_colors = at::empty_like(colors);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_bwd", [&] {
    const CompositeGrads<scalar_t> grads{grad_color.data_ptr<scalar_t>(),   grad_opacity.data_ptr<scalar_t>(),
                                         grad_depth.data_ptr<scalar_t>(),   grad_weights.data_ptr<scalar_t>(),
                                         grad_transmittance.data_ptr<scalar_t>(), grad_sigmas.data_ptr<scalar_t>(),
                                         grad_colors.data_ptr<scalar_t>()};
    Launch::composite_backward(make_composite<scalar_t>(t_starts, t_ends, sigmas, colors, packed_info, early_stop_eps),
                               weights.data_ptr<scalar_t>(), transmittance.data_ptr<scalar_t>(), grads);
  });
  return {grad_sigmas, grad_colors};
}

// --- factorised planes ----------------------------------------------------------------------------

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

TORCH_LIBRARY(nerfgen, m) {
  // Fake (meta) kernels and the autograd formula are registered from this Python module.
  m.set_python_module("nerfgen.ops._kernels");
  m.def("hash_grid_fwd(Tensor positions, Tensor table, Tensor resolutions, Tensor strides, "
        "int log2_table_size) -> Tensor");
  m.def("hash_grid_bwd(Tensor grad_out, Tensor positions, Tensor resolutions, Tensor strides, "
        "int log2_table_size) -> Tensor");
  m.def("hash_grid_bwd_positions(Tensor grad_out, Tensor positions, Tensor table, Tensor resolutions, "
        "Tensor strides, int log2_table_size) -> Tensor");
  m.def("ray_aabb_intersect(Tensor origins, Tensor directions, Tensor aabbs, float near_plane, float far_plane) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("traverse_grids(Tensor origins, Tensor directions, Tensor binaries, Tensor aabbs, Tensor? jitter, "
        "float near_plane, float far_plane, float step_size, float cone_angle) -> (Tensor, Tensor, Tensor)");
  m.def("composite_fwd(Tensor t_starts, Tensor t_ends, Tensor sigmas, Tensor colors, Tensor packed_info, "
        "float early_stop_eps) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("composite_bwd(Tensor grad_color, Tensor grad_opacity, Tensor grad_depth, Tensor grad_weights, "
        "Tensor grad_transmittance, Tensor t_starts, Tensor t_ends, Tensor sigmas, Tensor colors, "
        "Tensor packed_info, Tensor weights, Tensor transmittance, "
        "float early_stop_eps) -> (Tensor, Tensor)");
  m.def("plane_fwd(Tensor coords, Tensor table, Tensor axes, Tensor sizes, Tensor offsets, int n_levels) -> Tensor");
  m.def("plane_bwd(Tensor grad_out, Tensor coords, Tensor table, Tensor axes, Tensor sizes, Tensor offsets, "
        "int n_levels, bool table_grad, bool coords_grad) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(nerfgen, CPU, m) {
  m.impl("hash_grid_fwd", &nerfgen::hash_grid_fwd<nerfgen::CpuLaunch>);
  m.impl("hash_grid_bwd", &nerfgen::hash_grid_bwd<nerfgen::CpuLaunch>);
  m.impl("hash_grid_bwd_positions", &nerfgen::hash_grid_bwd_positions<nerfgen::CpuLaunch>);
  m.impl("ray_aabb_intersect", &nerfgen::ray_aabb_intersect_op<nerfgen::CpuLaunch>);
  m.impl("traverse_grids", &nerfgen::traverse_grids_op<nerfgen::CpuLaunch>);
  m.impl("composite_fwd", &nerfgen::composite_fwd_op<nerfgen::CpuLaunch>);
  m.impl("composite_bwd", &nerfgen::composite_bwd_op<nerfgen::CpuLaunch>);
  m.impl("plane_fwd", &nerfgen::plane_fwd_op<nerfgen::CpuLaunch>);
  m.impl("plane_bwd", &nerfgen::plane_bwd_op<nerfgen::CpuLaunch>);
}

#ifdef NERFGEN_WITH_CUDA
TORCH_LIBRARY_IMPL(nerfgen, CUDA, m) {
  m.impl("hash_grid_fwd", &nerfgen::hash_grid_fwd<nerfgen::CudaLaunch>);
  m.impl("hash_grid_bwd", &nerfgen::hash_grid_bwd<nerfgen::CudaLaunch>);
  m.impl("hash_grid_bwd_positions", &nerfgen::hash_grid_bwd_positions<nerfgen::CudaLaunch>);
  m.impl("ray_aabb_intersect", &nerfgen::ray_aabb_intersect_op<nerfgen::CudaLaunch>);
  m.impl("traverse_grids", &nerfgen::traverse_grids_op<nerfgen::CudaLaunch>);
  m.impl("composite_fwd", &nerfgen::composite_fwd_op<nerfgen::CudaLaunch>);
  m.impl("composite_bwd", &nerfgen::composite_bwd_op<nerfgen::CudaLaunch>);
  m.impl("plane_fwd", &nerfgen::plane_fwd_op<nerfgen::CudaLaunch>);
  m.impl("plane_bwd", &nerfgen::plane_bwd_op<nerfgen::CudaLaunch>);
}
#endif
