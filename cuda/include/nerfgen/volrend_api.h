// Launchers of packed volume rendering: the narrow, torch-free ABI between the kernels and the
// bindings (shapes in volrend.h). The caller allocates every output; each is fully written.
// Instantiated for scalar_t = float and double.
#pragma once

#include "nerfgen/volrend.h"

namespace nerfgen {
namespace cpu {
template <typename scalar_t>
void composite_forward(const CompositeProblem<scalar_t>& p, const CompositeOutputs<scalar_t>& out);
template <typename scalar_t>
void composite_backward(const CompositeProblem<scalar_t>& p, const scalar_t* weights,
                        const scalar_t* transmittance, const CompositeGrads<scalar_t>& grads);
}  // namespace cpu
}  // namespace nerfgen

#if defined(__CUDACC__) || defined(NERFGEN_WITH_CUDA)
#include <cuda_runtime_api.h>

namespace nerfgen {
namespace cuda {
template <typename scalar_t>
cudaError_t composite_forward(const CompositeProblem<scalar_t>& p, const CompositeOutputs<scalar_t>& out,
                              cudaStream_t stream);
template <typename scalar_t>
cudaError_t composite_backward(const CompositeProblem<scalar_t>& p, const scalar_t* weights,
                               const scalar_t* transmittance, const CompositeGrads<scalar_t>& grads, cudaStream_t stream);
}  // namespace cuda
}  // namespace nerfgen
#endif
