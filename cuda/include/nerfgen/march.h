// Ray marching through a multi-cascade occupancy grid: the per-ray math shared by the CUDA
// kernels (march.cu) and the C++/OpenMP twin (march_cpu.cpp). Raw pointers, no torch.
//
// Mirrors nerfgen/ops/intersect.py and nerfgen/ops/march.py operation for operation (same
// float32 expressions, no fused multiply-adds), so both place samples at the same t:
//   * a ray meets the coarsest box on [t_min, t_max] (slab test, clipped to near/far);
//   * step k starts at t(k) = t0 + k dt while dt = step_size, then grows geometrically by
//     (1 + cone_angle) once cone_angle * t exceeds step_size (instant-ngp's cone stepping);
//   * a step is kept when its midpoint lies in an occupied cell of the finest cascade that
//     contains it.
// The twin tests every step; the kernels skip empty cells (DDA): from a step whose midpoint is
// in an empty cell they jump to the last step that surely ends inside that cell, so they keep
// exactly the twin's samples while touching only a few steps per empty cell. Where the grid comes
// with a coarser copy (a cell of `coarse` is occupied when any of the factor^3 cells it covers
// is), a step in an empty coarse cell skips that whole coarse cell at once.
#pragma once

#include <cstdint>

#include "nerfgen/common.h"

namespace nerfgen {

/// The occupancy grid: level 0 is the finest cascade, each box nested in the next.
struct OccupancyGrid {
  const bool* binaries;  // [n_levels, res, res, res]
  const float* aabbs;    // [n_levels, 6] (xmin, ymin, zmin, xmax, ymax, zmax)
  int n_levels;
  int resolution;
  const bool* coarse = nullptr;  // [n_levels, res / f, res / f, res / f], or null
  int coarse_factor = 1;         // f, dividing res
};

/// Step rule and limits. `t_switch` = step_size / cone_angle and `log1p_cone` =
/// log1p(cone_angle) are rounded from double once by the caller, as the twin's Python floats are.
struct MarchParams {
  float near_plane, far_plane, step_size, cone_angle, t_switch, log1p_cone;
};

/// Slab test of one ray against one box; false (and t_min = t_max = far) on a miss.
HD bool ray_box(const float* o, const float* d, const float* box, float near_plane, float far_plane,
                float& t_min, float& t_max) {
  float lo = -INFINITY, hi = INFINITY;
  NERFGEN_UNROLL
  for (int a = 0; a < 3; ++a) {
    const float inv = 1.0f / ((d[a] < 0 ? -d[a] : d[a]) < 1e-12f ? 1e-12f : d[a]);
    const float t0 = (box[a] - o[a]) * inv, t1 = (box[a + 3] - o[a]) * inv;
    lo = max_of(lo, min_of(t0, t1));
    hi = min_of(hi, max_of(t0, t1));
  }
  lo = max_of(lo, near_plane);
  hi = min_of(hi, far_plane);
  const bool hit = hi > lo;
  t_min = hit ? lo : far_plane;
  t_max = hit ? hi : far_plane;
  return hit;
}

/// The step rule from a ray's first sample t0: t(k), the number of steps to pass t_end, and
/// the (real) inverse of t(k).
struct StepRule {
  float t0, step, cone, k1, t_k1, log1p_cone;

  StepRule() = default;

  HD StepRule(float t0_, const MarchParams& p)
      : t0(t0_), step(p.step_size), cone(p.cone_angle), k1(0), t_k1(t0_), log1p_cone(p.log1p_cone) {
    if (cone > 0) {
      k1 = max_of(ceil_of((p.t_switch - t0) / step), 0.0f);
      t_k1 = t0 + k1 * step;
    }
  }

  HD float t_of(float k) const {
    const float linear = t0 + k * step;
    if (cone <= 0 || k <= k1) return linear;
    return t_k1 * exp_of(max_of(k - k1, 0.0f) * log1p_cone);
  }

  HD int64_t steps_to(float t_end) const {
    const float linear = max_of(ceil_of((t_end - t0) / step), 0.0f);
    if (cone <= 0 || t_end <= t_k1) return static_cast<int64_t>(linear);
    const float ratio = max_of(t_end, 1e-10f) / max_of(t_k1, 1e-10f);
    return static_cast<int64_t>(max_of(k1 + ceil_of(log_of(ratio) / log1p_cone), 0.0f));
  }

  /// Real k with t(k) = t (double: only used to bound how far a skip may go).
  HD double k_of(float t) const {
    if (cone <= 0 || t <= t_k1) return (static_cast<double>(t) - t0) / step;
    return k1 + log_of(static_cast<double>(t) / t_k1) / log1p_cone;
  }
};

/// Where a point falls in the grid: the finest level whose box holds it, and its cell there.
struct GridCell {
  bool inside;    // in the coarsest box at all
  bool occupied;  // inside, and the cell is occupied
  int level;
  int ijk[3];
};

HD GridCell grid_cell(const OccupancyGrid& g, const float* x) {
  GridCell c{false, false, g.n_levels - 1, {0, 0, 0}};
  for (int l = 0; l < g.n_levels; ++l) {
    const float* box = g.aabbs + 6 * l;
    if (x[0] >= box[0] && x[0] < box[3] && x[1] >= box[1] && x[1] < box[4] && x[2] >= box[2] && x[2] < box[5]) {
      c.inside = true;
      c.level = l;
      break;
    }
  }
  const float* box = g.aabbs + 6 * c.level;
  const float res = static_cast<float>(g.resolution);
  NERFGEN_UNROLL
  for (int a = 0; a < 3; ++a) {
    const float scaled = (x[a] - box[a]) / (box[a + 3] - box[a]) * res;
    c.ijk[a] = static_cast<int>(min_of(max_of(scaled, 0.0f), res - 1.0f));  // NaN -> 0, as the twin
  }
  if (c.inside) {
    const int64_t r = g.resolution;
    const int64_t flat = ((c.level * r + c.ijk[0]) * r + c.ijk[1]) * r + c.ijk[2];
    c.occupied = g.binaries[flat];
  }
  return c;
}

/// t at which the ray leaves cell `c`, or enters the next finer box if that comes first (the
/// finer cascade then decides occupancy).
HD float cell_exit(const OccupancyGrid& g, const GridCell& c, const float* o, const float* d, float t_now) {
  const float* box = g.aabbs + 6 * c.level;
  float t_exit = INFINITY;
  NERFGEN_UNROLL
  for (int a = 0; a < 3; ++a) {
    const float size = (box[a + 3] - box[a]) / static_cast<float>(g.resolution);
    const float lo = box[a] + size * static_cast<float>(c.ijk[a]);
    if (d[a] > 0) t_exit = min_of(t_exit, (lo + size - o[a]) / d[a]);
    if (d[a] < 0) t_exit = min_of(t_exit, (lo - o[a]) / d[a]);
  }
  float t_in, t_out;
  if (c.level > 0 && ray_box(o, d, g.aabbs + 6 * (c.level - 1), -INFINITY, INFINITY, t_in, t_out) && t_in > t_now) {
    t_exit = min_of(t_exit, t_in);
  }
  return t_exit;
}

/// t at which the ray leaves the empty cell `c`: the exit of its coarse cell when that is empty
/// too, else of the cell itself (see cell_exit).
HD float empty_exit(const OccupancyGrid& g, const GridCell& c, const float* o, const float* d, float t_now) {
  if (g.coarse != nullptr) {
    const int f = g.coarse_factor, rc = g.resolution / f;
    const GridCell region{true, false, c.level, {c.ijk[0] / f, c.ijk[1] / f, c.ijk[2] / f}};
    const int64_t flat = ((static_cast<int64_t>(c.level) * rc + region.ijk[0]) * rc + region.ijk[1]) * rc + region.ijk[2];
    if (!g.coarse[flat]) return cell_exit(OccupancyGrid{nullptr, g.aabbs, g.n_levels, rc}, region, o, d, t_now);
  }
  return cell_exit(g, c, o, d, t_now);
}

/// Whether the three components are finite (x - x is 0 for a finite x, NaN for an infinite or NaN one).
HD bool finite3(const float* v) { return v[0] - v[0] == 0.0f && v[1] - v[1] == 0.0f && v[2] - v[2] == 0.0f; }

/// Marches one ray; calls emit(j, t_start, t_end) for its j-th kept sample; returns the count. A ray
/// whose origin or direction is not finite keeps no sample (it would otherwise never end its march).
template <typename Emit>
HD int64_t march_ray(const OccupancyGrid& g, const MarchParams& p, const float* o, const float* d, float jitter,
                     Emit&& emit) {
  if (!finite3(o) || !finite3(d)) return 0;
  float t_min, t_max;
  if (!ray_box(o, d, g.aabbs + 6 * (g.n_levels - 1), p.near_plane, p.far_plane, t_min, t_max)) return 0;
  const StepRule rule(t_min + jitter * p.step_size, p);
  const int64_t n_steps = rule.steps_to(t_max);
  int64_t kept = 0;
  for (int64_t k = 0; k < n_steps;) {
    const float kf = static_cast<float>(k);
    const float t_start = rule.t_of(kf);
    const float t_end = min_of(rule.t_of(kf + 1.0f), t_max);
    const float mid = (t_start + t_end) * 0.5f;
    const float x[3] = {o[0] + d[0] * mid, o[1] + d[1] * mid, o[2] + d[2] * mid};
    const GridCell c = grid_cell(g, x);
    if (c.occupied || !c.inside) {
      if (c.occupied && t_end > t_start) emit(kept++, t_start, t_end);
      ++k;
      continue;
    }
    // Every step k' < rule.k_of(t_exit) - 1 ends before t_exit, so its midpoint lies in this cell
    // (the margin absorbs rounding); skip to the last such step.
    const double last = rule.k_of(empty_exit(g, c, o, d, mid)) - 1.01;
    k = last > static_cast<double>(k + 1) ? static_cast<int64_t>(min_of(last, static_cast<double>(n_steps))) : k + 1;
  }
  return kept;
}

}  // namespace nerfgen
