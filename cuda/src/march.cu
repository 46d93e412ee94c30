// CUDA launchers of ray marching (the GPU twin of march_cpu.cpp). Torch-free: only CUDA headers,
// so `nvcc -c -std=c++17 -I cuda/include cuda/src/march.cu` builds on its own.
// One thread per ray; counting and filling walk the same steps, so they agree sample for sample.
#include <cuda_runtime.h>

#include "nerfgen/march_api.h"

namespace nerfgen {
namespace cuda {
namespace {

constexpr int kThreads = 256;

unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

__global__ void intersect_kernel(const float* __restrict__ origins, const float* __restrict__ directions,
                                 const float* __restrict__ aabbs, int64_t n_rays, int n_boxes, float near_plane,
                                 float far_plane, float* __restrict__ t_mins, float* __restrict__ t_maxs,
                                 bool* __restrict__ hits) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n_rays * n_boxes) return;
  const int64_t r = j / n_boxes;
  const int b = static_cast<int>(j % n_boxes);
  hits[j] = ray_box(origins + 3 * r, directions + 3 * r, aabbs + 6 * b, near_plane, far_plane, t_mins[j], t_maxs[j]);
}

struct Discard {
  __device__ void operator()(int64_t, float, float) const {}
};

struct Store {
  float* t_starts;
  float* t_ends;
  int64_t* ray_indices;
  int64_t base, ray;
  __device__ void operator()(int64_t j, float t0, float t1) const {
    t_starts[base + j] = t0;
    t_ends[base + j] = t1;
    ray_indices[base + j] = ray;
  }
};

__global__ void count_kernel(const MarchProblem p, int64_t* __restrict__ counts) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= p.n_rays) return;
  const float jitter = p.jitter ? p.jitter[r] : 0.0f;
  counts[r] = march_ray(p.grid, p.params, p.origins + 3 * r, p.directions + 3 * r, jitter, Discard{});
}

__global__ void fill_kernel(const MarchProblem p, const int64_t* __restrict__ offsets, float* t_starts, float* t_ends,
                            int64_t* ray_indices) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= p.n_rays) return;
  const float jitter = p.jitter ? p.jitter[r] : 0.0f;
  march_ray(p.grid, p.params, p.origins + 3 * r, p.directions + 3 * r, jitter,
            Store{t_starts, t_ends, ray_indices, offsets[r], r});
}

}  // namespace

cudaError_t ray_aabb_intersect(const float* origins, const float* directions, const float* aabbs, int64_t n_rays,
                               int n_boxes, float near_plane, float far_plane, float* t_mins, float* t_maxs,
                               bool* hits, cudaStream_t stream) {
  const int64_t n = n_rays * n_boxes;
  if (n == 0) return cudaSuccess;
  intersect_kernel<<<blocks_for(n), kThreads, 0, stream>>>(origins, directions, aabbs, n_rays, n_boxes, near_plane,
                                                           far_plane, t_mins, t_maxs, hits);
  return cudaGetLastError();
}

cudaError_t march_count(const MarchProblem& p, int64_t* counts, cudaStream_t stream) {
  if (p.n_rays == 0) return cudaSuccess;
  count_kernel<<<blocks_for(p.n_rays), kThreads, 0, stream>>>(p, counts);
  return cudaGetLastError();
}

cudaError_t march_fill(const MarchProblem& p, const int64_t* offsets, float* t_starts, float* t_ends,
                       int64_t* ray_indices, cudaStream_t stream) {
  if (p.n_rays == 0) return cudaSuccess;
  fill_kernel<<<blocks_for(p.n_rays), kThreads, 0, stream>>>(p, offsets, t_starts, t_ends, ray_indices);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace nerfgen
