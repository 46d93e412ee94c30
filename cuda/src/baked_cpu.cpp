// C++/OpenMP launchers of the baked-field ops (the CPU twin of baked.cu). Torch-free.
//
// The values' gradient needs no atomics: each thread owns a contiguous range of value rows and
// walks every point, adding only into its own rows (points are cheap next to contended atomic
// adds, and the sums come out the same on every run).
//
// Rendering is bound by memory reads that depend on each other (block map -> voxel_rows -> value
// rows), not by arithmetic, so each thread keeps kLanes neighbouring rays in flight and advances
// them in turns, each ray a three-stage pipeline: march to the next sample and locate its corners
// (prefetching their voxel_rows entries), read the rows (prefetching the values), shade. A turn
// moves every ray one stage on, so by the time a read is needed, the other rays' work has hidden
// its latency. Each ray's samples, their order and its arithmetic are render_baked_ray's.
#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nerfgen/baked_api.h"
#include "nerfgen/cpu_threads.h"

namespace nerfgen {
namespace cpu {
namespace {
constexpr int kTileRays = 256;  // rays a thread takes at a time (kLanes of them in flight)
constexpr int64_t kMinParallelRays = 256;
constexpr int64_t kMinParallelPoints = 1 << 12;

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}
}  // namespace

template <typename scalar_t>
void sparse_interp_forward(const SparseInterpProblem<scalar_t>& p, const scalar_t* values, scalar_t* sum,
                           scalar_t* present) {
  const int C = p.n_channels;
#pragma omp parallel for schedule(static) num_threads(threads_for(p.n_points, kMinParallelPoints, p.n_threads))
  for (int64_t i = 0; i < p.n_points; ++i) {
    VoxelCorners<scalar_t> k;
    voxel_corners(p.grid, p.positions + 3 * i, k);
    present[i] = gather_corners(k, values, C, sum + i * C);
  }
}

template <typename scalar_t>
void sparse_interp_backward(const SparseInterpProblem<scalar_t>& p, const scalar_t* grad_sum, int64_t n_rows,
                            scalar_t* grad_values) {
  const int C = p.n_channels;
#pragma omp parallel num_threads(threads_for(p.n_points, kMinParallelPoints, p.n_threads))
  {
    const int64_t t = thread_id(), nt = thread_count();
    const int64_t begin = n_rows * t / nt, end = n_rows * (t + 1) / nt;  // this thread's rows
    std::fill(grad_values + begin * C, grad_values + end * C, scalar_t(0));
    for (int64_t i = 0; i < p.n_points; ++i) {
      VoxelCorners<scalar_t> k;
      voxel_corners(p.grid, p.positions + 3 * i, k);
      const scalar_t* g = grad_sum + i * C;
      for (int c = 0; c < 8; ++c) {
        if (k.row[c] < begin || k.row[c] >= end) continue;  // absent (-1) or another thread's
        scalar_t* row = grad_values + static_cast<int64_t>(k.row[c]) * C;
        for (int j = 0; j < C; ++j) row[j] += k.weight[c] * g[j];
      }
    }
  }
}

void baked_march(const BakedMarch& p, AllocateSamples allocate, void* context) {
  collect_samples(p.n_rays, p.n_threads, [&](int64_t r, auto&& emit) {
    const float jitter = p.jitter ? p.jitter[r] : 0.0f;
    march_sparse_ray(p.grid, p.params, p.origins + 3 * r, p.directions + 3 * r, jitter,
                     [&](float t0, float t1, const float*) {
                       emit(t0, t1);
                       return true;
                     });
  }, allocate, context);
}

namespace {
constexpr int kLanes = 8;

/// One ray in flight: its march, its compositing, the sample located last (corners' cells known)
/// and the sample fetched before it (rows known, values on their way).
template <int K>
struct Lane {
  int64_t ray = -1;
  SparseMarch march;
  BakedComposite<K> composite;
  bool marching = false, has_located = false, has_fetched = false;
  CornerCells<float> located;
  VoxelCorners<float> fetched;
  float located_t[2], fetched_t[2];
};

template <int K, typename V>
class TileRenderer {
 public:
  TileRenderer(const BakedRender& p, const ValueRows<V>& values, const BakedImage& out)
      : p_(p), values_(values), out_(out) {}

  /// Renders rays [begin, end).
  void run(int64_t begin, int64_t end) {
    next_ray_ = begin, end_ = end;
    int active = 0;
    for (Lane<K>& lane : lanes_) active += start(lane);
    while (active > 0) {
      for (Lane<K>& lane : lanes_) {
        if (lane.ray >= 0 && !advance(lane)) {
          finish(lane);
          active += start(lane) ? 0 : -1;
        }
      }
    }
  }

 private:
  /// Puts the next ray that has a step to visit into `lane` (rays without one are written at
  /// once); false when the tile has no ray left.
  bool start(Lane<K>& lane) {
    lane.ray = -1;
    while (next_ray_ < end_) {
      const int64_t r = next_ray_++;
      const float* d = p_.directions + 3 * r;
      lane.composite = BakedComposite<K>(d);
      if (!lane.march.begin(p_.grid, p_.params, p_.origins + 3 * r, d, 0.0f)) {
        out_.shaded[r] = lane.composite.write(out_.color + 3 * r, out_.opacity[r], out_.depth[r]);
        continue;
      }
      lane.ray = r, lane.marching = true, lane.has_located = lane.has_fetched = false;
      return true;
    }
    return false;
  }

  /// One turn of `lane`: shade the fetched sample, fetch the located one, locate the next; false
  /// when the ray is done (stopped early, or nothing left to march or shade).
  bool advance(Lane<K>& lane) {
    if (lane.has_fetched) {
      lane.has_fetched = false;
      const bool on = lane.composite.add(lane.fetched, values_, p_.shading.empty_raw, p_.early_stop_eps,
                                         lane.fetched_t[0], lane.fetched_t[1]);
      if (!on) return false;
    }
    if (lane.has_located) {
      corner_rows(p_.grid, lane.located, lane.fetched);
      prefetch_rows<1 + 3 * K>(lane.fetched, values_);
      lane.fetched_t[0] = lane.located_t[0], lane.fetched_t[1] = lane.located_t[1];
      lane.has_fetched = true, lane.has_located = false;
    }
    if (lane.marching) {
      float x[3];
      lane.marching = lane.march.next(p_.grid, lane.located_t[0], lane.located_t[1], x);
      if (lane.marching) {
        corner_cells(p_.grid, static_cast<const float*>(x), lane.located);
        prefetch_cells(p_.grid, lane.located);
        lane.has_located = true;
      }
    }
    return lane.marching || lane.has_located || lane.has_fetched;
  }

  void finish(const Lane<K>& lane) {
    const int64_t r = lane.ray;
    out_.shaded[r] = lane.composite.write(out_.color + 3 * r, out_.opacity[r], out_.depth[r]);
  }

  const BakedRender& p_;
  const ValueRows<V> values_;
  const BakedImage& out_;
  Lane<K> lanes_[kLanes];
  int64_t next_ray_ = 0, end_ = 0;
};

template <int K, typename V>
void render_tiles(const BakedRender& p, const ValueRows<V>& values, const BakedImage& out) {
  const int64_t n_tiles = (p.n_rays + kTileRays - 1) / kTileRays;
#pragma omp parallel num_threads(threads_for(p.n_rays, kMinParallelRays, p.n_threads))
  {
    TileRenderer<K, V> renderer(p, values, out);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < n_tiles; ++t) renderer.run(t * kTileRays, std::min(p.n_rays, (t + 1) * kTileRays));
  }
}

template <typename V>
void render_rows(const BakedRender& p, const ValueRows<V>& values, const BakedImage& out) {
  switch (p.shading.sh_degree) {
    case 0: return render_tiles<1>(p, values, out);
    case 1: return render_tiles<4>(p, values, out);
    case 2: return render_tiles<9>(p, values, out);
    default: return render_tiles<16>(p, values, out);
  }
}
}  // namespace

void baked_render(const BakedRender& p, const BakedImage& out) {
  if (p.values_half != nullptr) {
    render_rows(p, ValueRows<Half>{p.values_half, p.row_stride}, out);
  } else {
    render_rows(p, ValueRows<float>{p.values, p.row_stride}, out);
  }
}

#define NERFGEN_INSTANTIATE(T)                                                                               \
  template void sparse_interp_forward<T>(const SparseInterpProblem<T>&, const T*, T*, T*);                   \
  template void sparse_interp_backward<T>(const SparseInterpProblem<T>&, const T*, int64_t, T*);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cpu
}  // namespace nerfgen
