// CUDA launchers of packed volume rendering (the GPU twin of volrend_cpu.cpp). Torch-free.
// One thread per ray, forward and backward (no atomics: deterministic).
#include <cuda_runtime.h>

#include "nerfgen/volrend_api.h"

namespace nerfgen {
namespace cuda {
namespace {

constexpr int kThreads = 256;

unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

template <typename scalar_t>
__global__ void forward_kernel(const CompositeProblem<scalar_t> p, const CompositeOutputs<scalar_t> out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < p.n_rays) composite_forward_ray(p, r, out);
}

template <typename scalar_t>
__global__ void backward_kernel(const CompositeProblem<scalar_t> p, const scalar_t* __restrict__ weights,
                                const scalar_t* __restrict__ transmittance, const CompositeGrads<scalar_t> grads) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < p.n_rays) composite_backward_ray(p, r, weights, transmittance, grads);
}

}  // namespace

template <typename scalar_t>
cudaError_t composite_forward(const CompositeProblem<scalar_t>& p, const CompositeOutputs<scalar_t>& out,
                              cudaStream_t stream) {
  if (p.n_rays == 0) return cudaSuccess;
  forward_kernel<scalar_t><<<blocks_for(p.n_rays), kThreads, 0, stream>>>(p, out);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t composite_backward(const CompositeProblem<scalar_t>& p, const scalar_t* weights,
                               const scalar_t* transmittance, const CompositeGrads<scalar_t>& grads, cudaStream_t stream) {
  if (p.n_rays == 0) return cudaSuccess;
  backward_kernel<scalar_t><<<blocks_for(p.n_rays), kThreads, 0, stream>>>(p, weights, transmittance, grads);
  return cudaGetLastError();
}

#define NERFGEN_INSTANTIATE(T)                                                                                  \
  template cudaError_t composite_forward<T>(const CompositeProblem<T>&, const CompositeOutputs<T>&, cudaStream_t); \
  template cudaError_t composite_backward<T>(const CompositeProblem<T>&, const T*, const T*,                      \
                                             const CompositeGrads<T>&, cudaStream_t);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cuda
}  // namespace nerfgen
