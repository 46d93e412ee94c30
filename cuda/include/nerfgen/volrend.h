// Volume rendering of packed samples, one ray at a time: the math shared by the CUDA kernels
// (volrend.cu) and the C++/OpenMP twin (volrend_cpu.cpp). Raw pointers, no torch.
//
// For the samples i of a ray, s_i = sigma_i (t_end_i - t_start_i),
//     T_i = exp(-sum_{j<i} s_j),   alpha_i = 1 - exp(-s_i),   w_i = T_i alpha_i,
// and the ray's outputs are color = sum_i w_i c_i, opacity = sum_i w_i and
// depth = sum_i w_i (t_start_i + t_end_i) / 2. Early termination: the first sample with
// T_i < early_stop_eps and every later one get w_i = T_i = 0 (and are never read).
//
// Backward, front to back in reverse: with g_i = dL/dw_i (the outputs' cotangents folded in)
// and u_i = dL/dT_i,
//     dL/ds_k = g_k T_{k+1} - sum_{i>k} (g_i w_i + u_i T_i),   T_{k+1} = T_k exp(-s_k),
// since dw_k/ds_k = T_{k+1}, dw_i/ds_k = -w_i and dT_i/ds_k = -T_i for i > k.
// Mirrors nerfgen/ops/volrend.py (the torch twin).
#pragma once

#include <cstdint>

#include "nerfgen/common.h"

namespace nerfgen {

/// One compositing call. Ray r owns samples [ray_start[r], ray_start[r] + ray_count[r]).
template <typename scalar_t>
struct CompositeProblem {
  const scalar_t* t_starts;  // [n_samples]
  const scalar_t* t_ends;    // [n_samples]
  const scalar_t* sigmas;    // [n_samples]
  const scalar_t* colors;    // [n_samples, n_channels]
  const int64_t* packed_info;  // [n_rays, 2]: first sample, sample count
  int64_t n_rays;
  int n_channels;
  scalar_t early_stop_eps;
  int n_threads;  // CPU only
};

/// Outputs of the forward pass (weights and transmittance are read again by the backward pass).
template <typename scalar_t>
struct CompositeOutputs {
  scalar_t* color;          // [n_rays, n_channels]
  scalar_t* opacity;        // [n_rays]
  scalar_t* depth;          // [n_rays]
  scalar_t* weights;        // [n_samples]
  scalar_t* transmittance;  // [n_samples]
};

/// Cotangents of the outputs and the gradients written by the backward pass.
template <typename scalar_t>
struct CompositeGrads {
  const scalar_t* color;          // [n_rays, n_channels]
  const scalar_t* opacity;        // [n_rays]
  const scalar_t* depth;          // [n_rays]
  const scalar_t* weights;        // [n_samples]
  const scalar_t* transmittance;  // [n_samples]
  scalar_t* sigmas;               // out [n_samples]
  scalar_t* colors;               // out [n_samples, n_channels]
};

template <typename scalar_t>
HD void composite_forward_ray(const CompositeProblem<scalar_t>& p, int64_t r, const CompositeOutputs<scalar_t>& out) {
  const int64_t begin = p.packed_info[2 * r], end = begin + p.packed_info[2 * r + 1];
  const int C = p.n_channels;
  scalar_t* color = out.color + r * C;
  for (int c = 0; c < C; ++c) color[c] = scalar_t(0);
  scalar_t opacity = 0, depth = 0;
  double optical = 0;  // sum of s_j so far, in double as the twin's prefix sum
  int64_t i = begin;
  for (; i < end; ++i) {
    const scalar_t trans = exp_of(-static_cast<scalar_t>(optical));
    if (trans < p.early_stop_eps) break;
    const scalar_t s = p.sigmas[i] * (p.t_ends[i] - p.t_starts[i]);
    const scalar_t w = trans * (scalar_t(1) - exp_of(-s));
    out.weights[i] = w;
    out.transmittance[i] = trans;
    for (int c = 0; c < C; ++c) color[c] += w * p.colors[i * C + c];
    opacity += w;
    depth += w * ((p.t_starts[i] + p.t_ends[i]) * scalar_t(0.5));
    optical += static_cast<double>(s);
  }
  for (; i < end; ++i) out.weights[i] = out.transmittance[i] = scalar_t(0);
  out.opacity[r] = opacity;
  out.depth[r] = depth;
}

template <typename scalar_t>
HD void composite_backward_ray(const CompositeProblem<scalar_t>& p, int64_t r, const scalar_t* weights,
                               const scalar_t* transmittance, const CompositeGrads<scalar_t>& g) {
  const int64_t begin = p.packed_info[2 * r], end = begin + p.packed_info[2 * r + 1];
  const int C = p.n_channels;
  const scalar_t* g_color = g.color + r * C;
  const scalar_t g_opacity = g.opacity[r], g_depth = g.depth[r];
  scalar_t behind = 0;  // sum over later samples of g_i w_i + u_i T_i
  for (int64_t k = end - 1; k >= begin; --k) {
    const scalar_t w = weights[k], trans = transmittance[k];
    for (int c = 0; c < C; ++c) g.colors[k * C + c] = w * g_color[c];
    if (trans == scalar_t(0)) {  // terminated (or fully occluded): no gradient either way
      g.sigmas[k] = scalar_t(0);
      continue;
    }
    const scalar_t delta = p.t_ends[k] - p.t_starts[k];
    scalar_t g_w = g_opacity + g_depth * ((p.t_starts[k] + p.t_ends[k]) * scalar_t(0.5)) + g.weights[k];
    for (int c = 0; c < C; ++c) g_w += g_color[c] * p.colors[k * C + c];
    const scalar_t trans_next = trans * exp_of(-p.sigmas[k] * delta);
    g.sigmas[k] = (g_w * trans_next - behind) * delta;
    behind += g_w * w + g.transmittance[k] * trans;
  }
}

}  // namespace nerfgen
