// Baked fields: a sparse voxel grid of density and spherical-harmonic colour, the math shared by
// the CUDA kernels (baked.cu) and the C++/OpenMP twin (baked_cpu.cpp). Raw pointers, no torch.
//
// The grid has L nested levels (boxes as the occupancy grid's cascades, level 0 the finest), each
// of R^3 voxels, R = G B, stored in blocks of B^3: block_ids [L, G, G, G] names the block of each
// region (-1: nothing there), voxel_rows [n_blocks, B^3] the value row of each voxel (-1: absent)
// and cell_occupied [n_blocks, B^3] whether a sample in that voxel's cell may see any density
// (marching reads it bit-packed where the caller gives cell_bits: one bit a cell, a block's bits in
// one 64-byte line at B = 8, not the eight lines of its bools).
// Values sit at voxel centres: a point x of level l (the finest box holding it) has continuous
// voxel coordinates u = (x - lo) / (hi - lo) R - 1/2 and is interpolated trilinearly from the 8
// voxels around u; voxels outside [0, R) or absent contribute nothing:
//     sum[c] = sum_i w_i [present_i] values[row_i, c],   present = sum_i w_i [present_i].
// Marching follows march.h's step rule; a step is sampled when its midpoint's cell is occupied.
// Regions without a block are skipped whole (as march.h skips empty cells), so both twins keep
// exactly the samples of a march that tests every step. Shading and compositing the samples is
// baked_render.h's. Mirrors nerfgen/ops/baked.py.
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
  int block_shift = -1;          // log2(B) where B is a power of two (divisions by B become shifts)
  const uint8_t* cell_bits = nullptr;  // [n_blocks, bits_stride]: cell_occupied bit-packed (cell c of a
  int64_t bits_stride = 0;             // block: bit c & 7 of byte c >> 3), or null (then the bools)
  // Where a block's rows run in voxel order (as a bake writes them), rows are found without voxel_rows:
  // present voxels bit-packed in 64-bit words, [n_blocks, present_words] (bit v & 63 of word v >> 6),
  // and the row of each word's first present voxel, [n_blocks, present_words]; row of present voxel v
  // = row_base[v >> 6] + present voxels below v in its word. Null: voxel_rows.
  const uint64_t* present_bits = nullptr;
  const int32_t* row_base = nullptr;
  int64_t present_words = 0;
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

/// The block of voxel coordinate v >= 0 along an axis: v / B.
HD int block_of(const SparseGrid& g, int v) { return g.block_shift >= 0 ? v >> g.block_shift : v / g.block_size; }

/// The block a march visited last (its index in block_ids and what is there), so that the steps
/// inside one block read block_ids once.
struct BlockCache {
  int64_t at = -1;
  int32_t block = -1;
};

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

HD SparseCell sparse_cell(const SparseGrid& g, const float* x, BlockCache& cache) {
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
    for (int a = 0; a < 3; ++a) blk[a] = block_of(g, c.ijk[a]), loc[a] = c.ijk[a] - blk[a] * B;
    const int64_t at = block_index(g, c.level, blk[0], blk[1], blk[2]);
    if (at != cache.at) cache.at = at, cache.block = g.block_ids[at];
    c.block = cache.block;
    c.local = (loc[0] * B + loc[1]) * B + loc[2];
  }
  return c;
}

/// Whether a sample in cell `c` may see density (its block exists and the cell is marked).
HD bool cell_is_occupied(const SparseGrid& g, const SparseCell& c) {
  if (c.block < 0) return false;
  if (g.cell_bits != nullptr) return (g.cell_bits[c.block * g.bits_stride + (c.local >> 3)] >> (c.local & 7)) & 1;
  const int64_t B = g.block_size;
  return g.cell_occupied[c.block * B * B * B + c.local];
}

/// The 8 voxels around a point and their trilinear weights (row -1: absent).
template <typename scalar_t>
struct VoxelCorners {
  int32_t row[8];
  scalar_t weight[8];
};

/// The 8 voxels around a point, located but not yet looked up: each one's index into voxel_rows
/// (block B^3 + local voxel; -1: outside the grid or in a region without a block) and its weight.
/// Splitting the lookup lets a renderer ask for voxel_rows' lines before it reads them.
template <typename scalar_t>
struct CornerCells {
  int64_t cell[8];
  scalar_t weight[8];
};

/// Cells of the corners of point x (float32 world coordinates, as the samples of a march). Vertex
/// c has offset bits (c >> 2 & 1, c >> 1 & 1, c & 1) on axes (x, y, z). A point outside every box
/// has none. Each axis's two voxel coordinates are split into block and local index with one division.
template <typename scalar_t>
HD void corner_cells(const SparseGrid& g, const scalar_t* x, CornerCells<scalar_t>& k) {
  const float xf[3] = {static_cast<float>(x[0]), static_cast<float>(x[1]), static_cast<float>(x[2])};
  const int level = finest_level(g.aabbs, g.n_levels, xf);
  if (level < 0) {
    for (int c = 0; c < 8; ++c) k.cell[c] = -1, k.weight[c] = scalar_t(0);
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
    const int b1 = block_of(g, upper), l1 = upper - b1 * B;
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
    int64_t cell = -1;
    if (ok[0][bits[0]] && ok[1][bits[1]] && ok[2][bits[2]]) {
      const int32_t block = g.block_ids[block_index(g, level, blk[0][bits[0]], blk[1][bits[1]], blk[2][bits[2]])];
      if (block >= 0) {
        const int64_t local = (loc[0][bits[0]] * B + loc[1][bits[1]]) * B + loc[2][bits[2]];
        cell = static_cast<int64_t>(block) * B * B * B + local;
      }
    }
    k.cell[c] = cell;
    k.weight[c] = w[0][bits[0]] * w[1][bits[1]] * w[2][bits[2]];
  }
}

HD int popcount64(uint64_t v) {
#if defined(__CUDA_ARCH__)
  return __popcll(v);
#else
  return __builtin_popcountll(v);
#endif
}

/// Index of the 64-bit word of present_bits / row_base that holds cell `cell` (block B^3 + local),
/// and the cell's bit in it.
HD int64_t present_word(const SparseGrid& g, int64_t cell, int& bit) {
  const int64_t volume = static_cast<int64_t>(g.block_size) * g.block_size * g.block_size;
  const int64_t block = g.block_shift >= 0 ? cell >> (3 * g.block_shift) : cell / volume;
  const int64_t local = cell - block * volume;
  bit = static_cast<int>(local & 63);
  return block * g.present_words + (local >> 6);
}

/// The value row of voxel `cell` (block B^3 + local), -1 where absent: voxel_rows', or counted from
/// the present bits where the rows run in voxel order (see SparseGrid).
HD int32_t voxel_row(const SparseGrid& g, int64_t cell) {
  if (g.present_bits == nullptr) return g.voxel_rows[cell];
  int bit;
  const int64_t w = present_word(g, cell, bit);
  const uint64_t word = g.present_bits[w];
  if (!((word >> bit) & 1)) return -1;
  return g.row_base[w] + popcount64(word & ((uint64_t{1} << bit) - 1));
}

/// The rows of located corners (voxel_rows' reads, or the present bits').
template <typename scalar_t>
HD void corner_rows(const SparseGrid& g, const CornerCells<scalar_t>& cells, VoxelCorners<scalar_t>& k) {
  NERFGEN_UNROLL
  for (int c = 0; c < 8; ++c) {
    k.row[c] = cells.cell[c] < 0 ? -1 : voxel_row(g, cells.cell[c]);
    k.weight[c] = cells.weight[c];
  }
}

/// Corners of point x and their rows (corner_cells, then corner_rows).
template <typename scalar_t>
HD void voxel_corners(const SparseGrid& g, const scalar_t* x, VoxelCorners<scalar_t>& k) {
  CornerCells<scalar_t> cells;
  corner_cells(g, x, cells);
  corner_rows(g, cells, k);
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

/// t at which the ray leaves the empty region of cell `c` (a block of resolution G, or the coarse
/// region around it when that is empty too), or enters the next finer box if that comes first.
HD float block_exit(const SparseGrid& g, const SparseCell& c, const float* o, const float* d, float t_now) {
  const OccupancyGrid blocks{nullptr, g.aabbs, g.n_levels, g.blocks, g.coarse, g.coarse_factor};
  GridCell region{true, false, c.level, {block_of(g, c.ijk[0]), block_of(g, c.ijk[1]), block_of(g, c.ijk[2])}};
  return empty_exit(blocks, region, o, d, t_now);
}

/// A march through the sparse grid, one visited step at a time: next() gives every step whose
/// midpoint lies in an occupied cell, in order. Steps as march_ray (march.h), from t_min + jitter
/// step_size; a renderer can hold several of these and advance them in turns.
struct SparseMarch {
  StepRule rule;
  int64_t k = 0, n_steps = 0;
  float t_max = 0.0f;
  float empty_until = -1.0f;  // where the empty region the last skip measured ends
  const float* o = nullptr;
  const float* d = nullptr;
  BlockCache cache;

  /// Starts ray (o, d); false when it has no step to visit at all.
  HD bool begin(const SparseGrid& g, const MarchParams& p, const float* o_, const float* d_, float jitter) {
    o = o_, d = d_, k = 0, n_steps = 0, empty_until = -1.0f, cache = BlockCache{};
    if (!finite3(o) || !finite3(d)) return false;
    float t_min;
    if (!ray_box(o, d, g.aabbs + 6 * (g.n_levels - 1), p.near_plane, p.far_plane, t_min, t_max)) return false;
    rule = StepRule(t_min + jitter * p.step_size, p);
    n_steps = rule.steps_to(t_max);
    if (g.has_bounds) {  // steps whose midpoints lie outside the blocks' box (with a step's margin) see nothing
      float b_min, b_max;
      if (!ray_box(o, d, g.bounds, p.near_plane, p.far_plane, b_min, b_max)) return false;
      k = static_cast<int64_t>(max_of(floor_of(rule.k_of(b_min)) - 1.0, 0.0));
      n_steps = static_cast<int64_t>(min_of(ceil_of(rule.k_of(b_max)) + 1.0, static_cast<double>(n_steps)));
    }
    return k < n_steps;
  }

  /// The next visited step [t_start, t_end] and its midpoint x; false when the march is over.
  HD bool next(const SparseGrid& g, float& t_start, float& t_end, float* x) {
    while (k < n_steps) {
      const float kf = static_cast<float>(k);
      t_start = rule.t_of(kf);
      t_end = min_of(rule.t_of(kf + 1.0f), t_max);
      const float mid = (t_start + t_end) * 0.5f;
      x[0] = o[0] + d[0] * mid, x[1] = o[1] + d[1] * mid, x[2] = o[2] + d[2] * mid;
      const SparseCell c = sparse_cell(g, x, cache);
      if (!c.inside || c.block >= 0) {
        ++k;
        if (c.inside && t_end > t_start && cell_is_occupied(g, c)) return true;
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
    return false;
  }
};

/// Marches one ray through the sparse grid: calls visit(t_start, t_end, x) for every step whose
/// midpoint x lies in an occupied cell, in order, until visit returns false; returns the number
/// of visits (see SparseMarch).
template <typename Visit>
HD int64_t march_sparse_ray(const SparseGrid& g, const MarchParams& p, const float* o, const float* d, float jitter,
                            Visit&& visit) {
  SparseMarch m;
  if (!m.begin(g, p, o, d, jitter)) return 0;
  int64_t visits = 0;
  float t_start, t_end, x[3];
  while (m.next(g, t_start, t_end, x)) {
    ++visits;
    if (!visit(t_start, t_end, static_cast<const float*>(x))) break;
  }
  return visits;
}

}  // namespace nerfgen
