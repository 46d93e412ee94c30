// Factorised feature planes (K-Planes / HexPlane): the per-(point, level) math shared by the CUDA
// kernels (planes.cu) and the C++/OpenMP twin (planes_cpu.cpp). Raw pointers, no torch.
//
// Plane p spans coordinates (a_p, b_p) at resolution (R^u_p, R^v_p) and owns table rows
// [o_p, o_p + R^u_p R^v_p). A point's coordinate x in [0, 1] (clamped; NaN counts as 0) is scaled to
// u = x (R^u - 1); its cell corner is iu = min(floor(u), R^u - 2) and fu = u - iu (same along v).
// Corner c of the 4 is (iu + (c & 1), iv + (c >> 1)), in row o_p + v R^u + u, with the bilinear
// weight (1 - fu or fu) (1 - fv or fv). A plane's feature is sum_c w_c table[row_c, :] and a
// level's output is the product of its planes' features, in plane order.
// Mirrors nerfgen/ops/planes.py (the torch twin).
#pragma once

#include <cstdint>

#include "nerfgen/common.h"

namespace nerfgen {

constexpr int kMaxPlaneFeatures = 64;  // channels of a plane at most (the bindings check it)
constexpr int kMaxPlanesPerLevel = 8;  // planes of a level at most (K-Planes: 6)

/// Everything that describes one encoding call except the table and the gradients.
template <typename scalar_t>
struct PlaneProblem {
  const scalar_t* coords;  // [n_points, dim]
  const int32_t* axes;     // [n_planes, 2]
  const int32_t* sizes;    // [n_planes, 2]
  const int64_t* offsets;  // [n_planes]
  int64_t n_points;
  int dim;
  int n_planes;
  int n_levels;    // n_planes / n_levels planes each, level-major
  int n_features;  // C: columns of the table
  int n_threads;   // CPU only: OpenMP threads to use

  HD int per_level() const { return n_planes / n_levels; }
};

/// The 4 table rows and bilinear weights around one point in one plane.
template <typename scalar_t>
struct PlaneCorners {
  int64_t row[4];
  scalar_t weight[4];
  scalar_t fu, fv;    // fractions inside the cell
  bool in_u, in_v;    // the coordinates were inside [0, 1] (else no gradient flows to them)
};

template <typename scalar_t>
HD scalar_t clamp_unit(scalar_t x) {
  return x > scalar_t(0) ? (x < scalar_t(1) ? x : scalar_t(1)) : scalar_t(0);  // NaN -> 0
}

/// Rows and weights of the 4 grid points around point `x` ([dim]) in plane `p`.
template <typename scalar_t>
HD void plane_corners(const PlaneProblem<scalar_t>& pb, const scalar_t* __restrict__ x, int p,
                      PlaneCorners<scalar_t>& k) {
  const int a = pb.axes[2 * p], b = pb.axes[2 * p + 1];
  const int ru = pb.sizes[2 * p], rv = pb.sizes[2 * p + 1];
  k.in_u = x[a] >= scalar_t(0) && x[a] <= scalar_t(1);
  k.in_v = x[b] >= scalar_t(0) && x[b] <= scalar_t(1);
  const scalar_t u = mul_rn(clamp_unit(x[a]), static_cast<scalar_t>(ru - 1));
  const scalar_t v = mul_rn(clamp_unit(x[b]), static_cast<scalar_t>(rv - 1));
  const scalar_t iu = min_of(floor_of(u), static_cast<scalar_t>(ru - 2));
  const scalar_t iv = min_of(floor_of(v), static_cast<scalar_t>(rv - 2));
  k.fu = u - iu;
  k.fv = v - iv;
  const int64_t base = pb.offsets[p] + static_cast<int64_t>(iv) * ru + static_cast<int64_t>(iu);
  k.row[0] = base;
  k.row[1] = base + 1;
  k.row[2] = base + ru;
  k.row[3] = base + ru + 1;
  const scalar_t one = scalar_t(1);
  k.weight[0] = (one - k.fu) * (one - k.fv);
  k.weight[1] = k.fu * (one - k.fv);
  k.weight[2] = (one - k.fu) * k.fv;
  k.weight[3] = k.fu * k.fv;
}

/// Number of features: the compile-time `N_FEAT` when positive, else the runtime `n_features`.
template <int N_FEAT>
HD int plane_feature_count(int n_features) {
  return N_FEAT > 0 ? N_FEAT : n_features;
}

/// feat[f] = sum_c w_c table[row_c, f].
template <typename scalar_t, int N_FEAT>
HD void plane_gather(const PlaneCorners<scalar_t>& k, const scalar_t* __restrict__ table, int n_features,
                     scalar_t* __restrict__ feat) {
  const int F = plane_feature_count<N_FEAT>(n_features);
  for (int f = 0; f < F; ++f) {
    scalar_t sum = k.weight[0] * table[k.row[0] * F + f];
    NERFGEN_UNROLL
    for (int c = 1; c < 4; ++c) sum += k.weight[c] * table[k.row[c] * F + f];
    feat[f] = sum;
  }
}

/// Forward of one (point, level): out[f] = prod over the level's planes of their feature.
template <typename scalar_t, int N_FEAT>
HD void plane_level_forward(const PlaneProblem<scalar_t>& pb, const scalar_t* __restrict__ table, int64_t i,
                            int level, scalar_t* __restrict__ out) {
  const int F = plane_feature_count<N_FEAT>(pb.n_features);
  const scalar_t* x = pb.coords + i * pb.dim;
  scalar_t feat[N_FEAT > 0 ? N_FEAT : kMaxPlaneFeatures];
  const int per = pb.per_level();
  for (int k = 0; k < per; ++k) {
    PlaneCorners<scalar_t> c;
    plane_corners(pb, x, level * per + k, c);
    plane_gather<scalar_t, N_FEAT>(c, table, F, feat);
    for (int f = 0; f < F; ++f) out[f] = k == 0 ? feat[f] : out[f] * feat[f];
  }
}

/// Backward of one (point, level) given the output's gradient `g` ([F]):
/// grad_feat[k][f] = g[f] prod_{j != k} feat_j[f] (the gradient of each plane's feature, to scatter
/// into the table as w_c grad_feat), and, when `grad_x` is not null, the coordinates' gradient
/// added into grad_x ([dim]): d feat / d u = (R^u - 1) ((t1 - t0)(1 - fv) + (t3 - t2) fv), and along v.
template <typename scalar_t, int N_FEAT>
HD void plane_level_backward(const PlaneProblem<scalar_t>& pb, const scalar_t* __restrict__ table, int64_t i,
                             int level, const scalar_t* __restrict__ g, scalar_t* __restrict__ grad_feat,
                             scalar_t* __restrict__ grad_x) {
  constexpr int kF = N_FEAT > 0 ? N_FEAT : kMaxPlaneFeatures;
  const int F = plane_feature_count<N_FEAT>(pb.n_features);
  const scalar_t* x = pb.coords + i * pb.dim;
  const int per = pb.per_level();
  scalar_t feats[kMaxPlanesPerLevel][kF];
  PlaneCorners<scalar_t> corners[kMaxPlanesPerLevel];
  for (int k = 0; k < per; ++k) {
    plane_corners(pb, x, level * per + k, corners[k]);
    plane_gather<scalar_t, N_FEAT>(corners[k], table, F, feats[k]);
  }
  for (int f = 0; f < F; ++f) {  // products of the others: prefix times suffix
    scalar_t prefix = g[f];
    for (int k = 0; k < per; ++k) {
      grad_feat[k * F + f] = prefix;
      prefix *= feats[k][f];
    }
    scalar_t suffix = scalar_t(1);
    for (int k = per - 1; k >= 0; --k) {
      grad_feat[k * F + f] *= suffix;
      suffix *= feats[k][f];
    }
  }
  if (grad_x == nullptr) return;
  for (int k = 0; k < per; ++k) {
    const PlaneCorners<scalar_t>& c = corners[k];
    const int p = level * per + k;
    scalar_t du = scalar_t(0), dv = scalar_t(0);
    for (int f = 0; f < F; ++f) {
      const scalar_t t0 = table[c.row[0] * F + f], t1 = table[c.row[1] * F + f];
      const scalar_t t2 = table[c.row[2] * F + f], t3 = table[c.row[3] * F + f];
      const scalar_t gf = grad_feat[k * F + f];
      du += gf * ((t1 - t0) * (scalar_t(1) - c.fv) + (t3 - t2) * c.fv);
      dv += gf * ((t2 - t0) * (scalar_t(1) - c.fu) + (t3 - t1) * c.fu);
    }
    if (c.in_u) grad_x[pb.axes[2 * p]] += du * static_cast<scalar_t>(pb.sizes[2 * p] - 1);
    if (c.in_v) grad_x[pb.axes[2 * p + 1]] += dv * static_cast<scalar_t>(pb.sizes[2 * p + 1] - 1);
  }
}

}  // namespace nerfgen
