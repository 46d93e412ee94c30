// Bindings of the baked-field ops (a fragment of the `nerfgen` library, see bindings.cpp): checks
// tensors at the boundary and forwards raw pointers to the launchers of baked_api.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <optional>

#include "bindings.h"
#include "nerfgen/baked_api.h"

#ifdef NERFGEN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace nerfgen {
namespace {

using bindings::num;
using bindings::shape_of;

void check_on(const char* op, const at::Tensor& t, const at::Tensor& like, at::ScalarType dtype, const char* what) {
  TORCH_CHECK(t.scalar_type() == dtype && t.is_contiguous() && t.device() == like.device(), op, ": ", what,
              " must be a contiguous ", dtype, " tensor on ", like.device(), ", got ", t.scalar_type(), " on ",
              t.device());
}

// The sparse grid's tensors, checked against each other (see baked.h).
SparseGrid sparse_grid(const char* op, const at::Tensor& block_ids, const at::Tensor& voxel_rows,
                       const at::Tensor& cell_occupied, const at::Tensor& aabbs, const at::Tensor& like) {
  TORCH_CHECK(block_ids.dim() == 4 && block_ids.size(1) == block_ids.size(2) && block_ids.size(2) == block_ids.size(3) &&
                  block_ids.size(0) >= 1,
              op, ": block_ids must be [n_levels, G, G, G], got ", shape_of(block_ids.sizes()));
  TORCH_CHECK(voxel_rows.dim() == 4 && voxel_rows.size(1) >= 1 && voxel_rows.size(1) == voxel_rows.size(2) &&
                  voxel_rows.size(2) == voxel_rows.size(3) && cell_occupied.sizes() == voxel_rows.sizes(),
              op, ": voxel_rows and cell_occupied must both be [n_blocks, B, B, B], got ", shape_of(voxel_rows.sizes()),
              " and ", shape_of(cell_occupied.sizes()));
  TORCH_CHECK(aabbs.dim() == 2 && aabbs.size(0) == block_ids.size(0) && aabbs.size(1) == 6, op,
              ": aabbs must be [n_levels, 6] with n_levels = ", num(block_ids.size(0)), ", got ", shape_of(aabbs.sizes()));
  TORCH_CHECK(block_ids.size(1) * voxel_rows.size(1) <= (int64_t{1} << 16), op, ": G B must be at most 65536");
  check_on(op, block_ids, like, at::kInt, "block_ids");
  check_on(op, voxel_rows, like, at::kInt, "voxel_rows");
  check_on(op, cell_occupied, like, at::kBool, "cell_occupied");
  check_on(op, aabbs, like, at::kFloat, "aabbs");
  SparseGrid g{block_ids.data_ptr<int32_t>(), voxel_rows.data_ptr<int32_t>(), cell_occupied.data_ptr<bool>(),
               aabbs.data_ptr<float>(), static_cast<int>(block_ids.size(0)), static_cast<int>(block_ids.size(1)),
               static_cast<int>(voxel_rows.size(1))};
  for (int shift = 0; shift < 16; ++shift) {
    if ((1 << shift) == g.block_size) g.block_shift = shift;
  }
  return g;
}

// Bits of `cells` cells a block, one row a block ([n_blocks, >= cells / 8] uint8), checked.
const uint8_t* block_bits(const char* op, const char* what, const at::Tensor& bits, int64_t n_blocks, int64_t cells,
                          const at::Tensor& like) {
  TORCH_CHECK(bits.dim() == 2 && bits.size(0) == n_blocks && bits.size(1) * 8 >= cells, op, ": ", what,
              " must be [n_blocks, >= ", num(cells), " / 8] = [", num(n_blocks), ", ", num((cells + 7) / 8),
              "], got ", shape_of(bits.sizes()));
  check_on(op, bits, like, at::kByte, what);
  return bits.data_ptr<uint8_t>();
}

// What marching reuses from call to call (nerfgen.ops.baked.march_accel, computed once per grid),
// each optional: `cell_bits` [n_blocks, W] uint8, cell_occupied bit-packed (W 8 >= B^3);
// `present_bits` [n_blocks, W] int64 and `row_base`
// [n_blocks, W] int32, the rows counted from bits where they run in voxel order (see baked.h's
// SparseGrid; both or neither); `coarse` [n_levels, G / f, G / f, G / f] bool,
// whether any block lies in each f^3 region (empty ones are skipped whole); `bounds` (6 floats) a
// box around every block of every level, where marching starts and ends each ray.
SparseGrid with_accel(const char* op, SparseGrid g, const std::optional<at::Tensor>& cell_bits,
                      const std::optional<at::Tensor>& present_bits, const std::optional<at::Tensor>& row_base,
                      const std::optional<at::Tensor>& coarse,
                      const std::optional<c10::ArrayRef<double>>& bounds, const at::Tensor& block_ids,
                      const at::Tensor& voxel_rows, const at::Tensor& like) {
  const int64_t n_blocks = voxel_rows.size(0), B = voxel_rows.size(1);
  if (cell_bits.has_value()) {
    g.cell_bits = block_bits(op, "cell_bits", *cell_bits, n_blocks, B * B * B, like);
    g.bits_stride = cell_bits->size(1);
  }
  TORCH_CHECK(present_bits.has_value() == row_base.has_value(), op,
              ": give both present_bits and row_base, or neither");
  if (present_bits.has_value()) {
    const int64_t words = (B * B * B + 63) / 64;
    TORCH_CHECK(present_bits->dim() == 2 && present_bits->size(0) == n_blocks && present_bits->size(1) >= words &&
                    row_base->sizes() == present_bits->sizes(),
                op, ": present_bits and row_base must both be [n_blocks, >= ", num(words), "] = [", num(n_blocks),
                ", ", num(words), "], got ", shape_of(present_bits->sizes()), " and ", shape_of(row_base->sizes()));
    check_on(op, *present_bits, like, at::kLong, "present_bits");
    check_on(op, *row_base, like, at::kInt, "row_base");
    g.present_bits = reinterpret_cast<const uint64_t*>(present_bits->data_ptr<int64_t>());
    g.row_base = row_base->data_ptr<int32_t>();
    g.present_words = present_bits->size(1);
  }
  if (coarse.has_value()) {
    const int64_t G = block_ids.size(1), rc = coarse->dim() == 4 ? coarse->size(1) : 0;
    TORCH_CHECK(rc > 0 && G % rc == 0 && coarse->size(0) == block_ids.size(0) && coarse->size(2) == rc &&
                    coarse->size(3) == rc,
                op, ": coarse must be [n_levels, G / f, G / f, G / f] for an f dividing G = ", num(G), ", got ",
                shape_of(coarse->sizes()));
    check_on(op, *coarse, like, at::kBool, "coarse");
    g.coarse = coarse->data_ptr<bool>();
    g.coarse_factor = static_cast<int>(G / rc);
  }
  if (bounds.has_value()) {
    TORCH_CHECK(bounds->size() == 6, op, ": bounds must be 6 floats (a box), got ",
                num(static_cast<int64_t>(bounds->size())));
    g.has_bounds = true;
    for (int a = 0; a < 6; ++a) g.bounds[a] = static_cast<float>((*bounds)[a]);
  }
  return g;
}

void check_rays(const char* op, const at::Tensor& origins, const at::Tensor& directions) {
  TORCH_CHECK(origins.dim() == 2 && origins.size(1) == 3 && directions.sizes() == origins.sizes(), op,
              ": origins and directions must both be [n_rays, 3], got ", shape_of(origins.sizes()), " and ",
              shape_of(directions.sizes()));
  check_on(op, origins, origins, at::kFloat, "origins");
  check_on(op, directions, origins, at::kFloat, "directions");
}

MarchParams march_params(const char* op, double near_plane, double far_plane, double step_size, double cone_angle) {
  TORCH_CHECK(step_size > 0 && cone_angle >= 0 && near_plane <= far_plane, op,
              ": need step_size > 0, cone_angle >= 0 and near_plane <= far_plane");
  return MarchParams{static_cast<float>(near_plane), static_cast<float>(far_plane), static_cast<float>(step_size),
                     static_cast<float>(cone_angle), static_cast<float>(cone_angle > 0 ? step_size / cone_angle : 0.0),
                     static_cast<float>(std::log1p(cone_angle))};
}

struct CpuLaunch {
  using Guard = bindings::NoDeviceGuard;
  template <typename T>
  static void interp_forward(const SparseInterpProblem<T>& p, const T* values, T* sum, T* present) {
    cpu::sparse_interp_forward(p, values, sum, present);
  }
  template <typename T>
  static void interp_backward(const SparseInterpProblem<T>& p, const T* grad_sum, int64_t n_rows, T* grad_values) {
    cpu::sparse_interp_backward(p, grad_sum, n_rows, grad_values);
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> march(const BakedMarch& p, const at::TensorOptions& opts) {
    bindings::MarchTensors out{opts, {}, {}, {}};
    cpu::baked_march(p, &bindings::MarchTensors::allocate, &out);
    return {out.t_starts, out.t_ends, out.ray_indices};
  }
  static void render(const BakedRender& p, const BakedImage& out) { cpu::baked_render(p, out); }
};

#ifdef NERFGEN_WITH_CUDA
void check_cuda(cudaError_t status) { bindings::check_cuda("baked", status); }

struct CudaLaunch {
  using Guard = c10::cuda::CUDAGuard;
  template <typename T>
  static void interp_forward(const SparseInterpProblem<T>& p, const T* values, T* sum, T* present) {
    check_cuda(cuda::sparse_interp_forward(p, values, sum, present, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void interp_backward(const SparseInterpProblem<T>& p, const T* grad_sum, int64_t n_rows, T* grad_values) {
    check_cuda(cuda::sparse_interp_backward(p, grad_sum, n_rows, grad_values, c10::cuda::getCurrentCUDAStream()));
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> march(const BakedMarch& p, const at::TensorOptions& opts) {
    const auto stream = c10::cuda::getCurrentCUDAStream();
    return bindings::count_and_fill(
        p.n_rays, opts, [&](int64_t* counts) { check_cuda(cuda::baked_count(p, counts, stream)); },
        [&](const int64_t* offsets, float* t0, float* t1, int64_t* ri) {
          check_cuda(cuda::baked_fill(p, offsets, t0, t1, ri, stream));
        });
  }
  static void render(const BakedRender& p, const BakedImage& out) {
    check_cuda(cuda::baked_render(p, out, c10::cuda::getCurrentCUDAStream()));
  }
};
#endif

template <typename scalar_t>
SparseInterpProblem<scalar_t> interp_problem(const at::Tensor& positions, const SparseGrid& grid, int64_t C) {
  return SparseInterpProblem<scalar_t>{positions.data_ptr<scalar_t>(), positions.size(0), grid, static_cast<int>(C),
                                       at::get_num_threads()};
}

void check_points(const char* op, const at::Tensor& positions, const at::Tensor& values) {
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3, op, ": positions must be [n, 3], got ",
              shape_of(positions.sizes()));
  TORCH_CHECK(values.dim() == 2 && values.size(1) >= 1, op, ": values must be [n_rows, C], got ",
              shape_of(values.sizes()));
  TORCH_CHECK(positions.scalar_type() == values.scalar_type() && positions.is_contiguous() && values.is_contiguous() &&
                  positions.device() == values.device(),
              op, ": positions and values must be contiguous, of one dtype, on one device");
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> sparse_interp_fwd(const at::Tensor& positions, const at::Tensor& values,
                                                     const at::Tensor& block_ids, const at::Tensor& voxel_rows,
                                                     const at::Tensor& cell_occupied, const at::Tensor& aabbs) {
  check_points("sparse_interp", positions, values);
  const SparseGrid grid = sparse_grid("sparse_interp", block_ids, voxel_rows, cell_occupied, aabbs, positions);
  const typename Launch::Guard guard(positions.device());
  auto sum = at::empty({positions.size(0), values.size(1)}, values.options());
  auto present = at::empty({positions.size(0)}, values.options());
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "sparse_interp_fwd", [&] {
    Launch::interp_forward(interp_problem<scalar_t>(positions, grid, values.size(1)), values.data_ptr<scalar_t>(),
                           sum.data_ptr<scalar_t>(), present.data_ptr<scalar_t>());
  });
  return {sum, present};
}

template <typename Launch>
at::Tensor sparse_interp_bwd(const at::Tensor& grad_sum, const at::Tensor& positions, const at::Tensor& block_ids,
                             const at::Tensor& voxel_rows, const at::Tensor& cell_occupied, const at::Tensor& aabbs,
                             int64_t n_rows) {
  check_points("sparse_interp_bwd", positions, grad_sum);
  TORCH_CHECK(grad_sum.size(0) == positions.size(0) && n_rows >= 0, "sparse_interp_bwd: grad_sum must be [n, C]");
  const SparseGrid grid = sparse_grid("sparse_interp_bwd", block_ids, voxel_rows, cell_occupied, aabbs, positions);
  const typename Launch::Guard guard(positions.device());
  auto grad_values = at::empty({n_rows, grad_sum.size(1)}, grad_sum.options());
  AT_DISPATCH_FLOATING_TYPES(grad_sum.scalar_type(), "sparse_interp_bwd", [&] {
    Launch::interp_backward(interp_problem<scalar_t>(positions, grid, grad_sum.size(1)), grad_sum.data_ptr<scalar_t>(),
                            n_rows, grad_values.data_ptr<scalar_t>());
  });
  return grad_values;
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor> baked_traverse(
    const at::Tensor& origins, const at::Tensor& directions, const at::Tensor& block_ids, const at::Tensor& voxel_rows,
    const at::Tensor& cell_occupied, const at::Tensor& aabbs, const std::optional<at::Tensor>& cell_bits,
    const std::optional<at::Tensor>& present_bits, const std::optional<at::Tensor>& row_base,
    const std::optional<at::Tensor>& coarse, std::optional<c10::ArrayRef<double>> bounds,
    const std::optional<at::Tensor>& jitter, double near_plane, double far_plane, double step_size, double cone_angle) {
  check_rays("baked_traverse", origins, directions);
  const int64_t n = origins.size(0);
  if (jitter.has_value()) {
    TORCH_CHECK(jitter->dim() == 1 && jitter->size(0) == n, "baked_traverse: jitter must be [n_rays]");
    check_on("baked_traverse", *jitter, origins, at::kFloat, "jitter");
  }
  const typename Launch::Guard guard(origins.device());
  const BakedMarch p{origins.data_ptr<float>(),
                     directions.data_ptr<float>(),
                     jitter.has_value() ? jitter->data_ptr<float>() : nullptr,
                     n,
                     with_accel("baked_traverse",
                                sparse_grid("baked_traverse", block_ids, voxel_rows, cell_occupied, aabbs, origins),
                                cell_bits, present_bits, row_base, coarse, bounds, block_ids, voxel_rows, origins),
                     march_params("baked_traverse", near_plane, far_plane, step_size, cone_angle),
                     at::get_num_threads()};
  return Launch::march(p, origins.options());
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> baked_render(
    const at::Tensor& origins, const at::Tensor& directions, const at::Tensor& block_ids, const at::Tensor& voxel_rows,
    const at::Tensor& cell_occupied, const at::Tensor& aabbs, const std::optional<at::Tensor>& cell_bits,
    const std::optional<at::Tensor>& present_bits, const std::optional<at::Tensor>& row_base,
    const std::optional<at::Tensor>& coarse, std::optional<c10::ArrayRef<double>> bounds, const at::Tensor& values,
    int64_t sh_degree,
    double empty_raw, double near_plane, double far_plane, double step_size, double cone_angle,
    double early_stop_eps) {
  check_rays("baked_render", origins, directions);
  TORCH_CHECK(sh_degree >= 0 && sh_degree <= kMaxShDegree, "baked_render: sh_degree must be in [0, ",
              num(kMaxShDegree), "], got ", num(sh_degree));
  const int64_t C = 1 + 3 * (sh_degree + 1) * (sh_degree + 1);
  TORCH_CHECK(values.dim() == 2 && values.size(1) == C, "baked_render: values must be [n_rows, ", num(C),
              "] for SH degree ", num(sh_degree), ", got ", shape_of(values.sizes()));
  const bool half = values.scalar_type() == at::kHalf;
  if (half) {  // rows may be padded: a stride of a multiple of 8 halves, whole vectors of 8 readable
    TORCH_CHECK(values.stride(1) == 1 && values.stride(0) % 8 == 0 && values.stride(0) >= padded_half_channels(C) &&
                    values.device() == origins.device(),
                "baked_render: float16 values must have rows of a stride of a multiple of 8 halves (at least ",
                num(padded_half_channels(C)), "), contiguous within a row, on ", origins.device(), "; got strides [",
                num(values.stride(0)), ", ", num(values.stride(1)), "]");
  } else {
    check_on("baked_render", values, origins, at::kFloat, "values");
  }
  const int64_t n = origins.size(0);
  const typename Launch::Guard guard(origins.device());
  const BakedRender p{origins.data_ptr<float>(),
                      directions.data_ptr<float>(),
                      n,
                      with_accel("baked_render",
                                 sparse_grid("baked_render", block_ids, voxel_rows, cell_occupied, aabbs, origins),
                                 cell_bits, present_bits, row_base, coarse, bounds, block_ids, voxel_rows, origins),
                      half ? nullptr : values.data_ptr<float>(),
                      half ? reinterpret_cast<const Half*>(values.data_ptr<at::Half>()) : nullptr,
                      half ? values.stride(0) : C,
                      BakedShading{static_cast<float>(empty_raw), static_cast<int>(sh_degree)},
                      march_params("baked_render", near_plane, far_plane, step_size, cone_angle),
                      static_cast<float>(early_stop_eps),
                      at::get_num_threads()};
  auto color = at::empty({n, 3}, origins.options());
  auto opacity = at::empty({n}, origins.options());
  auto depth = at::empty({n}, origins.options());
  auto shaded = at::empty({n}, origins.options().dtype(at::kLong));
  Launch::render(p, BakedImage{color.data_ptr<float>(), opacity.data_ptr<float>(), depth.data_ptr<float>(),
                               shaded.data_ptr<int64_t>()});
  return {color, opacity, depth, shaded};
}

}  // namespace
}  // namespace nerfgen

TORCH_LIBRARY_FRAGMENT(nerfgen, m) {
  m.set_python_module("nerfgen.ops._kernels");
  // Every op takes the sparse grid as: Tensor block_ids, Tensor voxel_rows, Tensor cell_occupied, Tensor aabbs;
  // marching ops then what they reuse from call to call (see with_accel), each optional:
  // Tensor? cell_bits, Tensor? present_bits, Tensor? row_base, Tensor? coarse, float[]? bounds.
  m.def("sparse_interp_fwd(Tensor positions, Tensor values, Tensor block_ids, Tensor voxel_rows, "
        "Tensor cell_occupied, Tensor aabbs) -> (Tensor, Tensor)");
  m.def("sparse_interp_bwd(Tensor grad_sum, Tensor positions, Tensor block_ids, Tensor voxel_rows, "
        "Tensor cell_occupied, Tensor aabbs, int n_rows) -> Tensor");
  m.def("baked_traverse(Tensor origins, Tensor directions, Tensor block_ids, Tensor voxel_rows, Tensor cell_occupied, "
        "Tensor aabbs, Tensor? cell_bits, Tensor? present_bits, Tensor? row_base, Tensor? coarse, "
        "float[]? bounds, Tensor? jitter, float near_plane, float far_plane, float step_size, float cone_angle) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("baked_render(Tensor origins, Tensor directions, Tensor block_ids, Tensor voxel_rows, Tensor cell_occupied, "
        "Tensor aabbs, Tensor? cell_bits, Tensor? present_bits, Tensor? row_base, Tensor? coarse, "
        "float[]? bounds, Tensor values, int sh_degree, float empty_raw, float near_plane, float far_plane, "
        "float step_size, float cone_angle, float early_stop_eps) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(nerfgen, CPU, m) {
  m.impl("sparse_interp_fwd", &nerfgen::sparse_interp_fwd<nerfgen::CpuLaunch>);
  m.impl("sparse_interp_bwd", &nerfgen::sparse_interp_bwd<nerfgen::CpuLaunch>);
  m.impl("baked_traverse", &nerfgen::baked_traverse<nerfgen::CpuLaunch>);
  m.impl("baked_render", &nerfgen::baked_render<nerfgen::CpuLaunch>);
}

#ifdef NERFGEN_WITH_CUDA
TORCH_LIBRARY_IMPL(nerfgen, CUDA, m) {
  m.impl("sparse_interp_fwd", &nerfgen::sparse_interp_fwd<nerfgen::CudaLaunch>);
  m.impl("sparse_interp_bwd", &nerfgen::sparse_interp_bwd<nerfgen::CudaLaunch>);
  m.impl("baked_traverse", &nerfgen::baked_traverse<nerfgen::CudaLaunch>);
  m.impl("baked_render", &nerfgen::baked_render<nerfgen::CudaLaunch>);
}
#endif
