"""The fused compositing kernel (cuda/src/volrend*) against its torch twin and nerfacc.

Forward and backward with random cotangents on every output, over rays with no sample, one
sample, many samples, fully occluded rays and early termination; gradcheck in float64; opcheck.
float32 tolerances: per-ray sums of up to ~100 terms, accumulated in a different order than the
twin's global prefix sum, agree to ~1e-6 relative; gradients to ~1e-5.
"""

from __future__ import annotations

import pytest
import torch

from nerfgen.ops import Composite, packed_info_from_indices, volume_render, volume_render_torch

FIELDS = ("color", "opacity", "depth", "weights", "transmittance")


def packed(counts: list[int], channels: int = 3, seed: int = 0, dtype=torch.float32, sigma_scale: float = 20.0):
    g = torch.Generator().manual_seed(seed)
    ri = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
    n = ri.numel()
    dt = torch.rand(n, generator=g, dtype=dtype) * 0.05 + 0.005
    gap = (torch.rand(n, generator=g, dtype=dtype) < 0.3) * 0.1  # skipped empty space between samples
    ends = torch.zeros(n, dtype=dtype)
    start = 0
    for c in counts:
        ends[start : start + c] = torch.cumsum(dt[start : start + c] + gap[start : start + c], 0) + 1.0
        start += c
    sigmas = torch.rand(n, generator=g, dtype=dtype) * sigma_scale
    colors = torch.rand(n, channels, generator=g, dtype=dtype)
    return ends - dt, ends, sigmas, colors, ri


def render_and_grads(fn, t0, t1, sigmas, colors, ri, n_rays, eps, seed):
    sigmas = sigmas.detach().clone().requires_grad_()
    colors = colors.detach().clone().requires_grad_()
    out: Composite = fn(t0, t1, sigmas, colors, ri, n_rays, eps)
    g = torch.Generator().manual_seed(seed)
    loss = sum((getattr(out, f) * torch.randn(getattr(out, f).shape, generator=g, dtype=sigmas.dtype).to(sigmas.device)).sum()
               for f in FIELDS)
    grad_sigmas, grad_colors = torch.autograd.grad(loss, (sigmas, colors))
    return out, grad_sigmas, grad_colors


CASES = {
    "mixed": [5, 0, 1, 37, 2, 0, 90],
    "one sample": [1],
    "no rays": [],
    "only empty rays": [0, 0, 0],
    "many": [64] * 40,
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("eps", [0.0, 1e-4, 0.05])
@pytest.mark.parametrize("channels", [3, 5])
def test_kernel_matches_twin_forward_and_backward(kernels, case, eps, channels):
    counts = CASES[case]
    t0, t1, s, c, ri = packed(counts, channels, seed=len(counts))
    args = (t0, t1, s, c, ri, len(counts), eps)
    out, gs, gc = render_and_grads(volume_render, *args, seed=1)
    ref, rs, rc = render_and_grads(volume_render_torch, *args, seed=1)
    for f in FIELDS:
        torch.testing.assert_close(getattr(out, f), getattr(ref, f), rtol=1e-5, atol=1e-6, msg=f)
    torch.testing.assert_close(gs, rs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gc, rc, rtol=1e-5, atol=1e-6)


def test_fully_occluded_rays_terminate_and_get_no_gradient_behind(kernels):
    t0, t1, s, c, ri = packed([30, 30], seed=3)
    s = s.clone()
    s[5] = s[40] = 1e4  # opaque walls: transmittance behind them underflows below eps
    out, gs, gc = render_and_grads(volume_render, t0, t1, s, c, ri, 2, 1e-4, seed=2)
    assert torch.allclose(out.opacity, torch.ones(2))
    behind = torch.zeros(60, dtype=torch.bool)
    behind[6:30] = behind[41:] = True
    assert (out.weights[behind] == 0).all() and (out.transmittance[behind] == 0).all()
    assert (gs[behind] == 0).all() and (gc[behind] == 0).all()
    assert torch.isfinite(gs).all() and (gs[~behind] != 0).any()


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_gradcheck_float64(kernels, eps):
    t0, t1, s, c, ri = packed([4, 0, 1, 6], channels=2, seed=4, dtype=torch.float64, sigma_scale=5.0)
    s.requires_grad_()
    c.requires_grad_()

    def fn(sig, col):
        out = volume_render(t0, t1, sig, col, ri, 4, eps)
        return tuple(getattr(out, f) for f in FIELDS)

    assert torch.autograd.gradcheck(fn, (s, c), eps=1e-7, atol=1e-6)


def test_matches_nerfacc_dense_functions(kernels):
    nerfacc_volrend = pytest.importorskip("nerfacc.volrend", reason="nerfacc not installed (pip install nerfacc==0.5.3 --no-deps)")
    n_rays, n_samples = 8, 24
    g = torch.Generator().manual_seed(5)
    t = torch.sort(torch.rand(n_rays, n_samples + 1, generator=g) * 4, -1).values
    sig = torch.rand(n_rays, n_samples, generator=g) * 5
    rgb = torch.rand(n_rays, n_samples, 3, generator=g)
    ri = torch.arange(n_rays).repeat_interleave(n_samples)
    sig_packed = sig.reshape(-1).clone().requires_grad_()
    sig_dense = sig.clone().requires_grad_()
    out = volume_render(t[:, :-1].reshape(-1), t[:, 1:].reshape(-1), sig_packed, rgb.reshape(-1, 3), ri, n_rays)
    w_ref, trans_ref, _ = nerfacc_volrend.render_weight_from_density(t[:, :-1], t[:, 1:], sig_dense)
    rgb_ref = nerfacc_volrend.accumulate_along_rays(w_ref, rgb)
    torch.testing.assert_close(out.weights, w_ref.reshape(-1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.transmittance, trans_ref.reshape(-1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.color, rgb_ref, atol=1e-6, rtol=1e-5)
    cot = torch.randn(n_rays, 3, generator=g)
    (out.color * cot).sum().backward()
    (rgb_ref * cot).sum().backward()
    torch.testing.assert_close(sig_packed.grad, sig_dense.grad.reshape(-1), atol=1e-5, rtol=1e-4)


def test_opcheck(kernels):
    t0, t1, s, c, ri = packed([3, 0, 7, 1], seed=6)
    info = packed_info_from_indices(ri, 4)
    torch.library.opcheck(torch.ops.nerfgen.composite_fwd.default, (t0, t1, s.requires_grad_(), c.requires_grad_(), info, 1e-3))
    g = torch.Generator().manual_seed(7)
    out = torch.ops.nerfgen.composite_fwd(t0, t1, s.detach(), c.detach(), info, 1e-3)
    cots = [torch.randn(o.shape, generator=g) for o in out]
    torch.library.opcheck(torch.ops.nerfgen.composite_bwd.default,
                          (*cots, t0, t1, s.detach(), c.detach(), info, out[3], out[4], 1e-3))


def test_bad_arguments_raise(kernels):
    t0, t1, s, c, ri = packed([3, 2], seed=8)
    with pytest.raises(ValueError, match="colors must be"):
        volume_render(t0, t1, s, c[:-1], ri, 2)
    with pytest.raises(ValueError, match="must all be"):
        volume_render(t0, t1[:-1], s, c, ri, 2)
    with pytest.raises(RuntimeError, match="packed_info must be"):
        torch.ops.nerfgen.composite_fwd(t0, t1, s, c, torch.zeros(2, 3, dtype=torch.long), 0.0)
