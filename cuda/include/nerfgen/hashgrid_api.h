// Launchers of the hash-grid encoding: the narrow, torch-free ABI between the kernels and the
// bindings. Every pointer is contiguous; the caller allocates the outputs:
//   out            [n_points, n_levels * n_features]   (level-major)
//   grad_out       [n_points, n_levels * n_features]
//   grad_table     [n_levels << log2_table_size, n_features]  (fully overwritten)
//   grad_positions [n_points, 3]                               (fully overwritten)
// Instantiated for scalar_t = float and double.
#pragma once

#include "nerfgen/hashgrid.h"

namespace nerfgen {
namespace cpu {

template <typename scalar_t>
void hash_grid_forward(const HashGridProblem<scalar_t>& p, const scalar_t* table, scalar_t* out);

template <typename scalar_t>
void hash_grid_backward_table(const HashGridProblem<scalar_t>& p, const scalar_t* grad_out,
                              scalar_t* grad_table);

template <typename scalar_t>
void hash_grid_backward_positions(const HashGridProblem<scalar_t>& p, const scalar_t* table,
                                  const scalar_t* grad_out, scalar_t* grad_positions);

}  // namespace cpu
}  // namespace nerfgen

#if defined(__CUDACC__) || defined(NERFGEN_WITH_CUDA)
#include <cuda_runtime_api.h>

namespace nerfgen {
namespace cuda {

// Same contracts on device pointers; asynchronous on `stream`; return the launch status.
template <typename scalar_t>
cudaError_t hash_grid_forward(const HashGridProblem<scalar_t>& p, const scalar_t* table,
                              scalar_t* out, cudaStream_t stream);

template <typename scalar_t>
cudaError_t hash_grid_backward_table(const HashGridProblem<scalar_t>& p, const scalar_t* grad_out,
                                     scalar_t* grad_table, cudaStream_t stream);

template <typename scalar_t>
cudaError_t hash_grid_backward_positions(const HashGridProblem<scalar_t>& p, const scalar_t* table,
                                         const scalar_t* grad_out, scalar_t* grad_positions,
                                         cudaStream_t stream);

}  // namespace cuda
}  // namespace nerfgen
#endif
