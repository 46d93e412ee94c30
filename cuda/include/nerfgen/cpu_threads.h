// Host-only: how many OpenMP threads a CPU launcher uses. Below `min_parallel` units of work a
// parallel region costs more than it saves.
#pragma once

#include <cstdint>

namespace nerfgen {
namespace cpu {
inline int threads_for(int64_t work, int64_t min_parallel, int n_threads) {
  return work >= min_parallel && n_threads > 1 ? n_threads : 1;
}
}  // namespace cpu
}  // namespace nerfgen
