// Launchers of ray marching: the narrow, torch-free ABI between the kernels and the bindings.
// Every pointer is contiguous; the caller allocates the outputs.
//   ray_aabb_intersect: origins, directions [n_rays, 3], aabbs [n_boxes, 6]
//                       -> t_mins, t_maxs [n_rays, n_boxes], hits [n_rays, n_boxes]
//   march (CPU):        -> t_starts, t_ends [n_samples], ray_indices [n_samples], in memory that
//                       `allocate` gives once the number of samples is known (cpu_threads.h)
//   march_count (CUDA): -> counts [n_rays] (samples each ray keeps)
//   march_fill (CUDA):  offsets [n_rays] (exclusive prefix sum of counts)
//                       -> t_starts, t_ends [n_samples], ray_indices [n_samples]
#pragma once

#include "nerfgen/sample_buffers.h"
#include "nerfgen/march.h"

namespace nerfgen {

/// One marching call: the rays, their optional jitter ([n_rays] in [0, 1), or null) and the grid.
struct MarchProblem {
  const float* origins;     // [n_rays, 3]
  const float* directions;  // [n_rays, 3]
  const float* jitter;      // [n_rays] or nullptr
  int64_t n_rays;
  OccupancyGrid grid;
  MarchParams params;
  int n_threads;  // CPU only
};

namespace cpu {
void ray_aabb_intersect(const float* origins, const float* directions, const float* aabbs, int64_t n_rays,
                        int n_boxes, float near_plane, float far_plane, float* t_mins, float* t_maxs, bool* hits,
                        int n_threads);
void march(const MarchProblem& p, AllocateSamples allocate, void* context);
}  // namespace cpu

}  // namespace nerfgen

#if defined(__CUDACC__) || defined(NERFGEN_WITH_CUDA)
#include <cuda_runtime_api.h>

namespace nerfgen {
namespace cuda {
// Same contracts on device pointers; asynchronous on `stream`; return the launch status.
cudaError_t ray_aabb_intersect(const float* origins, const float* directions, const float* aabbs, int64_t n_rays,
                               int n_boxes, float near_plane, float far_plane, float* t_mins, float* t_maxs,
                               bool* hits, cudaStream_t stream);
cudaError_t march_count(const MarchProblem& p, int64_t* counts, cudaStream_t stream);
cudaError_t march_fill(const MarchProblem& p, const int64_t* offsets, float* t_starts, float* t_ends,
                       int64_t* ray_indices, cudaStream_t stream);
}  // namespace cuda
}  // namespace nerfgen
#endif
