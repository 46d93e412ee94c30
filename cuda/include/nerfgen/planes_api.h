// Launchers of the factorised plane encoding: the narrow, torch-free ABI between the kernels and
// the bindings. Every pointer is contiguous; the caller allocates the outputs:
//   out          [n_points, n_levels * n_features]   (level-major)
//   grad_out     [n_points, n_levels * n_features]
//   grad_table   [table_rows, n_features]   (fully overwritten; null: not wanted)
//   grad_coords  [n_points, dim]            (fully overwritten; null: not wanted)
// Instantiated for scalar_t = float and double.
#pragma once

#include "nerfgen/planes.h"

namespace nerfgen {
namespace cpu {

template <typename scalar_t>
void plane_forward(const PlaneProblem<scalar_t>& p, const scalar_t* table, scalar_t* out);

template <typename scalar_t>
void plane_backward(const PlaneProblem<scalar_t>& p, const scalar_t* table, const scalar_t* grad_out,
                    int64_t table_rows, scalar_t* grad_table, scalar_t* grad_coords);

}  // namespace cpu
}  // namespace nerfgen

#if defined(__CUDACC__) || defined(NERFGEN_WITH_CUDA)
#include <cuda_runtime_api.h>

namespace nerfgen {
namespace cuda {

// Same contracts on device pointers; asynchronous on `stream`; return the launch status.
template <typename scalar_t>
cudaError_t plane_forward(const PlaneProblem<scalar_t>& p, const scalar_t* table, scalar_t* out,
                          cudaStream_t stream);

template <typename scalar_t>
cudaError_t plane_backward(const PlaneProblem<scalar_t>& p, const scalar_t* table, const scalar_t* grad_out,
                           int64_t table_rows, scalar_t* grad_table, scalar_t* grad_coords, cudaStream_t stream);

}  // namespace cuda
}  // namespace nerfgen
#endif
