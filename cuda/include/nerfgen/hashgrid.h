// Multiresolution hash-grid encoding (instant-ngp): the per-(point, level) math shared by the
// CUDA kernels (hashgrid.cu) and the C++/OpenMP twin (hashgrid_cpu.cpp). Raw pointers, no torch.
//
// Level l has resolution N_l. A point p in [0, 1]^3 is scaled to x = p N_l; its cell corner is
// floor(x) and frac = x - floor(x). Vertex c of the 8 has offset bits (c >> 2 & 1, c >> 1 & 1,
// c & 1) on axes (x, y, z); its table row is
//     ((v_x s_0) ^ (v_y s_1) ^ (v_z s_2)) & (T - 1) + l T        (wrapping 32-bit arithmetic)
// and its trilinear weight is the product over axes of (1 - frac) or frac.
// out[l, :] = sum_c w_c table[row_c, :].  Mirrors nerfgen/ops/hashgrid.py (the torch twin).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "nerfgen/common.h"

namespace nerfgen {

/// Everything that describes one encoding call except the table and the gradients.
template <typename scalar_t>
struct HashGridProblem {
  const scalar_t* positions;  // [n_points, 3]
  const float* resolutions;   // [n_levels]
  const int32_t* strides;     // [n_levels, 3]
  int64_t n_points;
  int n_levels;
  int n_features;       // F: columns of the table
  int log2_table_size;  // log2(T): level l owns rows [l T, (l + 1) T)
  int n_threads;        // CPU only: OpenMP threads to use (ignored by the CUDA launchers)
};

/// The 8 table rows and trilinear weights around one point at one level.
template <typename scalar_t>
struct HashGridCorners {
  uint32_t row[8];       // absolute table rows, level offset included
  scalar_t weight[8];    // trilinear weights, sum to 1
  scalar_t axis_w[3][2]; // per-axis weights (1 - frac, frac), for the positions gradient
};

/// Rows and weights of the 8 vertices around `pos` ([3]) at one level.
///
/// Integer arithmetic is unsigned so that products wrap exactly like torch's int32 (signed
/// overflow is undefined in C++). The row is masked, so any input, even a non-finite one, yields
/// rows inside the level's block of the table.
template <typename scalar_t>
HD void hash_grid_corners(const scalar_t* __restrict__ pos, float resolution,
                          const int32_t* __restrict__ stride, uint32_t mask, uint32_t level_offset,
                          HashGridCorners<scalar_t>& k) {
  uint32_t axis_h[3][2];
  NERFGEN_UNROLL
  for (int a = 0; a < 3; ++a) {
    const scalar_t scaled = mul_rn(pos[a], static_cast<scalar_t>(resolution));
    const scalar_t corner = floor_of(scaled);
    const scalar_t frac = scaled - corner;
    const uint32_t v = static_cast<uint32_t>(static_cast<int32_t>(corner));
    const uint32_t s = static_cast<uint32_t>(stride[a]);
    axis_h[a][0] = v * s;
    axis_h[a][1] = (v + 1u) * s;
    k.axis_w[a][0] = scalar_t(1) - frac;
    k.axis_w[a][1] = frac;
  }
  NERFGEN_UNROLL
  for (int c = 0; c < 8; ++c) {
    const int bx = c >> 2 & 1, by = c >> 1 & 1, bz = c & 1;
    k.row[c] = ((axis_h[0][bx] ^ axis_h[1][by] ^ axis_h[2][bz]) & mask) + level_offset;
    k.weight[c] = k.axis_w[0][bx] * k.axis_w[1][by] * k.axis_w[2][bz];
  }
}

/// Number of features: the compile-time `N_FEAT` when positive, else the runtime `n_features`.
template <int N_FEAT>
HD int feature_count(int n_features) {
  return N_FEAT > 0 ? N_FEAT : n_features;
}

/// Forward for one (point, level): out[f] = sum_c w_c table[row_c, f], f < F.
template <typename scalar_t, int N_FEAT>
HD void hash_grid_gather(const HashGridCorners<scalar_t>& k, const scalar_t* __restrict__ table,
                         int n_features, scalar_t* __restrict__ out) {
  const int F = feature_count<N_FEAT>(n_features);
  if constexpr (N_FEAT > 0) {
    scalar_t acc[N_FEAT];
    NERFGEN_UNROLL
    for (int f = 0; f < F; ++f) acc[f] = scalar_t(0);
    NERFGEN_UNROLL
    for (int c = 0; c < 8; ++c) {
      const scalar_t* row = table + static_cast<int64_t>(k.row[c]) * F;
      NERFGEN_UNROLL
      for (int f = 0; f < F; ++f) acc[f] += k.weight[c] * row[f];
    }
    NERFGEN_UNROLL
    for (int f = 0; f < F; ++f) out[f] = acc[f];
  } else {
    for (int f = 0; f < F; ++f) {
      scalar_t sum = scalar_t(0);
      NERFGEN_UNROLL
      for (int c = 0; c < 8; ++c) sum += k.weight[c] * table[static_cast<int64_t>(k.row[c]) * F + f];
      out[f] = sum;
    }
  }
}

/// Backward to the table for one (point, level): grad_table[row_c, f] += w_c grad_out[f].
/// `add(ptr, value)` does the accumulation (plain, OpenMP-atomic or CUDA atomicAdd).
template <typename scalar_t, int N_FEAT, typename Add>
HD void hash_grid_scatter(const HashGridCorners<scalar_t>& k, const scalar_t* __restrict__ grad_out,
                          int n_features, scalar_t* grad_table, Add add) {
  const int F = feature_count<N_FEAT>(n_features);
  NERFGEN_UNROLL
  for (int c = 0; c < 8; ++c) {
    scalar_t* row = grad_table + static_cast<int64_t>(k.row[c]) * F;
    for (int f = 0; f < F; ++f) add(row + f, k.weight[c] * grad_out[f]);
  }
}

/// Backward to the position for one (point, level):
/// grad_pos[a] += N_l sum_c (sum_f table[row_c, f] grad_out[f]) dw_c / dfrac_a.
template <typename scalar_t, int N_FEAT>
HD void hash_grid_position_grad(const HashGridCorners<scalar_t>& k, const scalar_t* __restrict__ table,
                                const scalar_t* __restrict__ grad_out, int n_features, float resolution,
                                scalar_t* __restrict__ grad_pos) {
  const int F = feature_count<N_FEAT>(n_features);
  scalar_t g[3] = {scalar_t(0), scalar_t(0), scalar_t(0)};
  NERFGEN_UNROLL
  for (int c = 0; c < 8; ++c) {
    const scalar_t* row = table + static_cast<int64_t>(k.row[c]) * F;
    scalar_t dw = scalar_t(0);  // dL / dw_c
    for (int f = 0; f < F; ++f) dw += row[f] * grad_out[f];
    const int bx = c >> 2 & 1, by = c >> 1 & 1, bz = c & 1;
    const scalar_t wx = k.axis_w[0][bx], wy = k.axis_w[1][by], wz = k.axis_w[2][bz];
    // d(1 - frac)/dfrac = -1, d(frac)/dfrac = +1.
    g[0] += (bx ? dw : -dw) * (wy * wz);
    g[1] += (by ? dw : -dw) * (wx * wz);
    g[2] += (bz ? dw : -dw) * (wx * wy);
  }
  const scalar_t res = static_cast<scalar_t>(resolution);
  NERFGEN_UNROLL
  for (int a = 0; a < 3; ++a) grad_pos[a] += g[a] * res;
}

/// Calls fn(std::integral_constant<int, F>) with F = n_features for the common widths
/// (1, 2, 4, 8: fully unrolled kernels) and F = 0 (runtime width) otherwise. Host only.
template <typename Fn>
inline void dispatch_features(int n_features, Fn&& fn) {
  switch (n_features) {
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    default: fn(std::integral_constant<int, 0>{}); break;
  }
}

}  // namespace nerfgen
