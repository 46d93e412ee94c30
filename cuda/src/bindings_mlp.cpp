// Bindings of the fused MLP ops (a fragment of the `nerfgen` library, see bindings.cpp): checks the
// layers at the boundary, packs torch's weights into the layouts of mlp_api.h and unpacks the
// weight gradients. CPU only: on CUDA the field's MLPs run tiny-cuda-nn (when installed) or torch.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "bindings.h"
#include "nerfgen/mlp_api.h"

namespace nerfgen {
namespace {

using bindings::num;
using bindings::shape_of;

int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

// The packed layers and the views the kernels read.
template <typename T>
struct Packed {
  std::vector<at::Tensor> wk, wn, bias;
  NgpMlp<T> net{};
};

// Checks the layer chain (see mlp_api.h) of `weights` ([out, in]) and `biases` ([out]).
void check_layers(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, int64_t n_density,
                  int64_t sh_dim, const at::Tensor& enc) {
  const int64_t n = static_cast<int64_t>(weights.size());
  TORCH_CHECK(n == static_cast<int64_t>(biases.size()) && n >= 1 && n <= kMaxMlpLayers && n_density >= 1 &&
                  n_density <= n,
              "ngp_mlp: need 1..", num(kMaxMlpLayers), " layers (weights and biases alike) and 1 <= n_density <= ",
              "layers, got ", num(n), " weights, ", num(biases.size()), " biases, n_density ", num(n_density));
  for (int64_t l = 0; l < n; ++l) {
    const at::Tensor& w = weights[l];
    const at::Tensor& b = biases[l];
    TORCH_CHECK(w.dim() == 2 && b.dim() == 1 && b.size(0) == w.size(0) && w.scalar_type() == enc.scalar_type() &&
                    b.scalar_type() == enc.scalar_type() && w.device() == enc.device() && b.device() == enc.device(),
                "ngp_mlp: layer ", num(l), " must be a weight [out, in] and a bias [out] of the encoding's dtype and "
                "device, got ", shape_of(w.sizes()), " and ", shape_of(b.sizes()));
    int64_t expected = l == 0 ? enc.size(1) : weights[l - 1].size(0);
    if (l == n_density) expected = sh_dim + weights[n_density - 1].size(0) - 1;
    TORCH_CHECK(w.size(1) == expected, "ngp_mlp: layer ", num(l), " takes ", num(w.size(1)), " inputs, expected ",
                num(expected));
  }
  TORCH_CHECK(n == n_density || weights[n - 1].size(0) == 3, "ngp_mlp: the colour network must end in 3 outputs");
}

template <typename T>
Packed<T> pack(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, int64_t n_density,
               int64_t sh_dim) {
  Packed<T> p;
  const int64_t n = static_cast<int64_t>(weights.size());
  for (int64_t l = 0; l < n; ++l) {
    const int64_t out = weights[l].size(0), in = weights[l].size(1);
    const int64_t out_pad = pad16(out), in_pad = pad16(in);
    auto opts = weights[l].options();
    at::Tensor wk = at::zeros({in, out_pad}, opts), wn = at::zeros({out_pad, in_pad}, opts), b = at::zeros({out_pad}, opts);
    wk.narrow(1, 0, out).copy_(weights[l].t());
    wn.narrow(0, 0, out).narrow(1, 0, in).copy_(weights[l]);
    b.narrow(0, 0, out).copy_(biases[l]);
    p.net.layers[l] = MlpLayer<T>{wk.data_ptr<T>(), wn.data_ptr<T>(), b.data_ptr<T>(), static_cast<int>(in),
                                  static_cast<int>(out), static_cast<int>(in_pad), static_cast<int>(out_pad)};
    p.wk.push_back(wk);
    p.wn.push_back(wn);
    p.bias.push_back(b);
  }
  p.net.n_layers = static_cast<int>(n);
  p.net.n_density = static_cast<int>(n_density);
  p.net.sh_dim = static_cast<int>(sh_dim);
  p.net.geo = static_cast<int>(weights[n_density - 1].size(0) - 1);
  return p;
}

void check_input(const char* op, const at::Tensor& t, const at::Tensor& enc, int64_t cols, const char* what) {
  TORCH_CHECK(t.dim() == 2 && t.size(0) == enc.size(0) && t.size(1) == cols && t.is_contiguous() &&
                  t.scalar_type() == enc.scalar_type() && t.device() == enc.device(),
              op, ": ", what, " must be a contiguous [", num(enc.size(0)), ", ", num(cols), "] tensor like the "
              "encoding, got ", shape_of(t.sizes()));
}

std::tuple<at::Tensor, at::Tensor> ngp_mlp_fwd(const at::Tensor& enc, const at::Tensor& sh, at::TensorList weights,
                                               at::TensorList biases, int64_t n_density) {
  TORCH_CHECK(enc.dim() == 2 && enc.is_contiguous(), "ngp_mlp: enc must be a contiguous [n, in] tensor");
  const std::vector<at::Tensor> w(weights.begin(), weights.end()), b(biases.begin(), biases.end());
  check_layers(w, b, n_density, sh.size(-1), enc);
  TORCH_CHECK(static_cast<int64_t>(w.size()) > n_density, "ngp_mlp: need colour layers after the density network");
  check_input("ngp_mlp", sh, enc, sh.size(-1), "sh");
  const int64_t n = enc.size(0);
  auto density = at::empty({n}, enc.options());
  auto rgb = at::empty({n, 3}, enc.options());
  AT_DISPATCH_FLOATING_TYPES(enc.scalar_type(), "ngp_mlp_fwd", [&] {
    Packed<scalar_t> p = pack<scalar_t>(w, b, n_density, sh.size(1));
    const NgpMlpProblem<scalar_t> problem{enc.data_ptr<scalar_t>(), sh.data_ptr<scalar_t>(), n, p.net,
                                          at::get_num_threads()};
    cpu::ngp_mlp_forward(problem, NgpMlpOutputs<scalar_t>{density.data_ptr<scalar_t>(), rgb.data_ptr<scalar_t>()});
  });
  return {density, rgb};
}

at::Tensor ngp_density_fwd(const at::Tensor& enc, at::TensorList weights, at::TensorList biases) {
  TORCH_CHECK(enc.dim() == 2 && enc.is_contiguous(), "ngp_density: enc must be a contiguous [n, in] tensor");
  const std::vector<at::Tensor> w(weights.begin(), weights.end()), b(biases.begin(), biases.end());
  const int64_t n_density = static_cast<int64_t>(w.size());
  check_layers(w, b, n_density, 0, enc);
  auto density = at::empty({enc.size(0)}, enc.options());
  AT_DISPATCH_FLOATING_TYPES(enc.scalar_type(), "ngp_density_fwd", [&] {
    Packed<scalar_t> p = pack<scalar_t>(w, b, n_density, 0);
    const NgpMlpProblem<scalar_t> problem{enc.data_ptr<scalar_t>(), nullptr, enc.size(0), p.net, at::get_num_threads()};
    cpu::ngp_mlp_forward(problem, NgpMlpOutputs<scalar_t>{density.data_ptr<scalar_t>(), nullptr});
  });
  return density;
}

std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> ngp_mlp_bwd(
    const at::Tensor& grad_density, const at::Tensor& grad_rgb, const at::Tensor& enc, const at::Tensor& sh,
    at::TensorList weights, at::TensorList biases, int64_t n_density) {
  const std::vector<at::Tensor> w(weights.begin(), weights.end()), b(biases.begin(), biases.end());
  check_layers(w, b, n_density, sh.size(-1), enc);
  const int64_t n = enc.size(0);
  TORCH_CHECK(grad_density.dim() == 1 && grad_density.size(0) == n && grad_density.is_contiguous(),
              "ngp_mlp_bwd: grad_density must be a contiguous [n] tensor");
  check_input("ngp_mlp_bwd", grad_rgb, enc, 3, "grad_rgb");
  check_input("ngp_mlp_bwd", sh, enc, sh.size(-1), "sh");
  auto grad_enc = at::empty_like(enc);
  std::vector<at::Tensor> grad_w, grad_b;
  AT_DISPATCH_FLOATING_TYPES(enc.scalar_type(), "ngp_mlp_bwd", [&] {
    Packed<scalar_t> p = pack<scalar_t>(w, b, n_density, sh.size(1));
    NgpMlpGrads<scalar_t> g{grad_density.data_ptr<scalar_t>(), grad_rgb.data_ptr<scalar_t>(),
                            grad_enc.data_ptr<scalar_t>(), {}, {}};
    std::vector<at::Tensor> wk_grads, bias_grads;
    for (int l = 0; l < p.net.n_layers; ++l) {
      wk_grads.push_back(at::empty_like(p.wk[l]));
      bias_grads.push_back(at::empty_like(p.bias[l]));
      g.grad_wk[l] = wk_grads.back().data_ptr<scalar_t>();
      g.grad_bias[l] = bias_grads.back().data_ptr<scalar_t>();
    }
    cpu::ngp_mlp_backward(NgpMlpProblem<scalar_t>{enc.data_ptr<scalar_t>(), sh.data_ptr<scalar_t>(), n, p.net,
                                                  at::get_num_threads()}, g);
    for (int l = 0; l < p.net.n_layers; ++l) {
      const int64_t out = w[l].size(0);
      grad_w.push_back(wk_grads[l].narrow(1, 0, out).t().contiguous());
      grad_b.push_back(bias_grads[l].narrow(0, 0, out).contiguous());
    }
  });
  return {grad_enc, grad_w, grad_b};
}

bool ngp_mlp_avx2() { return cpu::mlp_uses_avx2(); }

}  // namespace
}  // namespace nerfgen

TORCH_LIBRARY_FRAGMENT(nerfgen, m) {
  m.set_python_module("nerfgen.ops._kernels");
  m.def("ngp_mlp_fwd(Tensor enc, Tensor sh, Tensor[] weights, Tensor[] biases, int n_density) -> (Tensor, Tensor)");
  m.def("ngp_density_fwd(Tensor enc, Tensor[] weights, Tensor[] biases) -> Tensor");
  m.def("ngp_mlp_bwd(Tensor grad_density, Tensor grad_rgb, Tensor enc, Tensor sh, Tensor[] weights, Tensor[] biases, "
        "int n_density) -> (Tensor, Tensor[], Tensor[])");
  m.def("ngp_mlp_avx2() -> bool", &nerfgen::ngp_mlp_avx2);
}

TORCH_LIBRARY_IMPL(nerfgen, CPU, m) {
  m.impl("ngp_mlp_fwd", &nerfgen::ngp_mlp_fwd);
  m.impl("ngp_density_fwd", &nerfgen::ngp_density_fwd);
  m.impl("ngp_mlp_bwd", &nerfgen::ngp_mlp_bwd);
}
