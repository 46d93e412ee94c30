"""Packed volume rendering vs a per-ray loop and vs nerfacc's dense CPU functions."""

from __future__ import annotations

import math

import pytest
import torch

from nerfgen.ops import (
    accumulate_along_rays,
    exclusive_sum_by_ray,
    render_transmittance_from_density,
    render_weight_from_density,
)


def _packed(counts: list[int], seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ri = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
    n = int(ri.numel())
    dt = torch.rand(n, generator=g, dtype=dtype) * 0.1 + 0.01
    t_ends = torch.zeros(n, dtype=dtype)
    t_starts = torch.zeros(n, dtype=dtype)
    start = 0
    for c in counts:
        if c:
            ends = torch.cumsum(dt[start : start + c], 0) + 1.0
            t_ends[start : start + c] = ends
            t_starts[start : start + c] = ends - dt[start : start + c]
        start += c
    sigmas = torch.rand(n, generator=g, dtype=dtype) * 20
    return t_starts, t_ends, sigmas, ri


def _loop_weights(t_starts, t_ends, sigmas, ri, n_rays):
    out = torch.zeros_like(sigmas)
    for r in range(n_rays):
        idx = torch.nonzero(ri == r)[:, 0]
        trans = 1.0
        for i in idx.tolist():
            alpha = 1 - math.exp(-float(sigmas[i]) * float(t_ends[i] - t_starts[i]))
            out[i] = trans * alpha
            trans *= 1 - alpha
    return out


@pytest.mark.parametrize("counts", [[3, 0, 5, 1], [1], [0, 0, 2], [7] * 4])
def test_weights_match_a_per_ray_loop(counts):
    t0, t1, s, ri = _packed(counts)
    w, _, _ = render_weight_from_density(t0, t1, s, ri, len(counts))
    torch.testing.assert_close(w, _loop_weights(t0, t1, s, ri, len(counts)), atol=1e-6, rtol=1e-5)


def test_empty_inputs():
    e = torch.zeros(0)
    w, t, a = render_weight_from_density(e, e, e, torch.zeros(0, dtype=torch.long), 4)
    assert w.shape == t.shape == a.shape == (0,)
    rgb = accumulate_along_rays(w, torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 4)
    assert torch.equal(rgb, torch.zeros(4, 3))


def test_exclusive_sum_long_rays_keep_precision():
    # a huge optical depth on ray 0 must not leak into ray 1 through a global cumsum
    values = torch.tensor([1e6, 1e6, 0.25, 0.5])
    ri = torch.tensor([0, 0, 1, 1])
    out = exclusive_sum_by_ray(values, ri, 2)
    assert out.tolist() == [0.0, 1e6, 0.0, 0.25]


def test_gradcheck_float64():
    t0, t1, s, ri = _packed([3, 0, 4], dtype=torch.float64)
    s.requires_grad_(True)
    rgb = torch.rand(s.shape[0], 3, dtype=torch.float64, requires_grad=True)

    def composite(sig, col):
        w, _, _ = render_weight_from_density(t0, t1, sig, ri, 3)
        return accumulate_along_rays(w, col, ri, 3)

    assert torch.autograd.gradcheck(composite, (s, rgb))


def test_matches_nerfacc_dense_functions():
    nerfacc_volrend = pytest.importorskip("nerfacc.volrend", reason="nerfacc not installed (pip install nerfacc==0.5.3 --no-deps)")
    n_rays, n_samples = 6, 9
    g = torch.Generator().manual_seed(3)
    t = torch.sort(torch.rand(n_rays, n_samples + 1, generator=g) * 4, -1).values
    sig = torch.rand(n_rays, n_samples, generator=g) * 5
    sig_packed = sig.reshape(-1).clone().requires_grad_(True)
    sig_dense = sig.clone().requires_grad_(True)
    ri = torch.arange(n_rays).repeat_interleave(n_samples)
    ts, te = t[:, :-1].reshape(-1), t[:, 1:].reshape(-1)
    w, trans, alpha = render_weight_from_density(ts, te, sig_packed, ri, n_rays)
    w_ref, trans_ref, alpha_ref = nerfacc_volrend.render_weight_from_density(t[:, :-1], t[:, 1:], sig_dense)
    torch.testing.assert_close(w, w_ref.reshape(-1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(trans, trans_ref.reshape(-1), atol=1e-6, rtol=1e-5)
    cot = torch.randn(n_rays, n_samples, generator=g)
    (w * cot.reshape(-1)).sum().backward()
    (w_ref * cot).sum().backward()
    torch.testing.assert_close(sig_packed.grad, sig_dense.grad.reshape(-1), atol=1e-5, rtol=1e-4)
    vals = torch.rand(n_rays, n_samples, 3, generator=g)
    acc = accumulate_along_rays(w.detach(), vals.reshape(-1, 3), ri, n_rays)
    acc_ref = nerfacc_volrend.accumulate_along_rays(w_ref.detach(), vals)
    torch.testing.assert_close(acc, acc_ref, atol=1e-6, rtol=1e-5)
    tr2, _ = render_transmittance_from_density(ts, te, sig.reshape(-1), ri, n_rays)
    torch.testing.assert_close(tr2, nerfacc_volrend.render_transmittance_from_density(t[:, :-1], t[:, 1:], sig)[0].reshape(-1))
