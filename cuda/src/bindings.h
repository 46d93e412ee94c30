// Helpers shared by the binding files (bindings*.cpp): the only code of nerfgen's kernels that
// touches torch. Numbers in error messages are formatted with std::to_string, never by an ostream
// of this library: built with GCC 13 against torch 2.11's wheel (a CUDA machine's image),
// inserting an integer into the message's ostream crashed inside libstdc++'s locale code, so a bad
// argument gave a segfault instead of an error. Strings and dtypes stream safely.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "nerfgen/cpu_threads.h"

#ifdef NERFGEN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace nerfgen {
namespace bindings {

/// The CPU launchers' device guard: nothing to switch to (the CUDA launchers use c10::cuda::CUDAGuard).
struct NoDeviceGuard {
  explicit NoDeviceGuard(c10::Device) {}
};

inline std::string num(int64_t value) { return std::to_string(value); }

inline std::string shape_of(at::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

#ifdef NERFGEN_WITH_CUDA
/// One error naming the op family when a CUDA launch failed.
inline void check_cuda(const char* family, cudaError_t status) {
  TORCH_CHECK(status == cudaSuccess, family, ": CUDA launch failed: ", cudaGetErrorString(status));
}
#endif

/// The tensors of a march's samples, made when a CPU launcher knows how many there are
/// (cpu::collect_samples asks through `allocate`).
struct MarchTensors {
  at::TensorOptions options;  // the rays' (float32, their device)
  at::Tensor t_starts, t_ends, ray_indices;

  static cpu::SampleBuffers allocate(int64_t total, void* self) {
    auto* m = static_cast<MarchTensors*>(self);
    m->t_starts = at::empty({total}, m->options);
    m->t_ends = at::empty({total}, m->options);
    m->ray_indices = at::empty({total}, m->options.dtype(at::kLong));
    return {m->t_starts.data_ptr<float>(), m->t_ends.data_ptr<float>(), m->ray_indices.data_ptr<int64_t>()};
  }
};

/// Samples of a march done as count, prefix sum, fill (the CUDA launchers).
template <typename Count, typename Fill>
std::tuple<at::Tensor, at::Tensor, at::Tensor> count_and_fill(int64_t n_rays, const at::TensorOptions& options,
                                                              Count&& count, Fill&& fill) {
  auto counts = at::empty({n_rays}, options.dtype(at::kLong));
  count(counts.data_ptr<int64_t>());
  auto offsets = at::cumsum(counts, 0) - counts;
  const int64_t total = n_rays > 0 ? (offsets[n_rays - 1] + counts[n_rays - 1]).item<int64_t>() : 0;
  auto t_starts = at::empty({total}, options);
  auto t_ends = at::empty({total}, options);
  auto ray_indices = at::empty({total}, counts.options());
  fill(offsets.data_ptr<int64_t>(), t_starts.data_ptr<float>(), t_ends.data_ptr<float>(),
       ray_indices.data_ptr<int64_t>());
  return {t_starts, t_ends, ray_indices};
}

}  // namespace bindings
}  // namespace nerfgen
