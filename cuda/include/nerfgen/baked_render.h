// Rendering a baked field (see baked.h for the grid and its march): the value rows, shading and
// front-to-back compositing shared by the CUDA kernel (baked.cu) and the C++/OpenMP twin
// (baked_cpu.cpp). Raw pointers, no torch.
//
// A row is [raw density, K SH coefficients of red, of green, of blue] (K = (degree + 1)^2), in
// float32 or float16 (a bake's values on disk; half the bytes to read per sample, converted
// exactly to float32 on load: F16C's vcvtph2ps on CPUs that have it, bit arithmetic elsewhere).
// With the interpolated sum and present weight of baked.h:
//     raw = sum[0] + (1 - present) empty_raw,   sigma = exp(min(raw, 15))  (0 where present = 0),
//     rgb_ch = sigmoid(sum_k Y_k(d) sum[1 + ch K + k] / present),
// composited front to back as volrend.h does (early termination included). Mirrors
// nerfgen/ops/baked.py's baked_render_torch.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "nerfgen/baked.h"

#if !defined(__CUDACC__) && defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define NERFGEN_BAKED_F16C 1
#else
#define NERFGEN_BAKED_F16C 0
#endif

namespace nerfgen {

/// A float16 value by its IEEE binary16 bits.
struct Half {
  uint16_t bits;
};

HD float to_float(float v) { return v; }

/// The float32 of a binary16 value (exact: every half is a float).
HD float to_float(Half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exponent = (h.bits >> 10) & 0x1fu, mantissa = h.bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa 2^-24
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  const uint32_t bits = sign | (exponent == 0x1fu ? 0x7f800000u : (exponent + 112u) << 23) | (mantissa << 13);
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
#endif
}

/// Channels a float16 row is padded to: a multiple of 8 (one 16-byte vector of halves).
HD int padded_half_channels(int channels) { return (channels + 7) / 8 * 8; }

/// The value rows a render reads: row r starts at data + r stride (stride >= the channels; float16
/// rows have a stride of a multiple of 8, so whole vectors of 8 halves can be read from any row).
template <typename V>
struct ValueRows {
  const V* data;
  int64_t stride;
  HD const V* row(int32_t r) const { return data + static_cast<int64_t>(r) * stride; }
};

/// sum[c] over the present corners of kC channels and their present weight (as gather_corners,
/// products and sums in the same order whichever path runs).
template <int kC, typename V>
HD float gather_rows(const VoxelCorners<float>& k, const ValueRows<V>& values, float* __restrict__ sum) {
#if NERFGEN_BAKED_F16C
  if constexpr (std::is_same_v<V, Half>) {
    constexpr int kVectors = (kC + 7) / 8;
    __m256 acc[kVectors];
    for (int v = 0; v < kVectors; ++v) acc[v] = _mm256_setzero_ps();
    float present = 0.0f;
    for (int i = 0; i < 8; ++i) {
      if (k.row[i] < 0) continue;
      const __m256 w = _mm256_set1_ps(k.weight[i]);
      const auto* row = reinterpret_cast<const __m128i*>(values.row(k.row[i]));
      NERFGEN_UNROLL
      for (int v = 0; v < kVectors; ++v) {
        acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(w, _mm256_cvtph_ps(_mm_loadu_si128(row + v))));
      }
      present += k.weight[i];
    }
    float all[8 * kVectors];
    for (int v = 0; v < kVectors; ++v) _mm256_storeu_ps(all + 8 * v, acc[v]);
    for (int c = 0; c < kC; ++c) sum[c] = all[c];
    return present;
  }
#endif
  NERFGEN_UNROLL
  for (int c = 0; c < kC; ++c) sum[c] = 0.0f;
  float present = 0.0f;
  for (int i = 0; i < 8; ++i) {
    if (k.row[i] < 0) continue;
    const float w = k.weight[i];
    const V* row = values.row(k.row[i]);
    NERFGEN_UNROLL
    for (int c = 0; c < kC; ++c) sum[c] += w * to_float(row[c]);
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

/// Asks the CPU to bring the lines of `bytes` bytes from `p` into cache (nothing on a GPU).
HD void prefetch_bytes(const void* p, int bytes) {
#if !defined(__CUDA_ARCH__) && defined(__GNUC__)
  const char* c = static_cast<const char*>(p);
  for (int b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);  // 64-byte lines
  __builtin_prefetch(c + bytes - 1);
#endif
}

/// Prefetches the value rows (kC channels) of corners `k`.
template <int kC, typename V>
HD void prefetch_rows(const VoxelCorners<float>& k, const ValueRows<V>& values) {
  for (int i = 0; i < 8; ++i) {
    if (k.row[i] >= 0) prefetch_bytes(values.row(k.row[i]), kC * static_cast<int>(sizeof(V)));
  }
}

/// Prefetches what finding the rows of located corners reads (voxel_rows' entries, or the present
/// bits and row bases).
HD void prefetch_cells(const SparseGrid& g, const CornerCells<float>& cells) {
  for (int i = 0; i < 8; ++i) {
    if (cells.cell[i] < 0) continue;
    if (g.present_bits == nullptr) {
      prefetch_bytes(g.voxel_rows + cells.cell[i], 4);
      continue;
    }
    int bit;
    const int64_t w = present_word(g, cells.cell[i], bit);
    prefetch_bytes(g.present_bits + w, 8);
    prefetch_bytes(g.row_base + w, 4);
  }
}

/// Density and colour of the voxels around a point (corners `k`) seen along a ray whose SH basis
/// is `basis` (K coefficients per colour channel); false where none is present (sigma 0, rgb
/// untouched).
template <int K, typename V>
HD bool shade_corners(const VoxelCorners<float>& k, const ValueRows<V>& values, float empty_raw, const float* basis,
                      float& sigma, float* rgb) {
  float sum[1 + 3 * K];
  const float present = gather_rows<1 + 3 * K>(k, values, sum);
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

/// One ray's colour, opacity and depth, composited front to back from its shaded samples (with
/// early termination as composite_forward_ray), K SH coefficients per channel.
template <int K>
struct BakedComposite {
  float basis[K];
  float color[3] = {0.0f, 0.0f, 0.0f};
  float acc = 0.0f, dep = 0.0f;
  double optical = 0.0;
  int64_t shaded = 0;

  BakedComposite() = default;
  HD explicit BakedComposite(const float* d) { sh_basis(K == 1 ? 0 : K == 4 ? 1 : K == 9 ? 2 : 3, d, basis); }

  /// Shades the sample of corners `k` on [t0, t1] and adds it; false: the ray had stopped before it.
  template <typename V>
  HD bool add(const VoxelCorners<float>& k, const ValueRows<V>& values, float empty_raw, float early_stop_eps,
              float t0, float t1) {
    const float trans = exp_of(-static_cast<float>(optical));
    if (trans < early_stop_eps) return false;
    float sigma = 0.0f, rgb[3];
    if (!shade_corners<K>(k, values, empty_raw, basis, sigma, rgb)) return true;
    ++shaded;
    const float tau = sigma * (t1 - t0);
    const float w = trans * (1.0f - exp_of(-tau));
    for (int ch = 0; ch < 3; ++ch) color[ch] += w * rgb[ch];
    acc += w;
    dep += w * ((t0 + t1) * 0.5f);
    optical += static_cast<double>(tau);
    return true;
  }

  /// Writes the ray's colour [3], opacity and depth; returns the samples shaded.
  HD int64_t write(float* color_out, float& opacity, float& depth) const {
    color_out[0] = color[0], color_out[1] = color[1], color_out[2] = color[2];
    opacity = acc;
    depth = dep;
    return shaded;
  }
};

/// One ray of a baked render with K SH coefficients per channel (see render_baked_ray). Samples
/// are shaded one visit late: the corners of the next sample are found (and their rows
/// prefetched) before the current one is shaded, so the memory reads of consecutive samples
/// overlap. The samples, their order and the arithmetic are those of shading each at its visit.
template <int K, typename V>
HD int64_t render_baked_ray_k(const SparseGrid& g, const ValueRows<V>& values, float empty_raw, const MarchParams& p,
                              float early_stop_eps, const float* o, const float* d, float* color, float& opacity,
                              float& depth) {
  BakedComposite<K> ray(d);
  VoxelCorners<float> pending;  // the sample visited last, not yet shaded
  float pending_t0 = 0.0f, pending_t1 = 0.0f;
  bool has_pending = false;
  march_sparse_ray(g, p, o, d, 0.0f, [&](float t0, float t1, const float* x) {
    VoxelCorners<float> next;
    voxel_corners(g, x, next);
    prefetch_rows<1 + 3 * K>(next, values);
    if (has_pending && !ray.add(pending, values, empty_raw, early_stop_eps, pending_t0, pending_t1)) return false;
    pending = next, pending_t0 = t0, pending_t1 = t1, has_pending = true;
    return true;
  });
  if (has_pending) ray.add(pending, values, empty_raw, early_stop_eps, pending_t0, pending_t1);
  return ray.write(color, opacity, depth);
}

/// One ray of a baked render: composited colour (no background), opacity and depth, with
/// early termination as composite_forward_ray. Returns the samples shaded.
template <typename V>
HD int64_t render_baked_ray(const SparseGrid& g, const ValueRows<V>& values, const BakedShading& s,
                            const MarchParams& p, float early_stop_eps, const float* o, const float* d, float* color,
                            float& opacity, float& depth) {
  switch (s.sh_degree) {
    case 0: return render_baked_ray_k<1>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
    case 1: return render_baked_ray_k<4>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
    case 2: return render_baked_ray_k<9>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
    default: return render_baked_ray_k<16>(g, values, s.empty_raw, p, early_stop_eps, o, d, color, opacity, depth);
  }
}

}  // namespace nerfgen
