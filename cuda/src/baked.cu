// CUDA launchers of the baked-field ops (the GPU twin of baked_cpu.cpp). Torch-free: only CUDA
// headers, so `nvcc -c -std=c++17 -I cuda/include cuda/src/baked.cu` builds on its own.
// One thread per point (interpolation; the backward adds with atomics) or per ray (marching,
// rendering); counting and filling walk the same steps, so they agree sample for sample.
#include <cuda_runtime.h>

#include "nerfgen/baked_api.h"

namespace nerfgen {
namespace cuda {
namespace {

constexpr int kThreads = 256;

unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

template <typename scalar_t>
__global__ void interp_forward_kernel(const SparseInterpProblem<scalar_t> p, const scalar_t* __restrict__ values,
                                      scalar_t* __restrict__ sum, scalar_t* __restrict__ present) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_points) return;
  VoxelCorners<scalar_t> k;
  voxel_corners(p.grid, p.positions + 3 * i, k);
  present[i] = gather_corners(k, values, p.n_channels, sum + i * p.n_channels);
}

template <typename scalar_t>
__global__ void interp_backward_kernel(const SparseInterpProblem<scalar_t> p, const scalar_t* __restrict__ grad_sum,
                                       scalar_t* grad_values) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_points) return;
  VoxelCorners<scalar_t> k;
  voxel_corners(p.grid, p.positions + 3 * i, k);
  const int C = p.n_channels;
  for (int c = 0; c < 8; ++c) {
    if (k.row[c] < 0) continue;
    scalar_t* row = grad_values + static_cast<int64_t>(k.row[c]) * C;
    for (int j = 0; j < C; ++j) atomicAdd(row + j, k.weight[c] * grad_sum[i * C + j]);
  }
}

struct Count {
  __device__ bool operator()(float, float, const float*) const { return true; }
};

__global__ void count_kernel(const BakedMarch p, int64_t* __restrict__ counts) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= p.n_rays) return;
  const float jitter = p.jitter ? p.jitter[r] : 0.0f;
  counts[r] = march_sparse_ray(p.grid, p.params, p.origins + 3 * r, p.directions + 3 * r, jitter, Count{});
}

struct Store {
  float* t_starts;
  float* t_ends;
  int64_t* ray_indices;
  int64_t next, ray;
  __device__ bool operator()(float t0, float t1, const float*) {
    t_starts[next] = t0;
    t_ends[next] = t1;
    ray_indices[next++] = ray;
    return true;
  }
};

__global__ void fill_kernel(const BakedMarch p, const int64_t* __restrict__ offsets, float* t_starts, float* t_ends,
                            int64_t* ray_indices) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= p.n_rays) return;
  const float jitter = p.jitter ? p.jitter[r] : 0.0f;
  march_sparse_ray(p.grid, p.params, p.origins + 3 * r, p.directions + 3 * r, jitter,
                   Store{t_starts, t_ends, ray_indices, offsets[r], r});
}

__global__ void render_kernel(const BakedRender p, const BakedImage out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= p.n_rays) return;
  const float* o = p.origins + 3 * r;
  const float* d = p.directions + 3 * r;
  out.shaded[r] = p.values_half != nullptr
      ? render_baked_ray(p.grid, ValueRows<Half>{p.values_half, p.row_stride}, p.shading, p.params,
                         p.early_stop_eps, o, d, out.color + 3 * r, out.opacity[r], out.depth[r])
      : render_baked_ray(p.grid, ValueRows<float>{p.values, p.row_stride}, p.shading, p.params, p.early_stop_eps,
                         o, d, out.color + 3 * r, out.opacity[r], out.depth[r]);
}

}  // namespace

template <typename scalar_t>
cudaError_t sparse_interp_forward(const SparseInterpProblem<scalar_t>& p, const scalar_t* values, scalar_t* sum,
                                  scalar_t* present, cudaStream_t stream) {
  if (p.n_points == 0) return cudaSuccess;
  interp_forward_kernel<<<blocks_for(p.n_points), kThreads, 0, stream>>>(p, values, sum, present);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t sparse_interp_backward(const SparseInterpProblem<scalar_t>& p, const scalar_t* grad_sum, int64_t n_rows,
                                   scalar_t* grad_values, cudaStream_t stream) {
  cudaError_t status = cudaMemsetAsync(grad_values, 0, sizeof(scalar_t) * n_rows * p.n_channels, stream);
  if (status != cudaSuccess || p.n_points == 0) return status;
  interp_backward_kernel<<<blocks_for(p.n_points), kThreads, 0, stream>>>(p, grad_sum, grad_values);
  return cudaGetLastError();
}

cudaError_t baked_count(const BakedMarch& p, int64_t* counts, cudaStream_t stream) {
  if (p.n_rays == 0) return cudaSuccess;
  count_kernel<<<blocks_for(p.n_rays), kThreads, 0, stream>>>(p, counts);
  return cudaGetLastError();
}

cudaError_t baked_fill(const BakedMarch& p, const int64_t* offsets, float* t_starts, float* t_ends,
                       int64_t* ray_indices, cudaStream_t stream) {
  if (p.n_rays == 0) return cudaSuccess;
  fill_kernel<<<blocks_for(p.n_rays), kThreads, 0, stream>>>(p, offsets, t_starts, t_ends, ray_indices);
  return cudaGetLastError();
}

cudaError_t baked_render(const BakedRender& p, const BakedImage& out, cudaStream_t stream) {
  if (p.n_rays == 0) return cudaSuccess;
  render_kernel<<<blocks_for(p.n_rays), kThreads, 0, stream>>>(p, out);
  return cudaGetLastError();
}

#define NERFGEN_INSTANTIATE(T)                                                                                    \
  template cudaError_t sparse_interp_forward<T>(const SparseInterpProblem<T>&, const T*, T*, T*, cudaStream_t);   \
  template cudaError_t sparse_interp_backward<T>(const SparseInterpProblem<T>&, const T*, int64_t, T*, cudaStream_t);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cuda
}  // namespace nerfgen
