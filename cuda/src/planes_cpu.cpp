// C++/OpenMP launchers of the factorised plane encoding (the CPU twin of planes.cu). Torch-free.
//
// Lookups are random reads in a table of several megabytes, so the loops run plane by plane: the
// threads share out the points and read one plane's block of the table at a time (a few MB at
// most, mostly in cache), with each point's rows prefetched a few points ahead, as the hash-grid
// launchers do. Forward: each plane's feature multiplies into the level's output in place.
// Backward, level by level over chunks of points: (1) each plane's features of the chunk into a
// buffer, plane by plane; (2) per point, the gradient of each plane's feature (the level's output
// gradient times the other planes' features) and the coordinates' gradient; (3) the table's
// gradient, each thread scattering whole planes (planes own disjoint rows: plain adds, no atomics).
#include <algorithm>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nerfgen/cpu_threads.h"
#include "nerfgen/planes_api.h"

namespace nerfgen {
namespace cpu {
namespace {

constexpr int64_t kMinParallelWork = 1 << 12;  // (point, plane) pairs below which one thread is faster
constexpr int64_t kChunk = 1 << 13;            // points per backward chunk
constexpr int kLookahead = 8;                  // points between computing corners (and prefetching) and use

template <typename Fn>
void dispatch(int n_features, Fn&& fn) {
  switch (n_features) {
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    case 16: fn(std::integral_constant<int, 16>{}); break;
    case 32: fn(std::integral_constant<int, 32>{}); break;
    default: fn(std::integral_constant<int, 0>{}); break;
  }
}

inline void prefetch(const void* address) {
#if defined(__GNUC__)
  __builtin_prefetch(address, 0, 3);
#else
  (void)address;
#endif
}

// Calls fn(i, corners) for points [begin, end) of plane q, corners computed (and their rows
// prefetched) kLookahead points ahead.
template <typename scalar_t, typename Fn>
void visit_plane(const PlaneProblem<scalar_t>& p, int q, const scalar_t* table, int F, int64_t begin, int64_t end,
                 Fn&& fn) {
  PlaneCorners<scalar_t> ring[kLookahead];
  auto fetch = [&](int64_t i) {
    PlaneCorners<scalar_t>& c = ring[(i - begin) % kLookahead];
    plane_corners(p, p.coords + i * p.dim, q, c);
    prefetch(table + c.row[0] * F);
    prefetch(table + c.row[2] * F);
  };
  for (int64_t i = begin; i < std::min(end, begin + kLookahead); ++i) fetch(i);
  for (int64_t i = begin; i < end; ++i) {
    const PlaneCorners<scalar_t> c = ring[(i - begin) % kLookahead];
    if (i + kLookahead < end) fetch(i + kLookahead);
    fn(i, c);
  }
}

// This thread's contiguous share [begin, end) of [0, n).
template <typename Fn>
void share(int64_t n, int threads, Fn&& fn) {
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int64_t t = 0, nt = 1;
#endif
    fn(n * t / nt, n * (t + 1) / nt);
  }
}

template <typename scalar_t, int N_FEAT>
void forward_impl(const PlaneProblem<scalar_t>& p, const scalar_t* table, scalar_t* out) {
  const int F = plane_feature_count<N_FEAT>(p.n_features);
  const int per = p.per_level();
  const int64_t stride = static_cast<int64_t>(p.n_levels) * F;
  const int threads = threads_for(p.n_points * p.n_planes, kMinParallelWork, p.n_threads);
  share(p.n_points, threads, [&](int64_t begin, int64_t end) {
    for (int q = 0; q < p.n_planes; ++q) {  // plane-major: one plane's block of the table at a time
      const int level = q / per, k = q % per;
      scalar_t feat[N_FEAT > 0 ? N_FEAT : kMaxPlaneFeatures];
      visit_plane(p, q, table, F, begin, end, [&](int64_t i, const PlaneCorners<scalar_t>& c) {
        plane_gather<scalar_t, N_FEAT>(c, table, F, feat);
        scalar_t* o = out + i * stride + level * F;
        if (k == 0) {
          for (int f = 0; f < F; ++f) o[f] = feat[f];
        } else {
          for (int f = 0; f < F; ++f) o[f] *= feat[f];
        }
      });
    }
  });
}

template <typename scalar_t, int N_FEAT>
void backward_impl(const PlaneProblem<scalar_t>& p, const scalar_t* table, const scalar_t* grad_out,
                   int64_t table_rows, scalar_t* grad_table, scalar_t* grad_coords) {
  const int F = plane_feature_count<N_FEAT>(p.n_features);
  const int per = p.per_level();
  const int64_t stride = static_cast<int64_t>(p.n_levels) * F;
  const int threads = threads_for(p.n_points * p.n_planes, kMinParallelWork, p.n_threads);
  if (grad_table != nullptr) std::fill(grad_table, grad_table + table_rows * F, scalar_t(0));
  if (grad_coords != nullptr) std::fill(grad_coords, grad_coords + p.n_points * p.dim, scalar_t(0));
  const int64_t chunk = std::min(kChunk, p.n_points);
  std::vector<scalar_t> feats(static_cast<size_t>(chunk) * per * F), grads(feats.size());  // [j, k, f]
  for (int level = 0; level < p.n_levels; ++level) {
    for (int64_t begin = 0; begin < p.n_points; begin += kChunk) {
      const int64_t end = std::min(begin + kChunk, p.n_points), n = end - begin;
      scalar_t* fb = feats.data();
      scalar_t* gb = grads.data();
      share(n, threads, [&](int64_t lo, int64_t hi) {  // (1) features, plane by plane
        for (int k = 0; k < per; ++k) {
          visit_plane(p, level * per + k, table, F, begin + lo, begin + hi, [&](int64_t i, const PlaneCorners<scalar_t>& c) {
            plane_gather<scalar_t, N_FEAT>(c, table, F, fb + ((i - begin) * per + k) * F);
          });
        }
      });
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t j = 0; j < n; ++j) {  // (2) each plane's feature gradient: g times the others
        const scalar_t* g = grad_out + (begin + j) * stride + level * F;
        const scalar_t* fj = fb + j * per * F;
        scalar_t* gj = gb + j * per * F;
        for (int f = 0; f < F; ++f) {
          scalar_t prefix = g[f];
          for (int k = 0; k < per; ++k) {
            gj[k * F + f] = prefix;
            prefix *= fj[k * F + f];
          }
          scalar_t suffix = scalar_t(1);
          for (int k = per - 1; k >= 0; --k) {
            gj[k * F + f] *= suffix;
            suffix *= fj[k * F + f];
          }
        }
      }
      if (grad_coords != nullptr) {
        share(n, threads, [&](int64_t lo, int64_t hi) {  // the coordinates' gradient, plane by plane
          for (int k = 0; k < per; ++k) {
            const int q = level * per + k;
            const int a = p.axes[2 * q], b = p.axes[2 * q + 1];
            const scalar_t su = static_cast<scalar_t>(p.sizes[2 * q] - 1), sv = static_cast<scalar_t>(p.sizes[2 * q + 1] - 1);
            visit_plane(p, q, table, F, begin + lo, begin + hi, [&](int64_t i, const PlaneCorners<scalar_t>& c) {
              const scalar_t* gf = gb + ((i - begin) * per + k) * F;
              scalar_t du = scalar_t(0), dv = scalar_t(0);
              for (int f = 0; f < F; ++f) {
                const scalar_t t0 = table[c.row[0] * F + f], t1 = table[c.row[1] * F + f];
                const scalar_t t2 = table[c.row[2] * F + f], t3 = table[c.row[3] * F + f];
                du += gf[f] * ((t1 - t0) * (scalar_t(1) - c.fv) + (t3 - t2) * c.fv);
                dv += gf[f] * ((t2 - t0) * (scalar_t(1) - c.fu) + (t3 - t1) * c.fu);
              }
              if (c.in_u) grad_coords[i * p.dim + a] += du * su;
              if (c.in_v) grad_coords[i * p.dim + b] += dv * sv;
            });
          }
        });
      }
      if (grad_table == nullptr) continue;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (int k = 0; k < per; ++k) {  // (3) scatter, one whole plane per task
        visit_plane(p, level * per + k, grad_table, F, begin, end, [&](int64_t i, const PlaneCorners<scalar_t>& c) {
          const scalar_t* gf = gb + ((i - begin) * per + k) * F;
          for (int corner = 0; corner < 4; ++corner) {
            scalar_t* row = grad_table + c.row[corner] * F;
            const scalar_t w = c.weight[corner];
            for (int f = 0; f < F; ++f) row[f] += w * gf[f];
          }
        });
      }
    }
  }
}

}  // namespace

template <typename scalar_t>
void plane_forward(const PlaneProblem<scalar_t>& p, const scalar_t* table, scalar_t* out) {
  dispatch(p.n_features, [&](auto nf) { forward_impl<scalar_t, decltype(nf)::value>(p, table, out); });
}

template <typename scalar_t>
void plane_backward(const PlaneProblem<scalar_t>& p, const scalar_t* table, const scalar_t* grad_out,
                    int64_t table_rows, scalar_t* grad_table, scalar_t* grad_coords) {
  dispatch(p.n_features, [&](auto nf) {
    backward_impl<scalar_t, decltype(nf)::value>(p, table, grad_out, table_rows, grad_table, grad_coords);
  });
}

#define NERFGEN_INSTANTIATE(T)                                                                      \
  template void plane_forward<T>(const PlaneProblem<T>&, const T*, T*);                            \
  template void plane_backward<T>(const PlaneProblem<T>&, const T*, const T*, int64_t, T*, T*);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cpu
}  // namespace nerfgen
