// Where a CPU march puts its samples once it knows how many there are (the bindings allocate
// tensors; see cpu::collect_samples in cpu_threads.h). Torch-free, no OpenMP.
#pragma once

#include <cstdint>

namespace nerfgen {
namespace cpu {

/// Room for a march's samples, in ray order.
struct SampleBuffers {
  float* t_starts;
  float* t_ends;
  int64_t* ray_indices;
};

/// Asked once for room for `total` samples.
using AllocateSamples = SampleBuffers (*)(int64_t total, void* context);

}  // namespace cpu
}  // namespace nerfgen
