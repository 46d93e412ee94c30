// The fully fused MLPs of an instant-ngp field on a CPU (tiny-cuda-nn's idea): hash-grid features
// -> density network -> colour network for a tile of samples at a time, the tile's activations
// kept in per-thread buffers that stay in L1/L2, forward and backward, threads over tiles.
// Torch-free ABI; the bindings pack the torch weights into the layouts below.
//
// Layers 0 .. n_density-1 form the density network (ReLU between layers, none after the last);
// its last layer's column 0 is the raw density and columns 1 .. geo the geometry features. The
// colour network's input is [SH of the direction (sh_dim), geometry features (geo)]; its layers
// n_density .. n_layers-1 have ReLU between them and a sigmoid after the last (3 columns: rgb).
// Per layer l, out_pad and in_pad round out and in up to a multiple of 16:
//   wk   [in, out_pad]      the weight as x @ wk (padding columns zero)
//   wn   [out_pad, in_pad]  the weight as torch stores it, [out, in], zero-padded
//   bias [out_pad]
// The backward pass recomputes a tile's forward pass into the tile's own buffers (the input of
// every layer but the first, at column acts_offset(l) of a row of acts_width) instead of
// reading activations saved for every sample: a few tens of KB that stay in cache, against
// hundreds of bytes a sample written and read back through memory.
#pragma once

#include <cstdint>

namespace nerfgen {

constexpr int kMaxMlpLayers = 8;

template <typename scalar_t>
struct MlpLayer {
  const scalar_t* wk;
  const scalar_t* wn;
  const scalar_t* bias;
  int in, out, in_pad, out_pad;
};

template <typename scalar_t>
struct NgpMlp {
  MlpLayer<scalar_t> layers[kMaxMlpLayers];
  int n_layers;
  int n_density;  // layers of the density network (the rest: colour network)
  int sh_dim;     // SH columns at the start of the colour network's input
  int geo;        // geometry features: density output columns 1 .. geo

  /// Column of a tile's activation row where the input of layer l (>= 1) starts.
  int acts_offset(int l) const {
    int offset = 0;
    for (int j = 1; j < l; ++j) offset += layers[j].in_pad;
    return offset;
  }
  int acts_width() const { return acts_offset(n_layers); }
};

/// One forward call: n samples' encodings [n, layers[0].in] and SH [n, sh_dim].
template <typename scalar_t>
struct NgpMlpProblem {
  const scalar_t* enc;
  const scalar_t* sh;  // null for density only
  int64_t n;
  NgpMlp<scalar_t> net;
  int n_threads;
};

/// Forward outputs: density [n] (raw, before its activation), rgb [n, 3] (null: density only).
template <typename scalar_t>
struct NgpMlpOutputs {
  scalar_t* density;
  scalar_t* rgb;
};

/// Backward: cotangents of density [n] and rgb [n, 3], and the gradients written: the encoding's
/// [n, in] and, per layer, the weight's as [in, out_pad] and the bias's [out_pad] (fully overwritten).
template <typename scalar_t>
struct NgpMlpGrads {
  const scalar_t* grad_density;
  const scalar_t* grad_rgb;
  scalar_t* grad_enc;
  scalar_t* grad_wk[kMaxMlpLayers];
  scalar_t* grad_bias[kMaxMlpLayers];
};

namespace cpu {
/// Whether the float path uses the AVX2 + FMA micro-kernel (decided at build time).
bool mlp_uses_avx2();
template <typename scalar_t>
void ngp_mlp_forward(const NgpMlpProblem<scalar_t>& p, const NgpMlpOutputs<scalar_t>& out);
template <typename scalar_t>
void ngp_mlp_backward(const NgpMlpProblem<scalar_t>& p, const NgpMlpGrads<scalar_t>& g);
}  // namespace cpu

}  // namespace nerfgen
