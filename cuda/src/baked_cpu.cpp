// C++/OpenMP launchers of the baked-field ops (the CPU twin of baked.cu). Torch-free.
//
// The values' gradient needs no atomics: each thread owns a contiguous range of value rows and
// walks every point, adding only into its own rows (points are cheap next to contended atomic
// adds, and the sums come out the same on every run).
#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nerfgen/baked_api.h"
#include "nerfgen/cpu_threads.h"

namespace nerfgen {
namespace cpu {
namespace {
constexpr int kRayBatch = 64;
constexpr int64_t kMinParallelRays = 256;
constexpr int64_t kMinParallelPoints = 1 << 12;

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}
}  // namespace

template <typename scalar_t>
void sparse_interp_forward(const SparseInterpProblem<scalar_t>& p, const scalar_t* values, scalar_t* sum,
                           scalar_t* present) {
  const int C = p.n_channels;
#pragma omp parallel for schedule(static) num_threads(threads_for(p.n_points, kMinParallelPoints, p.n_threads))
  for (int64_t i = 0; i < p.n_points; ++i) {
    VoxelCorners<scalar_t> k;
    voxel_corners(p.grid, p.positions + 3 * i, k);
    present[i] = gather_corners(k, values, C, sum + i * C);
  }
}

template <typename scalar_t>
void sparse_interp_backward(const SparseInterpProblem<scalar_t>& p, const scalar_t* grad_sum, int64_t n_rows,
                            scalar_t* grad_values) {
  const int C = p.n_channels;
#pragma omp parallel num_threads(threads_for(p.n_points, kMinParallelPoints, p.n_threads))
  {
    const int64_t t = thread_id(), nt = thread_count();
    const int64_t begin = n_rows * t / nt, end = n_rows * (t + 1) / nt;  // this thread's rows
    std::fill(grad_values + begin * C, grad_values + end * C, scalar_t(0));
    for (int64_t i = 0; i < p.n_points; ++i) {
      VoxelCorners<scalar_t> k;
      voxel_corners(p.grid, p.positions + 3 * i, k);
      const scalar_t* g = grad_sum + i * C;
      for (int c = 0; c < 8; ++c) {
        if (k.row[c] < begin || k.row[c] >= end) continue;  // absent (-1) or another thread's
        scalar_t* row = grad_values + static_cast<int64_t>(k.row[c]) * C;
        for (int j = 0; j < C; ++j) row[j] += k.weight[c] * g[j];
      }
    }
  }
}

void baked_march(const BakedMarch& p, AllocateSamples allocate, void* context) {
  collect_samples(p.n_rays, p.n_threads, [&](int64_t r, auto&& emit) {
    const float jitter = p.jitter ? p.jitter[r] : 0.0f;
    march_sparse_ray(p.grid, p.params, p.origins + 3 * r, p.directions + 3 * r, jitter,
                     [&](float t0, float t1, const float*) {
                       emit(t0, t1);
                       return true;
                     });
  }, allocate, context);
}

void baked_render(const BakedRender& p, const BakedImage& out) {
#pragma omp parallel for schedule(dynamic, kRayBatch) num_threads(threads_for(p.n_rays, kMinParallelRays, p.n_threads))
  for (int64_t r = 0; r < p.n_rays; ++r) {
    out.shaded[r] = render_baked_ray(p.grid, p.values, p.shading, p.params, p.early_stop_eps, p.origins + 3 * r,
                                     p.directions + 3 * r, out.color + 3 * r, out.opacity[r], out.depth[r]);
  }
}

#define NERFGEN_INSTANTIATE(T)                                                                               \
  template void sparse_interp_forward<T>(const SparseInterpProblem<T>&, const T*, T*, T*);                   \
  template void sparse_interp_backward<T>(const SparseInterpProblem<T>&, const T*, int64_t, T*);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cpu
}  // namespace nerfgen
