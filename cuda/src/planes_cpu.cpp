// C++/OpenMP launchers of the factorised plane encoding (the CPU twin of planes.cu). Torch-free.
//
// The forward shares the points out over the threads. The backward works in chunks of points:
// first, over points, each (point, level) gives the gradient of each of its planes' features
// (kept in a chunk-sized buffer) and adds the coordinates' gradient; then, over planes, each
// thread scatters the gradients of whole planes into the table. Planes own disjoint rows, so the
// scatter needs no atomic adds (an atomic float add per corner and channel would cost more than
// the rest of the step).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "nerfgen/cpu_threads.h"
#include "nerfgen/planes_api.h"

namespace nerfgen {
namespace cpu {
namespace {

constexpr int64_t kMinParallelWork = 1 << 12;  // (point, level) pairs below which one thread is faster
constexpr int64_t kChunk = 1 << 13;            // points per backward chunk

template <typename Fn>
void dispatch(int n_features, Fn&& fn) {
  switch (n_features) {
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    case 16: fn(std::integral_constant<int, 16>{}); break;
    case 32: fn(std::integral_constant<int, 32>{}); break;
    default: fn(std::integral_constant<int, 0>{}); break;
  }
}

template <typename scalar_t, int N_FEAT>
void forward_impl(const PlaneProblem<scalar_t>& p, const scalar_t* table, scalar_t* out) {
  const int F = plane_feature_count<N_FEAT>(p.n_features);
  const int64_t stride = static_cast<int64_t>(p.n_levels) * F;
#pragma omp parallel for schedule(static) num_threads(threads_for(p.n_points * p.n_levels, kMinParallelWork, p.n_threads))
  for (int64_t i = 0; i < p.n_points; ++i) {
    for (int l = 0; l < p.n_levels; ++l) plane_level_forward<scalar_t, N_FEAT>(p, table, i, l, out + i * stride + l * F);
  }
}

template <typename scalar_t, int N_FEAT>
void backward_impl(const PlaneProblem<scalar_t>& p, const scalar_t* table, const scalar_t* grad_out,
                   int64_t table_rows, scalar_t* grad_table, scalar_t* grad_coords) {
  const int F = plane_feature_count<N_FEAT>(p.n_features);
  const int per = p.per_level();
  const int64_t stride = static_cast<int64_t>(p.n_levels) * F;
  const int threads = threads_for(p.n_points * p.n_levels, kMinParallelWork, p.n_threads);
  if (grad_table != nullptr) std::fill(grad_table, grad_table + table_rows * F, scalar_t(0));
  if (grad_coords != nullptr) std::fill(grad_coords, grad_coords + p.n_points * p.dim, scalar_t(0));
  // grad_feat of chunk point j, plane q (= level * per + k): buffer[(j * n_planes + q) * F + f]
  std::vector<scalar_t> buffer(static_cast<size_t>(std::min(kChunk, p.n_points)) * p.n_planes * F);
  for (int64_t begin = 0; begin < p.n_points; begin += kChunk) {
    const int64_t end = std::min(begin + kChunk, p.n_points);
    scalar_t* buf = buffer.data();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = begin; i < end; ++i) {
      scalar_t* gx = grad_coords == nullptr ? nullptr : grad_coords + i * p.dim;
      for (int l = 0; l < p.n_levels; ++l) {
        plane_level_backward<scalar_t, N_FEAT>(p, table, i, l, grad_out + i * stride + l * F,
                                               buf + ((i - begin) * p.n_planes + l * per) * F, gx);
      }
    }
    if (grad_table == nullptr) continue;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int q = 0; q < p.n_planes; ++q) {
      for (int64_t i = begin; i < end; ++i) {
        PlaneCorners<scalar_t> c;
        plane_corners(p, p.coords + i * p.dim, q, c);
        const scalar_t* gf = buf + ((i - begin) * p.n_planes + q) * F;
        for (int corner = 0; corner < 4; ++corner) {
          scalar_t* row = grad_table + c.row[corner] * F;
          const scalar_t w = c.weight[corner];
          for (int f = 0; f < F; ++f) row[f] += w * gf[f];
        }
      }
    }
  }
}

}  // namespace

template <typename scalar_t>
void plane_forward(const PlaneProblem<scalar_t>& p, const scalar_t* table, scalar_t* out) {
  dispatch(p.n_features, [&](auto nf) { forward_impl<scalar_t, decltype(nf)::value>(p, table, out); });
}

template <typename scalar_t>
void plane_backward(const PlaneProblem<scalar_t>& p, const scalar_t* table, const scalar_t* grad_out,
                    int64_t table_rows, scalar_t* grad_table, scalar_t* grad_coords) {
  dispatch(p.n_features, [&](auto nf) {
    backward_impl<scalar_t, decltype(nf)::value>(p, table, grad_out, table_rows, grad_table, grad_coords);
  });
}

#define NERFGEN_INSTANTIATE(T)                                                                      \
  template void plane_forward<T>(const PlaneProblem<T>&, const T*, T*);                            \
  template void plane_backward<T>(const PlaneProblem<T>&, const T*, const T*, int64_t, T*, T*);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cpu
}  // namespace nerfgen
