// Host-only helpers of the CPU launchers: how many OpenMP threads one uses (below `min_parallel`
// units of work a parallel region costs more than it saves), and the one-pass collection of a
// march's samples.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "nerfgen/sample_buffers.h"

namespace nerfgen {
namespace cpu {
inline int threads_for(int64_t work, int64_t min_parallel, int n_threads) {
  return work >= min_parallel && n_threads > 1 ? n_threads : 1;
}
/// Marches every ray once, in chunks of rays handed out to the threads, keeping each chunk's
/// samples apart; then asks `allocate` for room for all of them and copies the chunks in ray
/// order (one pass over the rays, where counting and then filling would make two).
/// `march_one(r, emit)` marches ray r, calling emit(t_start, t_end) for each sample kept.
template <typename MarchOne>
void collect_samples(int64_t n_rays, int n_threads, MarchOne&& march_one, AllocateSamples allocate, void* context) {
  constexpr int64_t kChunk = 256;
  const int64_t n_chunks = (n_rays + kChunk - 1) / kChunk;
  std::vector<std::vector<float>> starts(n_chunks), ends(n_chunks);
  std::vector<std::vector<int64_t>> rays(n_chunks);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(n_rays, 2 * kChunk, n_threads))
  for (int64_t c = 0; c < n_chunks; ++c) {
    for (int64_t r = c * kChunk; r < std::min(n_rays, (c + 1) * kChunk); ++r) {
      march_one(r, [&](float t0, float t1) {
        starts[c].push_back(t0);
        ends[c].push_back(t1);
        rays[c].push_back(r);
      });
    }
  }
  std::vector<int64_t> offsets(n_chunks + 1, 0);
  for (int64_t c = 0; c < n_chunks; ++c) offsets[c + 1] = offsets[c] + static_cast<int64_t>(starts[c].size());
  const SampleBuffers out = allocate(offsets[n_chunks], context);
#pragma omp parallel for schedule(static) num_threads(threads_for(offsets[n_chunks], 1 << 16, n_threads))
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::copy(starts[c].begin(), starts[c].end(), out.t_starts + offsets[c]);
    std::copy(ends[c].begin(), ends[c].end(), out.t_ends + offsets[c]);
    std::copy(rays[c].begin(), rays[c].end(), out.ray_indices + offsets[c]);
  }
}

}  // namespace cpu
}  // namespace nerfgen
