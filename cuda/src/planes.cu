// CUDA launchers of the factorised plane encoding (the GPU twin of planes_cpu.cpp). Torch-free:
// only CUDA headers, so `nvcc -c -std=c++17 -I cuda/include cuda/src/planes.cu` builds on its own.
//
// The forward runs one thread per (point, level), blockIdx.y = level. The backward runs one thread
// per point over its levels: the coordinates' gradient is its own (no atomics), the table's is
// scattered with atomicAdd.
#include <cuda_runtime.h>

#include <type_traits>

#include "nerfgen/planes_api.h"

namespace nerfgen {
namespace cuda {
namespace {

constexpr int kThreads = 128;

template <typename scalar_t, int N_FEAT>
__global__ void forward_kernel(const PlaneProblem<scalar_t> p, const scalar_t* __restrict__ table,
                               scalar_t* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= p.n_points) return;
  const int F = plane_feature_count<N_FEAT>(p.n_features);
  plane_level_forward<scalar_t, N_FEAT>(p, table, i, l, out + (i * p.n_levels + l) * F);
}

template <typename scalar_t, int N_FEAT>
__global__ void backward_kernel(const PlaneProblem<scalar_t> p, const scalar_t* __restrict__ table,
                                const scalar_t* __restrict__ grad_out, scalar_t* grad_table,
                                scalar_t* __restrict__ grad_coords) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_points) return;
  constexpr int kF = N_FEAT > 0 ? N_FEAT : kMaxPlaneFeatures;
  const int F = plane_feature_count<N_FEAT>(p.n_features);
  const int per = p.per_level();
  scalar_t* gx = grad_coords == nullptr ? nullptr : grad_coords + i * p.dim;
  if (gx != nullptr) {
    for (int a = 0; a < p.dim; ++a) gx[a] = scalar_t(0);
  }
  scalar_t grad_feat[kMaxPlanesPerLevel * kF];
  for (int l = 0; l < p.n_levels; ++l) {
    plane_level_backward<scalar_t, N_FEAT>(p, table, i, l, grad_out + (i * p.n_levels + l) * F, grad_feat, gx);
    if (grad_table == nullptr) continue;
    for (int k = 0; k < per; ++k) {
      PlaneCorners<scalar_t> c;
      plane_corners(p, p.coords + i * p.dim, l * per + k, c);
      for (int corner = 0; corner < 4; ++corner) {
        for (int f = 0; f < F; ++f) atomicAdd(grad_table + c.row[corner] * F + f, c.weight[corner] * grad_feat[k * F + f]);
      }
    }
  }
}

template <typename Fn>
void dispatch(int n_features, Fn&& fn) {
  switch (n_features) {
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    case 16: fn(std::integral_constant<int, 16>{}); break;
    case 32: fn(std::integral_constant<int, 32>{}); break;
    default: fn(std::integral_constant<int, 0>{}); break;
  }
}

unsigned int blocks(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

}  // namespace

template <typename scalar_t>
cudaError_t plane_forward(const PlaneProblem<scalar_t>& p, const scalar_t* table, scalar_t* out, cudaStream_t stream) {
  if (p.n_points == 0) return cudaSuccess;
  dispatch(p.n_features, [&](auto nf) {
    const dim3 grid(blocks(p.n_points), static_cast<unsigned int>(p.n_levels));
    forward_kernel<scalar_t, decltype(nf)::value><<<grid, kThreads, 0, stream>>>(p, table, out);
  });
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t plane_backward(const PlaneProblem<scalar_t>& p, const scalar_t* table, const scalar_t* grad_out,
                           int64_t table_rows, scalar_t* grad_table, scalar_t* grad_coords, cudaStream_t stream) {
  if (grad_table != nullptr) {
    const cudaError_t err =
        cudaMemsetAsync(grad_table, 0, sizeof(scalar_t) * table_rows * p.n_features, stream);
    if (err != cudaSuccess) return err;
  }
  if (p.n_points == 0) return cudaSuccess;
  dispatch(p.n_features, [&](auto nf) {
    backward_kernel<scalar_t, decltype(nf)::value>
        <<<blocks(p.n_points), kThreads, 0, stream>>>(p, table, grad_out, grad_table, grad_coords);
  });
  return cudaGetLastError();
}

#define NERFGEN_INSTANTIATE(T)                                                                              \
  template cudaError_t plane_forward<T>(const PlaneProblem<T>&, const T*, T*, cudaStream_t);               \
  template cudaError_t plane_backward<T>(const PlaneProblem<T>&, const T*, const T*, int64_t, T*, T*,      \
                                         cudaStream_t);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cuda
}  // namespace nerfgen
