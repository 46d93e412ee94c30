"""The fused MLP kernel (cuda/src/mlp_cpu.cpp) against its torch twin: forward and backward for
several layer shapes and sample counts (tile edges included), gradcheck in float64, the
density-only path, an NGP field with and without it, opcheck, and the source compiling on its
own with and without AVX2."""

from __future__ import annotations

import subprocess

import pytest
import torch

from nerfgen.fields.ngp import NGPField, NGPFieldConfig
from nerfgen.ops.mlp import fused_mlp_avx2, ngp_density, ngp_mlp, ngp_mlp_torch
from tests.kernels import CXX, REPO


def layers(in_dim: int, hidden: int, geo: int, sh: int, color_layers: int, seed: int, dtype=torch.float32):
    """Weights and biases of an NGP field's networks (density: one hidden layer)."""
    g = torch.Generator().manual_seed(seed)
    dims = [(hidden, in_dim), (1 + geo, hidden), (hidden, sh + geo)] + [(hidden, hidden)] * (color_layers - 1)
    dims.append((3, hidden))
    weights = [(torch.randn(o, i, generator=g, dtype=torch.float64) / i**0.5).to(dtype).requires_grad_() for o, i in dims]
    biases = [(torch.randn(o, generator=g, dtype=torch.float64) * 0.1).to(dtype).requires_grad_() for o, _ in dims]
    return weights, biases


SHAPES = [(32, 64, 15, 16, 2), (8, 16, 7, 9, 1), (24, 32, 15, 16, 3), (19, 48, 3, 4, 2)]
"""(encoding width, hidden width, geometry features, SH width, colour layers)."""


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [0, 1, 7, 48, 49, 301])
def test_kernel_matches_twin_forward_and_backward(kernels, shape, n):
    in_dim, hidden, geo, sh_dim, color_layers = shape
    weights, biases = layers(*shape, seed=n)
    g = torch.Generator().manual_seed(n + 1)
    enc = torch.randn(n, in_dim, generator=g).requires_grad_()
    sh = torch.randn(n, sh_dim, generator=g)
    got = ngp_mlp(enc, sh, weights, biases, 2)
    ref = ngp_mlp_torch(enc, sh, weights, biases, 2)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    cot = (torch.randn(n, generator=g), torch.randn(n, 3, generator=g))
    inputs = [enc, *weights, *biases]
    got_grads = torch.autograd.grad(got, inputs, cot)
    ref_grads = torch.autograd.grad(ref, inputs, cot)
    for a, b in zip(got_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_gradcheck_float64(kernels):
    weights, biases = layers(6, 16, 5, 4, 2, seed=3, dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    enc = torch.randn(53, 6, generator=g, dtype=torch.float64).requires_grad_()  # a full tile and a part
    sh = torch.randn(53, 4, generator=g, dtype=torch.float64)
    n_w = len(weights)
    assert torch.autograd.gradcheck(
        lambda e, *p: ngp_mlp(e, sh, list(p[:n_w]), list(p[n_w:]), 2), (enc, *weights, *biases))


def test_density_only_matches_the_full_pass(kernels):
    weights, biases = layers(*SHAPES[0], seed=5)
    enc = torch.randn(200, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full, _ = ngp_mlp(enc, torch.randn(200, 16), weights, biases, 2)
        alone = ngp_density(enc, weights[:2], biases[:2])
    torch.testing.assert_close(alone, full, rtol=0, atol=0)
    needs_grad = ngp_density(enc, weights[:2], biases[:2])  # with gradients: torch's layers
    assert needs_grad.requires_grad
    torch.testing.assert_close(needs_grad.detach(), full, rtol=1e-5, atol=1e-6)


def test_ngp_field_fused_and_torch_train_alike(kernels):
    box = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    g = torch.Generator().manual_seed(7)
    x = torch.rand(500, 3, generator=g) * 2 - 1
    d = torch.nn.functional.normalize(torch.randn(500, 3, generator=g), dim=-1)
    torch.manual_seed(0)
    fused = NGPField(box, NGPFieldConfig(log2_table_size=12, n_levels=8))
    torch.manual_seed(0)
    plain = NGPField(box, NGPFieldConfig(log2_table_size=12, n_levels=8, fused_mlp=False))
    grads = []
    for field in (fused, plain):
        out = field(x, d)
        (out.sigma.sum() + out.rgb.sum()).backward()
        grads.append({k: p.grad for k, p in field.named_parameters()})
        torch.testing.assert_close(field.density(x), out.sigma.detach(), rtol=1e-5, atol=1e-6)
    for key in grads[0]:
        torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-4, atol=1e-6, msg=key)


def test_opcheck_and_bad_arguments(kernels):
    weights, biases = layers(*SHAPES[1], seed=8)
    enc, sh = torch.randn(20, 8).requires_grad_(), torch.randn(20, 9)
    ops = torch.ops.nerfgen
    torch.library.opcheck(ops.ngp_mlp_fwd.default, (enc, sh, weights, biases, 2))
    torch.library.opcheck(ops.ngp_density_fwd.default, (enc.detach(), [w.detach() for w in weights[:2]],
                                                        [b.detach() for b in biases[:2]]))
    with pytest.raises(RuntimeError, match="layer 1 takes"):
        ops.ngp_mlp_fwd(enc.detach(), sh, [w.detach() for w in (weights[0], weights[0], *weights[2:])],
                        [b.detach() for b in (biases[0], biases[0], *biases[2:])], 2)
    with pytest.raises(RuntimeError, match="end in 3 outputs"):
        ops.ngp_mlp_fwd(enc.detach(), sh, [w.detach() for w in weights[:-1]], [b.detach() for b in biases[:-1]], 2)


def test_the_build_uses_avx2_where_the_cpu_has_it(kernels):
    flags = open("/proc/cpuinfo").read() if REPO.exists() else ""
    expected = " avx2" in flags and " fma" in flags
    assert fused_mlp_avx2() is expected


@pytest.mark.parametrize("flags", [[], ["-mavx2", "-mfma"]])
def test_cpu_source_compiles_without_torch(flags):
    cmd = [CXX, "-std=c++17", "-O1", "-fopenmp", "-Wall", "-Wextra", "-Werror", *flags,
           "-I", str(REPO / "cuda" / "include"), "-c", str(REPO / "cuda" / "src" / "mlp_cpu.cpp"), "-o", "/dev/null"]
    subprocess.run(cmd, check=True, timeout=120)
