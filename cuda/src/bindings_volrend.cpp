// Bindings of the packed volume-rendering ops, compositing forward and backward (a fragment of the
// `nerfgen` library, see bindings.cpp): checks tensors at the boundary and forwards raw pointers to
// volrend_api.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <utility>
#include <vector>

#include "bindings.h"
#include "nerfgen/volrend_api.h"

#ifdef NERFGEN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that one needs cuSPARSE/cuBLAS headers
#endif

namespace nerfgen {
namespace {

using bindings::num;  // numbers and shapes in messages: see bindings.h
using bindings::shape_of;

struct CpuLaunch {
  using Guard = bindings::NoDeviceGuard;
  template <typename T>
  static void composite_forward(const CompositeProblem<T>& p, const CompositeOutputs<T>& out) {
    cpu::composite_forward(p, out);
  }
  template <typename T>
  static void composite_backward(const CompositeProblem<T>& p, const T* weights, const T* transmittance,
                                 const CompositeGrads<T>& grads) {
    cpu::composite_backward(p, weights, transmittance, grads);
  }
};

#ifdef NERFGEN_WITH_CUDA
struct CudaLaunch {
  using Guard = c10::cuda::CUDAGuard;  // launches on the tensors' device and its current stream
  template <typename T>
  static void composite_forward(const CompositeProblem<T>& p, const CompositeOutputs<T>& out) {
    bindings::check_cuda("composite", cuda::composite_forward(p, out, c10::cuda::getCurrentCUDAStream()));
  }
  template <typename T>
  static void composite_backward(const CompositeProblem<T>& p, const T* weights, const T* transmittance,
                                 const CompositeGrads<T>& grads) {
    bindings::check_cuda("composite", cuda::composite_backward(p, weights, transmittance, grads,
                                                               c10::cuda::getCurrentCUDAStream()));
  }
};
#endif

void check_samples(const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& sigmas,
                   const at::Tensor& colors, const at::Tensor& packed_info) {
  const int64_t n = sigmas.size(0);
  TORCH_CHECK(sigmas.dim() == 1 && t_starts.sizes() == sigmas.sizes() && t_ends.sizes() == sigmas.sizes(),
              "composite: t_starts, t_ends and sigmas must all be [n_samples]");
  TORCH_CHECK(colors.dim() == 2 && colors.size(0) == n && colors.size(1) >= 1,
              "composite: colors must be [n_samples, C] with n_samples = ", num(n), ", got ", shape_of(colors.sizes()));
  TORCH_CHECK(packed_info.dim() == 2 && packed_info.size(1) == 2 && packed_info.scalar_type() == at::kLong,
              "composite: packed_info must be int64 [n_rays, 2], got ", packed_info.scalar_type(),
              shape_of(packed_info.sizes()));
  for (const at::Tensor* t : {&t_starts, &t_ends, &sigmas, &colors, &packed_info}) {
    TORCH_CHECK(t->is_contiguous() && t->device() == sigmas.device(), "composite: tensors must be contiguous, on ",
                sigmas.device());
    if (t != &packed_info) {
      TORCH_CHECK(t->scalar_type() == sigmas.scalar_type(), "composite: sample tensors must share one dtype");
    }
  }
}

template <typename scalar_t>
CompositeProblem<scalar_t> make_composite(const at::Tensor& t_starts, const at::Tensor& t_ends,
                                          const at::Tensor& sigmas, const at::Tensor& colors,
                                          const at::Tensor& packed_info, double early_stop_eps) {
  return CompositeProblem<scalar_t>{t_starts.data_ptr<scalar_t>(),   t_ends.data_ptr<scalar_t>(),
                                    sigmas.data_ptr<scalar_t>(),     colors.data_ptr<scalar_t>(),
                                    packed_info.data_ptr<int64_t>(), packed_info.size(0),
                                    static_cast<int>(colors.size(1)), static_cast<scalar_t>(early_stop_eps),
                                    at::get_num_threads()};
}

template <typename scalar_t>
CompositeOutputs<scalar_t> outputs_of(const at::Tensor& color, const at::Tensor& opacity, const at::Tensor& depth,
                                      const at::Tensor& weights, const at::Tensor& transmittance) {
  return CompositeOutputs<scalar_t>{color.data_ptr<scalar_t>(), opacity.data_ptr<scalar_t>(),
                                    depth.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(),
                                    transmittance.data_ptr<scalar_t>()};
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_fwd_op(
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& sigmas, const at::Tensor& colors,
    const at::Tensor& packed_info, double early_stop_eps) {
  check_samples(t_starts, t_ends, sigmas, colors, packed_info);
  const typename Launch::Guard guard(sigmas.device());
  const int64_t n_rays = packed_info.size(0);
  auto color = at::empty({n_rays, colors.size(1)}, colors.options());
  auto opacity = at::empty({n_rays}, sigmas.options());
  auto depth = at::empty({n_rays}, sigmas.options());
  auto weights = at::empty_like(sigmas);
  auto transmittance = at::empty_like(sigmas);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_fwd", [&] {
    Launch::composite_forward(make_composite<scalar_t>(t_starts, t_ends, sigmas, colors, packed_info, early_stop_eps),
                              outputs_of<scalar_t>(color, opacity, depth, weights, transmittance));
  });
  return {color, opacity, depth, weights, transmittance};
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> composite_bwd_op(
    const at::Tensor& grad_color, const at::Tensor& grad_opacity, const at::Tensor& grad_depth,
    const at::Tensor& grad_weights, const at::Tensor& grad_transmittance, const at::Tensor& t_starts,
    const at::Tensor& t_ends, const at::Tensor& sigmas, const at::Tensor& colors, const at::Tensor& packed_info,
    const at::Tensor& weights, const at::Tensor& transmittance, double early_stop_eps) {
  check_samples(t_starts, t_ends, sigmas, colors, packed_info);
  const int64_t n_rays = packed_info.size(0), n_samples = sigmas.size(0), C = colors.size(1);
  const std::vector<std::pair<const at::Tensor*, std::vector<int64_t>>> shapes = {
      {&grad_color, {n_rays, C}},         {&grad_opacity, {n_rays}}, {&grad_depth, {n_rays}},
      {&grad_weights, {n_samples}},       {&grad_transmittance, {n_samples}},
      {&weights, {n_samples}},            {&transmittance, {n_samples}}};
  for (const auto& [t, shape] : shapes) {
    TORCH_CHECK(t->sizes() == at::IntArrayRef(shape) && t->is_contiguous() && t->scalar_type() == sigmas.scalar_type() &&
                    t->device() == sigmas.device(),
                "composite_bwd: expected a contiguous ", sigmas.scalar_type(), " tensor of shape ", shape_of(shape), ", got ",
                t->scalar_type(), shape_of(t->sizes()));
  }
  const typename Launch::Guard guard(sigmas.device());
  auto grad_sigmas = at::empty_like(sigmas);
  auto grad_colors = at::empty_like(colors);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_bwd", [&] {
    const CompositeGrads<scalar_t> grads{grad_color.data_ptr<scalar_t>(),   grad_opacity.data_ptr<scalar_t>(),
                                         grad_depth.data_ptr<scalar_t>(),   grad_weights.data_ptr<scalar_t>(),
                                         grad_transmittance.data_ptr<scalar_t>(), grad_sigmas.data_ptr<scalar_t>(),
                                         grad_colors.data_ptr<scalar_t>()};
    Launch::composite_backward(make_composite<scalar_t>(t_starts, t_ends, sigmas, colors, packed_info, early_stop_eps),
                               weights.data_ptr<scalar_t>(), transmittance.data_ptr<scalar_t>(), grads);
  });
  return {grad_sigmas, grad_colors};
}

}  // namespace
}  // namespace nerfgen

TORCH_LIBRARY_FRAGMENT(nerfgen, m) {
  m.set_python_module("nerfgen.ops._kernels");
  m.def("composite_fwd(Tensor t_starts, Tensor t_ends, Tensor sigmas, Tensor colors, Tensor packed_info, "
        "float early_stop_eps) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("composite_bwd(Tensor grad_color, Tensor grad_opacity, Tensor grad_depth, Tensor grad_weights, "
        "Tensor grad_transmittance, Tensor t_starts, Tensor t_ends, Tensor sigmas, Tensor colors, "
        "Tensor packed_info, Tensor weights, Tensor transmittance, "
        "float early_stop_eps) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(nerfgen, CPU, m) {
  m.impl("composite_fwd", &nerfgen::composite_fwd_op<nerfgen::CpuLaunch>);
  m.impl("composite_bwd", &nerfgen::composite_bwd_op<nerfgen::CpuLaunch>);
}

#ifdef NERFGEN_WITH_CUDA
TORCH_LIBRARY_IMPL(nerfgen, CUDA, m) {
  m.impl("composite_fwd", &nerfgen::composite_fwd_op<nerfgen::CudaLaunch>);
  m.impl("composite_bwd", &nerfgen::composite_bwd_op<nerfgen::CudaLaunch>);
}
#endif
