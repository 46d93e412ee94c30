// C++/OpenMP launchers of ray marching (the CPU twin of march.cu). Torch-free.
// Rays differ widely in cost (a miss costs nothing, a grazing ray hundreds of steps), so rays are
// handed out dynamically in small batches; each ray is marched once (collect_samples).
#include "nerfgen/cpu_threads.h"
#include "nerfgen/march_api.h"

namespace nerfgen {
namespace cpu {
namespace {
// Below this many rays a parallel region costs more than it saves.
constexpr int64_t kMinParallelRays = 256;
}  // namespace

void ray_aabb_intersect(const float* origins, const float* directions, const float* aabbs, int64_t n_rays,
                        int n_boxes, float near_plane, float far_plane, float* t_mins, float* t_maxs, bool* hits,
                        int n_threads) {
#pragma omp parallel for schedule(static) num_threads(threads_for(n_rays, kMinParallelRays, n_threads))
  for (int64_t r = 0; r < n_rays; ++r) {
    for (int b = 0; b < n_boxes; ++b) {
      const int64_t j = r * n_boxes + b;
      hits[j] = ray_box(origins + 3 * r, directions + 3 * r, aabbs + 6 * b, near_plane, far_plane, t_mins[j], t_maxs[j]);
    }
  }
}

void march(const MarchProblem& p, AllocateSamples allocate, void* context) {
  collect_samples(p.n_rays, p.n_threads, [&](int64_t r, auto&& emit) {
    const float jitter = p.jitter ? p.jitter[r] : 0.0f;
    march_ray(p.grid, p.params, p.origins + 3 * r, p.directions + 3 * r, jitter,
              [&](int64_t, float t0, float t1) { emit(t0, t1); });
  }, allocate, context);
}

}  // namespace cpu
}  // namespace nerfgen
