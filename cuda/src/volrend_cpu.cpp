// C++/OpenMP launchers of packed volume rendering (the CPU twin of volrend.cu). Torch-free.
// Rays are independent: each thread composites whole rays, forward and backward.
#include "nerfgen/cpu_threads.h"
#include "nerfgen/volrend_api.h"

namespace nerfgen {
namespace cpu {
namespace {
constexpr int kRayBatch = 256;
constexpr int64_t kMinParallelRays = 1024;
}  // namespace

template <typename scalar_t>
void composite_forward(const CompositeProblem<scalar_t>& p, const CompositeOutputs<scalar_t>& out) {
#pragma omp parallel for schedule(dynamic, kRayBatch) num_threads(threads_for(p.n_rays, kMinParallelRays, p.n_threads))
  for (int64_t r = 0; r < p.n_rays; ++r) composite_forward_ray(p, r, out);
}

template <typename scalar_t>
void composite_backward(const CompositeProblem<scalar_t>& p, const scalar_t* weights,
                        const scalar_t* transmittance, const CompositeGrads<scalar_t>& grads) {
#pragma omp parallel for schedule(dynamic, kRayBatch) num_threads(threads_for(p.n_rays, kMinParallelRays, p.n_threads))
  for (int64_t r = 0; r < p.n_rays; ++r) composite_backward_ray(p, r, weights, transmittance, grads);
}

#define NERFGEN_INSTANTIATE(T)                                                                          \
  template void composite_forward<T>(const CompositeProblem<T>&, const CompositeOutputs<T>&);          \
  template void composite_backward<T>(const CompositeProblem<T>&, const T*, const T*,                  \
                                      const CompositeGrads<T>&);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cpu
}  // namespace nerfgen
