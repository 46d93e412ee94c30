// The `nerfgen` torch library: registered here once; its ops are defined and implemented in the
// fragments beside this file, one per op family and kernel file (bindings_hashgrid.cpp,
// bindings_march.cpp, bindings_volrend.cpp, bindings_planes.cpp, bindings_baked.cpp,
// bindings_mlp.cpp), each checking tensors at the boundary and forwarding raw pointers to its
// launchers (cuda/include/nerfgen/*_api.h). CUDA implementations are compiled only with
// -DNERFGEN_WITH_CUDA (a CUDA torch and the .cu files).
#include <torch/library.h>

TORCH_LIBRARY(nerfgen, m) {
  // Fake (meta) kernels and the autograd formulas are registered from this Python module.
  m.set_python_module("nerfgen.ops._kernels");
}
