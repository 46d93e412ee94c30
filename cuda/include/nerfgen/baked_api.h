// Launchers of baked-field ops: the narrow, torch-free ABI between the kernels and the bindings.
// Every pointer is contiguous; the caller allocates the outputs.
//   sparse_interp_forward:  positions [n, 3], values [n_rows, C] -> sum [n, C], present [n]
//   sparse_interp_backward: grad_sum [n, C] -> grad_values [n_rows, C] (fully overwritten)
//   baked_march (CPU), baked_count / baked_fill (CUDA): the samples of a march through the
//                           occupied cells, as march / march_count / march_fill (march_api.h)
//   baked_render:           rays -> color [n_rays, 3] (no background), opacity, depth [n_rays],
//                           shaded [n_rays] (samples shaded per ray); value rows in float32 or
//                           float16 (baked_render.h)
// Interpolation is instantiated for scalar_t = float and double; marching and rendering are float.
#pragma once

#include "nerfgen/baked.h"
#include "nerfgen/baked_render.h"
#include "nerfgen/sample_buffers.h"

namespace nerfgen {

/// Interpolation of a sparse grid's values at points.
template <typename scalar_t>
struct SparseInterpProblem {
  const scalar_t* positions;  // [n_points, 3]
  int64_t n_points;
  SparseGrid grid;
  int n_channels;  // C
  int n_threads;   // CPU only
};

/// A march through a sparse grid's occupied cells (jitter: [n_rays] in [0, 1), or null).
struct BakedMarch {
  const float* origins;     // [n_rays, 3]
  const float* directions;  // [n_rays, 3]
  const float* jitter;      // [n_rays] or nullptr
  int64_t n_rays;
  SparseGrid grid;
  MarchParams params;
  int n_threads;  // CPU only
};

/// A render of rays through a baked grid.
struct BakedRender {
  const float* origins;     // [n_rays, 3]
  const float* directions;  // [n_rays, 3] unit length
  int64_t n_rays;
  SparseGrid grid;
  const float* values;       // [n_rows, 1 + 3 K] rows `row_stride` apart, or null when they are float16:
  const Half* values_half;   // the same in float16, row_stride a multiple of 8 (else null)
  int64_t row_stride;
  BakedShading shading;
  MarchParams params;
  float early_stop_eps;
  int n_threads;  // CPU only
};

/// Outputs of a baked render.
struct BakedImage {
  float* color;     // [n_rays, 3]
  float* opacity;   // [n_rays]
  float* depth;     // [n_rays]
  int64_t* shaded;  // [n_rays]
};

namespace cpu {
template <typename scalar_t>
void sparse_interp_forward(const SparseInterpProblem<scalar_t>& p, const scalar_t* values, scalar_t* sum,
                           scalar_t* present);
template <typename scalar_t>
void sparse_interp_backward(const SparseInterpProblem<scalar_t>& p, const scalar_t* grad_sum, int64_t n_rows,
                            scalar_t* grad_values);
void baked_march(const BakedMarch& p, AllocateSamples allocate, void* context);
void baked_render(const BakedRender& p, const BakedImage& out);
}  // namespace cpu

}  // namespace nerfgen

#if defined(__CUDACC__) || defined(NERFGEN_WITH_CUDA)
#include <cuda_runtime_api.h>

namespace nerfgen {
namespace cuda {
// Same contracts on device pointers; asynchronous on `stream`; return the launch status.
template <typename scalar_t>
cudaError_t sparse_interp_forward(const SparseInterpProblem<scalar_t>& p, const scalar_t* values, scalar_t* sum,
                                  scalar_t* present, cudaStream_t stream);
template <typename scalar_t>
cudaError_t sparse_interp_backward(const SparseInterpProblem<scalar_t>& p, const scalar_t* grad_sum, int64_t n_rows,
                                   scalar_t* grad_values, cudaStream_t stream);
cudaError_t baked_count(const BakedMarch& p, int64_t* counts, cudaStream_t stream);
cudaError_t baked_fill(const BakedMarch& p, const int64_t* offsets, float* t_starts, float* t_ends,
                       int64_t* ray_indices, cudaStream_t stream);
cudaError_t baked_render(const BakedRender& p, const BakedImage& out, cudaStream_t stream);
}  // namespace cuda
}  // namespace nerfgen
#endif
