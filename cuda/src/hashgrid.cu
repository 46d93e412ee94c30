// CUDA launchers of the hash-grid encoding (the GPU twin of hashgrid_cpu.cpp). Torch-free: only
// CUDA headers, so `nvcc -c -std=c++17 -I cuda/include cuda/src/hashgrid.cu` builds on its own.
//
// Forward and table backward run one thread per (point, level), blockIdx.y = level, so a warp
// reads one level's block of the table and shares its resolution and strides. The positions
// backward runs one thread per point and loops over the levels (no atomics: deterministic).
#include <cuda_runtime.h>

#include "nerfgen/hashgrid_api.h"

namespace nerfgen {
namespace cuda {
namespace {

constexpr int kThreads = 256;

struct AtomicAdd {
  template <typename T>
  __device__ void operator()(T* ptr, T value) const { atomicAdd(ptr, value); }
};

template <typename scalar_t>
__device__ __forceinline__ void corners_at(const HashGridProblem<scalar_t>& p, int64_t i, int l,
                                           HashGridCorners<scalar_t>& k) {
  hash_grid_corners(p.positions + 3 * i, p.resolutions[l], p.strides + 3 * l, (1u << p.log2_table_size) - 1u,
                    static_cast<uint32_t>(l) << p.log2_table_size, k);
}

template <typename scalar_t, int N_FEAT>
__global__ void forward_kernel(const HashGridProblem<scalar_t> p, const scalar_t* __restrict__ table,
                               scalar_t* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= p.n_points) return;
  const int F = feature_count<N_FEAT>(p.n_features);
  HashGridCorners<scalar_t> k;
  corners_at(p, i, l, k);
  hash_grid_gather<scalar_t, N_FEAT>(k, table, F, out + (i * p.n_levels + l) * F);
}

template <typename scalar_t, int N_FEAT>
__global__ void backward_table_kernel(const HashGridProblem<scalar_t> p, const scalar_t* __restrict__ grad_out,
                                      scalar_t* grad_table) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= p.n_points) return;
  const int F = feature_count<N_FEAT>(p.n_features);
  HashGridCorners<scalar_t> k;
  corners_at(p, i, l, k);
  hash_grid_scatter<scalar_t, N_FEAT>(k, grad_out + (i * p.n_levels + l) * F, F, grad_table, AtomicAdd{});
}

template <typename scalar_t, int N_FEAT>
__global__ void backward_positions_kernel(const HashGridProblem<scalar_t> p, const scalar_t* __restrict__ table,
                                          const scalar_t* __restrict__ grad_out,
                                          scalar_t* __restrict__ grad_positions) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_points) return;
  const int F = feature_count<N_FEAT>(p.n_features);
  scalar_t g[3] = {scalar_t(0), scalar_t(0), scalar_t(0)};
  for (int l = 0; l < p.n_levels; ++l) {
    HashGridCorners<scalar_t> k;
    corners_at(p, i, l, k);
    hash_grid_position_grad<scalar_t, N_FEAT>(k, table, grad_out + (i * p.n_levels + l) * F, F,
                                              p.resolutions[l], g);
  }
  for (int a = 0; a < 3; ++a) grad_positions[3 * i + a] = g[a];
}

unsigned int point_blocks(int64_t n_points) {
  return static_cast<unsigned int>((n_points + kThreads - 1) / kThreads);
}

}  // namespace

template <typename scalar_t>
cudaError_t hash_grid_forward(const HashGridProblem<scalar_t>& p, const scalar_t* table, scalar_t* out,
                              cudaStream_t stream) {
  if (p.n_points == 0) return cudaSuccess;
  const dim3 grid(point_blocks(p.n_points), p.n_levels);
  dispatch_features(p.n_features, [&](auto nf) {
    forward_kernel<scalar_t, decltype(nf)::value><<<grid, kThreads, 0, stream>>>(p, table, out);
  });
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t hash_grid_backward_table(const HashGridProblem<scalar_t>& p, const scalar_t* grad_out,
                                     scalar_t* grad_table, cudaStream_t stream) {
  const size_t bytes = (static_cast<size_t>(p.n_levels) << p.log2_table_size) * p.n_features * sizeof(scalar_t);
  const cudaError_t status = cudaMemsetAsync(grad_table, 0, bytes, stream);
  if (status != cudaSuccess || p.n_points == 0) return status;
  const dim3 grid(point_blocks(p.n_points), p.n_levels);
  dispatch_features(p.n_features, [&](auto nf) {
    backward_table_kernel<scalar_t, decltype(nf)::value><<<grid, kThreads, 0, stream>>>(p, grad_out, grad_table);
  });
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t hash_grid_backward_positions(const HashGridProblem<scalar_t>& p, const scalar_t* table,
                                         const scalar_t* grad_out, scalar_t* grad_positions, cudaStream_t stream) {
  if (p.n_points == 0) return cudaSuccess;
  dispatch_features(p.n_features, [&](auto nf) {
    backward_positions_kernel<scalar_t, decltype(nf)::value>
        <<<point_blocks(p.n_points), kThreads, 0, stream>>>(p, table, grad_out, grad_positions);
  });
  return cudaGetLastError();
}

#define NERFGEN_INSTANTIATE(T)                                                                            \
  template cudaError_t hash_grid_forward<T>(const HashGridProblem<T>&, const T*, T*, cudaStream_t);      \
  template cudaError_t hash_grid_backward_table<T>(const HashGridProblem<T>&, const T*, T*, cudaStream_t); \
  template cudaError_t hash_grid_backward_positions<T>(const HashGridProblem<T>&, const T*, const T*, T*, \
                                                       cudaStream_t);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cuda
}  // namespace nerfgen
