// Baked fields: a sparse voxel grid of density and spherical-harmonic colour, the math shared by
// the CUDA kernels (baked.cu) and the C++/OpenMP twin (baked_cpu.cpp). Raw pointers, no torch.
//
// The grid has L nested levels (boxes as the occupancy grid's cascades, level 0 the finest), each
// of R^3 voxels, R = G B, stored in blocks of B^3: block_ids [L, G, G, G] names the block of each
// region (-1: nothing there), voxel_rows [n_blocks, B^3] the value row of each voxel (-1: absent)
// and cell_occupied [n_blocks, B^3] whether a sample in that voxel's cell may see any density.
// Values sit at voxel centres: a point x of level l (the finest box holding it) has continuous
// voxel coordinates u = (x - lo) / (hi - lo) R - 1/2 and is interpolated trilinearly from the 8
// voxels around u; voxels outside [0, R) or absent contribute nothing:
//     sum[c] = sum_i w_i [present_i] values[row_i, c],   present = sum_i w_i [present_i].
// Rendering reads the rows as [raw density, K SH coefficients of red, of green, of blue]
// (K = (degree + 1)^2):
//     raw = sum[0] + (1 - present) empty_raw,   sigma = exp(min(raw, 15))  (0 where present = 0),
//     rgb_ch = sigmoid(sum_k Y_k(d) sum[1 + ch K + k] / present),
// and composites front to back as volrend.h does (early termination included).
// Marching follows march.h's step rule; a step is sampled when its midpoint's cell is occupied.
// Regions without a block are skipped whole (as march.h skips empty cells), so both twins keep
// exactly the samples of a march that tests every step. Mirrors nerfgen/ops/baked.py.
#pragma once

#include <cstdint>

#include "nerfgen/common.h"
#include "nerfgen/march.h"

namespace nerfgen {

/// The sparse voxel grid (see the file comment).
struct SparseGrid {
  const int32_t* block_ids;   // [n_levels, G, G, G]
  const int32_t* voxel_rows;  // [n_blocks, B, B, B]
  const bool* cell_occupied;  // [n_blocks, B, B, B]
  const float* aabbs;         // [n_levels, 6]
  int n_levels;
  int blocks;      // G: blocks per axis
  int block_size;  // B: voxels per block and axis
  const bool* coarse = nullptr;  // [n_levels, G / f, G / f, G / f]: any block in f^3 regions, or null
  int coarse_factor = 1;         // f, dividing G
  bool has_bounds = false;       // whether `bounds` holds a box around every block of every level
  float bounds[6] = {0, 0, 0, 0, 0, 0};  // (marching skips what lies outside it in one go)
};

/// Where a point falls: its level, its voxel cell (at resolution R = G B) and that cell's block.
struct SparseCell {
  bool inside;  // in the coarsest box at all
  int level;
  int ijk[3];   // cell at resolution R
  int32_t block;
  int32_t local;  // the cell's index inside its block, ((i % B) B + j % B) B + k % B
};

HD int sparse_res(const SparseGrid& g) { return g.blocks * g.block_size; }

HD int finest_level(const float* aabbs, int n_levels, const float* x) {
  for (int l = 0; l < n_levels; ++l) {
    const float* b = aabbs + 6 * l;
    if (x[0] >= b[0] && x[0] < b[3] && x[1] >= b[1] && x[1] < b[4] && x[2] >= b[2] && x[2] < b[5]) return l;
  }
  return -1;
}

/// Flat index of block (i, j, k) of a level in block_ids.
HD int64_t block_index(const SparseGrid& g, int level, int i, int j, int k) {
  const int64_t G = g.blocks;
  return ((level * G + i) * G + j) * G + k;
}

HD SparseCell sparse_cell(const SparseGrid& g, const float* x) {
  const int found = finest_level(g.aabbs, g.n_levels, x);
  SparseCell c{found >= 0, found >= 0 ? found : g.n_levels - 1, {0, 0, 0}, -1, 0};
  const float* box = g.aabbs + 6 * c.level;
  const int res = sparse_res(g);
  NERFGEN_UNROLL
  for (int a = 0; a < 3; ++a) {
    const float scaled = (x[a] - box[a]) / (box[a + 3] - box[a]) * static_cast<float>(res);
    c.ijk[a] = static_cast<int>(min_of(max_of(scaled, 0.0f), static_cast<float>(res - 1)));  // NaN -> 0
  }
  if (c.inside) {
    const int B = g.block_size;
    int blk[3], loc[3];
    NERFGEN_UNROLL
    for (int a = 0; a < 3; ++a) blk[a] = c.ijk[a] / B, loc[a] = c.ijk[a] - blk[a] * B;
    c.block = g.block_ids[block_index(g, c.level, blk[0], blk[1], blk[2])];
    c.local = (loc[0] * B + loc[1]) * B + loc[2];
  }
  return c;
}

/// Whether a sample in cell `c` may see density (its block exists and the cell is marked).
HD bool cell_is_occupied(const SparseGrid& g, const SparseCell& c) {
  if (c.block < 0) return false;
  const int64_t B = g.block_size;
  return g.cell_occupied[c.block * B * B * B + c.local];
}

/// The 8 voxels around a point and their trilinear weights (row -1: absent).
template <typename scalar_t>
struct VoxelCorners {
  int32_t row[8];
  scalar_t weight[8];
};

/// Corners of point x (float32 world coordinates, as the samples of a march). Vertex c has offset
/// bits (c >> 2 & 1, c >> 1 & 1, c & 1) on axes (x, y, z). A point outside every box has none.
/// Each axis's two voxel coordinates are split into block and local index with one division.
template <typename scalar_t>
HD void voxel_corners(const SparseGrid& g, const scalar_t* x, VoxelCorners<scalar_t>& k) {
  const float xf[3] = {static_cast<float>(x[0]), static_cast<float>(x[1]), static_cast<float>(x[2])};
  const int level = finest_level(g.aabbs, g.n_levels, xf);
  if (level < 0) {
    for (int c = 0; c < 8; ++c) k.row[c] = -1, k.weight[c] = scalar_t(0);
    return;
  }
  const float* box = g.aabbs + 6 * level;
  const int res = sparse_res(g), B = g.block_size;
  const scalar_t res_s = static_cast<scalar_t>(res);
  int blk[3][2], loc[3][2];
  bool ok[3][2];
  scalar_t w[3][2];
  NERFGEN_UNROLL
  for (int a = 0; a < 3; ++a) {
    const scalar_t lo = static_cast<scalar_t>(box[a]), hi = static_cast<scalar_t>(box[a + 3]);
    const scalar_t u = (x[a] - lo) / (hi - lo) * res_s - scalar_t(0.5);
    const scalar_t corner = floor_of(u);
    const scalar_t frac = u - corner;
    const bool number = corner == corner;  // NaN: no voxel
    const int base = number ? static_cast<int>(max_of(min_of(corner, res_s), scalar_t(-2))) : -2;  // far outside: none
    const int upper = max_of(base + 1, 0);  // the second voxel, or voxel 0 when neither is in range
    const int b1 = upper / B, l1 = upper - b1 * B;
    blk[a][1] = b1, loc[a][1] = l1;
    blk[a][0] = l1 > 0 ? b1 : b1 - 1, loc[a][0] = l1 > 0 ? l1 - 1 : B - 1;
    ok[a][0] = base >= 0 && base < res;
    ok[a][1] = base + 1 >= 0 && base + 1 < res;
    w[a][0] = scalar_t(1) - frac;
    w[a][1] = frac;
  }
  NERFGEN_UNROLL
  for (int c = 0; c < 8; ++c) {
    const int bits[3] = {c >> 2 & 1, c >> 1 & 1, c & 1};
    int32_t row = -1;
    if (ok[0][bits[0]] && ok[1][bits[1]] && ok[2][bits[2]]) {
      const int32_t block = g.block_ids[block_index(g, level, blk[0][bits[0]], blk[1][bits[1]], blk[2][bits[2]])];
      if (block >= 0) {
        const int64_t local = (loc[0][bits[0]] * B + loc[1][bits[1]]) * B + loc[2][bits[2]];
        row = g.voxel_rows[static_cast<int64_t>(block) * B * B * B + local];
      }
    }
    k.row[c] = row;
    k.weight[c] = w[0][bits[0]] * w[1][bits[1]] * w[2][bits[2]];
  }
}

/// sum[c] over the present corners (C channels) and the present weight (see the file comment).
template <typename scalar_t>
HD scalar_t gather_corners(const VoxelCorners<scalar_t>& k, const scalar_t* __restrict__ values, int C,
                           scalar_t* __restrict__ sum) {
  for (int c = 0; c < C; ++c) sum[c] = scalar_t(0);
  scalar_t present = scalar_t(0);
  for (int i = 0; i < 8; ++i) {
    if (k.row[i] < 0) continue;
    const scalar_t w = k.weight[i];
    const scalar_t* row = values + static_cast<int64_t>(k.row[i]) * C;
    for (int c = 0; c < C; ++c) sum[c] += w * row[c];
    present += w;
  }
  return present;
}

/// gather_corners for a channel count known at compile time (the renderer's rows), which the
/// compiler unrolls and vectorises.
template <int kC>
HD float gather_corners_fixed(const VoxelCorners<float>& k, const float* __restrict__ values, float* __restrict__ sum) {
  NERFGEN_UNROLL
  for (int c = 0; c < kC; ++c) sum[c] = 0.0f;
  float present = 0.0f;
  for (int i = 0; i < 8; ++i) {
    if (k.row[i] < 0) continue;
    const float w = k.weight[i];
    const float* row = values + static_cast<int64_t>(k.row[i]) * kC;
    NERFGEN_UNROLL
    for (int c = 0; c < kC; ++c) sum[c] += w * row[c];
    present += w;
  }
  return present;
}

/// Real spherical harmonics of a unit direction up to `degree` (<= 3): (degree + 1)^2 values,
/// the constants and signs of nerfgen.fields.SHEncoding.
HD void sh_basis(int degree, const float* d, float* y) {
  const float x = d[0], yy_ = d[1], z = d[2];
  y[0] = 0.28209479177387814f;
  if (degree < 1) return;
  y[1] = -0.48860251190291987f * yy_;
  y[2] = 0.48860251190291987f * z;
  y[3] = -0.48860251190291987f * x;
  if (degree < 2) return;
  const float xx = x * x, yy = yy_ * yy_, zz = z * z, xy = x * yy_, yz = yy_ * z, xz = x * z;
  y[4] = 1.0925484305920792f * xy;
  y[5] = -1.0925484305920792f * yz;
  y[6] = 0.94617469575755997f * zz - 0.31539156525251999f;
  y[7] = -1.0925484305920792f * xz;
  y[8] = 0.54627421529603959f * (xx - yy);
  if (degree < 3) return;
  y[9] = 0.59004358992664352f * yy_ * (-3.0f * xx + yy);
  y[10] = 2.8906114426405538f * xy * z;
  y[11] = 0.45704579946446572f * yy_ * (1.0f - 5.0f * zz);
  y[12] = 0.3731763325901154f * z * (5.0f * zz - 3.0f);
  y[13] = 0.45704579946446572f * x * (1.0f - 5.0f * zz);
  y[14] = 1.4453057213202769f * z * (xx - yy);
  y[15] = 0.59004358992664352f * x * (-xx + 3.0f * yy);
}

constexpr int kMaxShDegree = 3;
constexpr int kMaxBakedChannels = 1 + 3 * (kMaxShDegree + 1) * (kMaxShDegree + 1);

/// What a sample of a baked grid shows.
struct BakedShading {
  float empty_raw;  // raw density of absent voxels
  int sh_degree;    // K = (sh_degree + 1)^2 coefficients per colour channel
};

/// Asks the CPU to bring the value rows of corners `k` into cache (nothing on a GPU).
template <int kC>
HD void prefetch_rows(const VoxelCorners<float>& k, const float* values) {
#if !defined(__CUDA_ARCH__) && defined(__GNUC__)
  for (int i = 0; i < 8; ++i) {
    if (k.row[i] < 0) continue;
    const float* row = values + static_cast<int64_t>(k.row[i]) * kC;
    for (int c = 0; c < kC; c += 16) __builtin_prefetch(row + c);  // 64-byte lines
    __builtin_prefetch(row + kC - 1);
  }
#endif
}

/// Density and colour of the voxels around a point (corners `k`) seen along a ray whose SH basis
/// is `basis` (K coefficients per colour channel); false where none is present (sigma 0, rgb
/// untouched).
template <int K>
HD bool shade_corners(const VoxelCorners<float>& k, const float* values, float empty_raw, const float* basis,
                      float& sigma, float* rgb) {
  float sum[1 + 3 * K];
  const float present = gather_corners_fixed<1 + 3 * K>(k, values, sum);
  if (!(present > 0.0f)) return false;
  const float raw = sum[0] + (1.0f - present) * empty_raw;
  sigma = exp_of(min_of(raw, 15.0f));
  NERFGEN_UNROLL
  for (int ch = 0; ch < 3; ++ch) {
    float v = 0.0f;
    NERFGEN_UNROLL
    for (int j = 0; j < K; ++j) v += basis[j] * sum[1 + ch * K + j];
    rgb[ch] = 1.0f / (1.0f + exp_of(-(v / present)));
  }
  return true;
}

/// t at which the ray leaves the empty region of cell `c` (a block of resolution G, or the coarse
/// region around it when that is empty too), or enters the next finer box if that comes first.
HD float block_exit(const SparseGrid& g, const SparseCell& c, const float* o, const float* d, float t_now) {
  const OccupancyGrid blocks{nullptr, g.aabbs, g.n_levels, g.blocks, g.coarse, g.coarse_factor};
  GridCell region{true, false, c.level, {c.ijk[0] / g.block_size, c.ijk[1] / g.block_size, c.ijk[2] / g.block_size}};
  return empty_exit(blocks, region, o, d, t_now);
}

/// Marches one ray through the sparse grid: calls visit(t_start, t_end, x) for every step whose
/// midpoint x lies in an occupied cell, in order, until visit returns false; returns the number
/// of visits. Steps as march_ray (march.h), from t_min + jitter step_size.
template <typename Visit>
HD int64_t march_sparse_ray(const SparseGrid& g, const MarchParams& p, const float* o, const float* d, float jitter,
                            Visit&& visit) {
  if (!finite3(o) || !finite3(d)) return 0;
  float t_min, t_max;
  if (!ray_box(o, d, g.aabbs + 6 * (g.n_levels - 1), p.near_plane, p.far_plane, t_min, t_max)) return 0;
  const StepRule rule(t_min + jitter * p.step_size, p);
  int64_t n_steps = rule.steps_to(t_max);
  int64_t k = 0;
  if (g.has_bounds) {  // steps whose midpoints lie outside the blocks' box (with a step's margin) see nothing
    float b_min, b_max;
    if (!ray_box(o, d, g.bounds, p.near_plane, p.far_plane, b_min, b_max)) return 0;
    k = static_cast<int64_t>(max_of(floor_of(rule.k_of(b_min)) - 1.0, 0.0));
    n_steps = static_cast<int64_t>(min_of(ceil_of(rule.k_of(b_max)) + 1.0, static_cast<double>(n_steps)));
  }
  int64_t visits = 0;
  float empty_until = -1.0f;  // where the empty region the last skip measured ends
  while (k < n_steps) {
    const float kf = static_cast<float>(k);
    const float t_start = rule.t_of(kf);
    const float t_end = min_of(rule.t_of(kf + 1.0f), t_max);
    const float mid = (t_start + t_end) * 0.5f;
    const float x[3] = {o[0] + d[0] * mid, o[1] + d[1] * mid, o[2] + d[2] * mid};
    const SparseCell c = sparse_cell(g, x);
    if (!c.inside || c.block >= 0) {
      if (c.inside && t_end > t_start && cell_is_occupied(g, c)) {
        ++visits;
        if (!visit(t_start, t_end, x)) break;
      }
      ++k;
      continue;
    }
    // An empty region: skip to the last step that surely ends inside it (see march_ray); the
    // steps left there after a skip (its margin) advance one by one without measuring it again.
    if (mid < empty_until) {
      ++k;
      continue;
    }
    empty_until = block_exit(g, c, o, d, mid);
    const double last = rule.k_of(empty_until) - 1.01;
    k = last > static_cast<double>(k + 1) ? static_cast<int64_t>(min_of(last, static_cast<double>(n_steps))) : k + 1;
  }
  return visits;
}

/// One ray of a baked render with K SH coefficients per channel (see render_baked_ray). Samples
/// are shaded one visit late: the corners of the next sample are found (and their rows
/// prefetched) before the current one is shaded, so the memory reads of consecutive samples
/// overlap. The samples, their order and the arithmetic are those of shading each at its visit.
template <int K>
HD int64_t render_baked_ray_k(const SparseGrid& g, const float* values, float empty_raw, const MarchParams& p,
                              float early_stop_eps, const float* o, const float* d, float* color, float& opacity,
                              float& depth) {
  float basis[(kMaxShDegree + 1) * (kMaxShDegree + 1)];
  sh_basis(K == 1 ? 0 : K == 4 ? 1 : K == 9 ? 2 : 3, d, basis);
  color[0] = color[1] = color[2] = 0.0f;
  float acc = 0.0f, dep = 0.0f;
  double optical = 0.0;
  int64_t shaded = 0;
  VoxelCorners<float> pending;  // the sample visited last, not yet shaded
  float pending_t0 = 0.0f, pending_t1 = 0.0f;
  bool has_pending = false;
  const auto shade_pending = [&]() {  // false: the ray has stopped before this sample
    const float trans = exp_of(-static_cast<float>(optical));
    if (trans < early_stop_eps) return false;
    float sigma = 0.0f, rgb[3];
    if (!shade_corners<K>(pending, values, empty_raw, basis, sigma, rgb)) return true;
    ++shaded;
    const float tau = sigma * (pending_t1 - pending_t0);
    const float w = trans * (1.0f - exp_of(-tau));
    for (int ch = 0; ch < 3; ++ch) color[ch] += w * rgb[ch];
    acc += w;
    dep += w * ((pending_t0 + pending_t1) * 0.5f);
    optical += static_cast<double>(tau);
    return true;
  };
  march_sparse_ray(g, p, o, d, 0.0f, [&](float t0, float t1, const float* x) {
    VoxelCorners<float> next;
    voxel_corners(g, x, next);
    prefetch_rows<1 + 3 * K>(next, values);
    if (has_pending && !shade_pending()) return false;
    pending = next, pending_t0 = t0, pending_t1 = t1, has_pending = true;
    return true;
  });
  if (has_pending) shade_pending();
  opacity = acc;
  depth = dep;
  return shaded;
}

/// One ray of a baked render: composited colour (no background), opacity and depth, with
/// early termination as composite_forward_ray. Returns the samples shaded.
HD int64_t render_baked_ray(const SparseGrid& g, const float* values, const BakedShading& s, const MarchParams& p,
                            float early_stop_eps, const float* o, const float* d, float* color, float& opacity,
                            float& depth) {
  switch (s.sh_degree) {
    case 0: return render_baked_ray_k<1>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
    case 1: return render_baked_ray_k<4>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
    case 2: return render_baked_ray_k<9>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
    default: return render_baked_ray_k<16>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
  }
}

}  // namespace nerfgen
