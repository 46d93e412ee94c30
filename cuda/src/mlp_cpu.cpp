// The fully fused MLPs of an instant-ngp field on a CPU (see mlp_api.h). Torch-free.
//
// Samples go through in tiles of kTile rows; each thread owns a tile's activation buffers (a few
// tens of KB: L1/L2) and, in the backward pass, its own weight-gradient accumulators, summed over
// the threads at the end (in thread order: the same sums on every run). Every layer is a small
// matrix product C[M, N] = init + A[M, K] B[K, N] with N a multiple of 16, computed in blocks of
// 6 rows x 16 columns held in registers: 12 accumulators of 8 floats, the two B vectors of a k
// loaded once and each A value broadcast (BLIS' 6x16 AVX2 shape). The same products serve the
// forward pass (x W), the input gradient (g W^T, W^T stored as torch's [out, in]) and the weight
// gradient (x^T g, A read column-wise). AVX2 + FMA is used when the build targets it (g++
// -march=native on such a CPU defines __AVX2__ and __FMA__); otherwise, and for double (the
// gradcheck path), a portable C++ micro-kernel of the same shape runs.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define NERFGEN_MLP_AVX2 1
#else
#define NERFGEN_MLP_AVX2 0
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nerfgen/cpu_threads.h"
#include "nerfgen/mlp_api.h"

namespace nerfgen {
namespace cpu {
namespace {

constexpr int kTile = 48;  // samples per tile: 8 blocks of the micro-kernel's 6 rows
constexpr int kRows = 6;   // micro-kernel rows
constexpr int kCols = 16;  // micro-kernel columns
constexpr int64_t kMinParallelSamples = 2 * kTile;

enum class Init { kZero, kBias, kAccumulate };

// C[MR, 16] (ldc) = init + sum_k A(r, k) B[k, 0:16], A(r, k) = A[r ar + k ac]; ReLU when asked.
template <typename T, int MR, bool RELU>
void micro_portable(int K, const T* A, int64_t ar, int64_t ac, const T* B, int64_t ldb, T* C, int64_t ldc,
                    Init init, const T* bias) {
  T acc[MR][kCols];
  for (int r = 0; r < MR; ++r) {
    for (int j = 0; j < kCols; ++j) {
      acc[r][j] = init == Init::kAccumulate ? C[r * ldc + j] : init == Init::kBias ? bias[j] : T(0);
    }
  }
  for (int k = 0; k < K; ++k) {
    const T* b = B + k * ldb;
    for (int r = 0; r < MR; ++r) {
      const T a = A[r * ar + k * ac];
      for (int j = 0; j < kCols; ++j) acc[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < MR; ++r) {
    for (int j = 0; j < kCols; ++j) C[r * ldc + j] = RELU ? std::max(acc[r][j], T(0)) : acc[r][j];
  }
}

#if NERFGEN_MLP_AVX2
template <int MR, bool RELU>
void micro_avx2(int K, const float* A, int64_t ar, int64_t ac, const float* B, int64_t ldb, float* C, int64_t ldc,
                Init init, const float* bias) {
  __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    if (init == Init::kAccumulate) {
      lo[r] = _mm256_loadu_ps(C + r * ldc);
      hi[r] = _mm256_loadu_ps(C + r * ldc + 8);
    } else if (init == Init::kBias) {
      lo[r] = _mm256_loadu_ps(bias);
      hi[r] = _mm256_loadu_ps(bias + 8);
    } else {
      lo[r] = hi[r] = _mm256_setzero_ps();
    }
  }
  for (int k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(B + k * ldb), b1 = _mm256_loadu_ps(B + k * ldb + 8);
    const float* a = A + k * ac;
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * ar);
      lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
      hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_ps(C + r * ldc, RELU ? _mm256_max_ps(lo[r], zero) : lo[r]);
    _mm256_storeu_ps(C + r * ldc + 8, RELU ? _mm256_max_ps(hi[r], zero) : hi[r]);
  }
}
#endif

template <typename T, int MR, bool RELU>
void micro(int K, const T* A, int64_t ar, int64_t ac, const T* B, int64_t ldb, T* C, int64_t ldc, Init init,
           const T* bias) {
#if NERFGEN_MLP_AVX2
  if constexpr (std::is_same_v<T, float>) {
    micro_avx2<MR, RELU>(K, A, ar, ac, B, ldb, C, ldc, init, bias);
    return;
  }
#endif
  micro_portable<T, MR, RELU>(K, A, ar, ac, B, ldb, C, ldc, init, bias);
}

// C[M, N] = init + A[M, K] B[K, N] (A(m, k) = A[m ar + k ac], B and C row-major), N % 16 == 0.
template <typename T, bool RELU = false>
void gemm(int M, int N, int K, const T* A, int64_t ar, int64_t ac, const T* B, int64_t ldb, T* C, int64_t ldc,
          Init init, const T* bias = nullptr) {
  for (int n0 = 0; n0 < N; n0 += kCols) {
    const T* b = B + n0;
    const T* bias_n = bias ? bias + n0 : nullptr;
    for (int m0 = 0; m0 < M; m0 += kRows) {
      const T* a = A + m0 * ar;
      T* c = C + m0 * ldc + n0;
      switch (std::min(kRows, M - m0)) {
        case 6: micro<T, 6, RELU>(K, a, ar, ac, b, ldb, c, ldc, init, bias_n); break;
        case 5: micro<T, 5, RELU>(K, a, ar, ac, b, ldb, c, ldc, init, bias_n); break;
        case 4: micro<T, 4, RELU>(K, a, ar, ac, b, ldb, c, ldc, init, bias_n); break;
        case 3: micro<T, 3, RELU>(K, a, ar, ac, b, ldb, c, ldc, init, bias_n); break;
        case 2: micro<T, 2, RELU>(K, a, ar, ac, b, ldb, c, ldc, init, bias_n); break;
        default: micro<T, 1, RELU>(K, a, ar, ac, b, ldb, c, ldc, init, bias_n); break;
      }
    }
  }
}

// g[j] = 0 where x[j] <= 0 (the ReLU's derivative), branch-free: signs are random.
template <typename T>
void relu_mask(int width, const T* __restrict__ x, T* __restrict__ g) {
  int j = 0;
#if NERFGEN_MLP_AVX2
  if constexpr (std::is_same_v<T, float>) {
    const __m256 zero = _mm256_setzero_ps();
    for (; j + 8 <= width; j += 8) {
      const __m256 keep = _mm256_cmp_ps(_mm256_loadu_ps(x + j), zero, _CMP_GT_OQ);
      _mm256_storeu_ps(g + j, _mm256_and_ps(keep, _mm256_loadu_ps(g + j)));
    }
  }
#endif
  for (; j < width; ++j) g[j] = x[j] > T(0) ? g[j] : T(0);
}

// sum[j] += row[j].
template <typename T>
void add_row(int width, const T* __restrict__ row, T* __restrict__ sum) {
  for (int j = 0; j < width; ++j) sum[j] += row[j];
}

// One thread's tile buffers: two ping-pong tiles, and (backward) the tile's recomputed activations.
template <typename T>
struct Scratch {
  int ld, acts_ld;
  std::vector<T> a, b, acts, density, rgb;
  Scratch(int width, int acts_width)
      : ld(width), acts_ld(acts_width), a(static_cast<size_t>(kTile) * width), b(static_cast<size_t>(kTile) * width),
        acts(static_cast<size_t>(kTile) * acts_width), density(kTile), rgb(3 * kTile) {}
};

template <typename T>
int widest(const NgpMlp<T>& net) {
  int w = kCols;
  for (int l = 0; l < net.n_layers; ++l) w = std::max({w, net.layers[l].in_pad, net.layers[l].out_pad});
  return w;
}

// Where a tile's forward pass writes, relative to its first row: density[r], rgb[3 r ..] (null:
// density only) and, when acts is not null, the input of every layer but the first at
// acts[r acts_ld + acts_offset(l)].
template <typename T>
struct TileOut {
  T* density;
  T* rgb;
  T* acts;
  int acts_ld;
};

template <typename T>
void keep_rows(const T* tile, int ld, int rows, int width, const TileOut<T>& o, int offset) {
  for (int r = 0; r < rows; ++r) std::copy(tile + r * ld, tile + r * ld + width, o.acts + r * o.acts_ld + offset);
}

// One layer on a tile: y = act(x W + b) (ReLU or none).
template <typename T>
void layer_forward(int rows, const MlpLayer<T>& L, const T* x, int64_t ldx, T* y, int64_t ldy, bool relu) {
  if (relu) {
    gemm<T, true>(rows, L.out_pad, L.in, x, ldx, 1, L.wk, L.out_pad, y, ldy, Init::kBias, L.bias);
  } else {
    gemm<T, false>(rows, L.out_pad, L.in, x, ldx, 1, L.wk, L.out_pad, y, ldy, Init::kBias, L.bias);
  }
}

template <typename T>
void forward_tile(const NgpMlpProblem<T>& p, int64_t i0, int rows, Scratch<T>& s, const TileOut<T>& o) {
  const NgpMlp<T>& net = p.net;
  const T* x = p.enc + i0 * net.layers[0].in;
  int64_t ldx = net.layers[0].in;
  T* bufs[2] = {s.a.data(), s.b.data()};
  int next = 0;  // the buffer the next output goes to (never the one holding the input)
  const int last = o.rgb ? net.n_layers : net.n_density;
  for (int l = 0; l < last; ++l) {
    const MlpLayer<T>& L = net.layers[l];
    T* y = bufs[next];
    next ^= 1;
    const bool relu = l != net.n_density - 1 && l != net.n_layers - 1;
    layer_forward(rows, L, x, ldx, y, s.ld, relu);
    if (l == net.n_density - 1) {  // the density network's output: the density, then the colour input
      for (int r = 0; r < rows; ++r) o.density[r] = y[r * s.ld];
      if (!o.rgb) return;
      T* c = bufs[next];
      next ^= 1;
      const int width = net.layers[l + 1].in_pad;
      for (int r = 0; r < rows; ++r) {
        T* row = c + r * s.ld;
        std::copy(p.sh + (i0 + r) * net.sh_dim, p.sh + (i0 + r + 1) * net.sh_dim, row);
        std::copy(y + r * s.ld + 1, y + r * s.ld + 1 + net.geo, row + net.sh_dim);
        std::fill(row + net.sh_dim + net.geo, row + width, T(0));
      }
      if (o.acts) keep_rows(c, s.ld, rows, width, o, net.acts_offset(l + 1));
      x = c;
    } else {
      if (o.acts && relu) keep_rows(y, s.ld, rows, L.out_pad, o, net.acts_offset(l + 1));
      x = y;
    }
    ldx = s.ld;
  }
  for (int r = 0; r < rows; ++r) {
    for (int ch = 0; ch < 3; ++ch) o.rgb[3 * r + ch] = T(1) / (T(1) + std::exp(-x[r * ldx + ch]));
  }
}

// One thread's weight-gradient sums, layer by layer ([in, out_pad] and [out_pad]).
template <typename T>
struct GradSums {
  std::vector<std::vector<T>> wk, bias;
  explicit GradSums(const NgpMlp<T>& net) {
    for (int l = 0; l < net.n_layers; ++l) {
      const MlpLayer<T>& L = net.layers[l];
      wk.emplace_back(static_cast<size_t>(L.in) * L.out_pad, T(0));
      bias.emplace_back(L.out_pad, T(0));
    }
  }
};

template <typename T>
void backward_tile(const NgpMlpProblem<T>& p, const NgpMlpGrads<T>& g, int64_t i0, int rows, Scratch<T>& s,
                   GradSums<T>& sums) {
  const NgpMlp<T>& net = p.net;
  forward_tile(p, i0, rows, s, TileOut<T>{s.density.data(), s.rgb.data(), s.acts.data(), s.acts_ld});
  T* G = s.a.data();
  T* Gp = s.b.data();
  const int width = net.layers[net.n_layers - 1].out_pad;
  for (int r = 0; r < rows; ++r) {  // through the sigmoid
    T* row = G + r * s.ld;
    std::fill(row, row + width, T(0));
    for (int ch = 0; ch < 3; ++ch) {
      const T c = s.rgb[3 * r + ch];
      row[ch] = g.grad_rgb[(i0 + r) * 3 + ch] * c * (T(1) - c);
    }
  }
  for (int l = net.n_layers - 1; l >= 0; --l) {
    const MlpLayer<T>& L = net.layers[l];
    const T* x = l == 0 ? p.enc + i0 * L.in : s.acts.data() + net.acts_offset(l);
    const int64_t ldx = l == 0 ? L.in : s.acts_ld;
    gemm<T>(L.in, L.out_pad, rows, x, 1, ldx, G, s.ld, sums.wk[l].data(), L.out_pad, Init::kAccumulate);
    for (int r = 0; r < rows; ++r) add_row(L.out_pad, G + r * s.ld, sums.bias[l].data());
    gemm<T>(rows, L.in_pad, L.out_pad, G, s.ld, 1, L.wn, L.in_pad, Gp, s.ld, Init::kZero);
    if (l == 0) {
      for (int r = 0; r < rows; ++r) std::copy(Gp + r * s.ld, Gp + r * s.ld + L.in, g.grad_enc + (i0 + r) * L.in);
    } else if (l == net.n_density) {  // into the density network's output: density and geometry features
      const int out_pad = net.layers[l - 1].out_pad;
      for (int r = 0; r < rows; ++r) {
        T* row = G + r * s.ld;
        std::fill(row, row + out_pad, T(0));
        row[0] = g.grad_density[i0 + r];
        std::copy(Gp + r * s.ld + net.sh_dim, Gp + r * s.ld + net.sh_dim + net.geo, row + 1);
      }
      continue;  // G holds the next cotangent (no activation after the density network)
    } else {  // through the ReLU that made this layer's input
      for (int r = 0; r < rows; ++r) relu_mask(L.in_pad, x + r * ldx, Gp + r * s.ld);
    }
    std::swap(G, Gp);
  }
}

}  // namespace

bool mlp_uses_avx2() { return NERFGEN_MLP_AVX2 != 0; }

template <typename T>
void ngp_mlp_forward(const NgpMlpProblem<T>& p, const NgpMlpOutputs<T>& out) {
  const int64_t tiles = (p.n + kTile - 1) / kTile;
#pragma omp parallel num_threads(threads_for(p.n, kMinParallelSamples, p.n_threads))
  {
    Scratch<T> s(widest(p.net), 0);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t i0 = t * kTile;
      forward_tile(p, i0, static_cast<int>(std::min<int64_t>(kTile, p.n - i0)), s,
                   TileOut<T>{out.density + i0, out.rgb ? out.rgb + 3 * i0 : nullptr, nullptr, 0});
    }
  }
}

template <typename T>
void ngp_mlp_backward(const NgpMlpProblem<T>& p, const NgpMlpGrads<T>& g) {
  const NgpMlp<T>& net = p.net;
  const int64_t tiles = (p.n + kTile - 1) / kTile;
  const int n_threads = threads_for(p.n, kMinParallelSamples, p.n_threads);
  std::vector<GradSums<T>> per_thread(n_threads, GradSums<T>(net));
#pragma omp parallel num_threads(n_threads)
  {
#ifdef _OPENMP
    GradSums<T>& sums = per_thread[omp_get_thread_num()];
#else
    GradSums<T>& sums = per_thread[0];
#endif
    Scratch<T> s(widest(net), net.acts_width());
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      backward_tile(p, g, t * kTile, static_cast<int>(std::min<int64_t>(kTile, p.n - t * kTile)), s, sums);
    }
  }
  for (int l = 0; l < net.n_layers; ++l) {  // summed in thread order: the same on every run
    std::fill(g.grad_wk[l], g.grad_wk[l] + per_thread[0].wk[l].size(), T(0));
    std::fill(g.grad_bias[l], g.grad_bias[l] + per_thread[0].bias[l].size(), T(0));
    for (const GradSums<T>& sums : per_thread) {
      for (size_t j = 0; j < sums.wk[l].size(); ++j) g.grad_wk[l][j] += sums.wk[l][j];
      for (size_t j = 0; j < sums.bias[l].size(); ++j) g.grad_bias[l][j] += sums.bias[l][j];
    }
  }
}

#define NERFGEN_INSTANTIATE(T)                                                              \
  template void ngp_mlp_forward<T>(const NgpMlpProblem<T>&, const NgpMlpOutputs<T>&);      \
  template void ngp_mlp_backward<T>(const NgpMlpProblem<T>&, const NgpMlpGrads<T>&);
NERFGEN_INSTANTIATE(float)
NERFGEN_INSTANTIATE(double)
#undef NERFGEN_INSTANTIATE

}  // namespace cpu
}  // namespace nerfgen
