"""Score distillation and classifier-free guidance against hand-computed values on toy denoisers."""

from __future__ import annotations

import math

import pytest
import torch

from nerfgen.prior import PromptEmbedding, Views
from nerfgen.prior.stable_diffusion import eps_from_v
from tests.toy_priors import LinearPrior


def _views(n: int) -> Views:
    return Views(torch.zeros(n), torch.linspace(0, 90, n), torch.full((n,), 3.0))


def test_guidance_is_uncond_plus_scale_times_difference():
    prior = LinearPrior(a=0.5)
    prompt = prior.encode_prompt("abc", "")  # cond embedding 3, uncond 0
    z_t = torch.full((1, 3, 1, 1), 0.2)
    eps = prior.guided_noise(z_t, torch.tensor([10]), prompt, _views(1), guidance=7.5)
    # eps_c = 0.5 * 0.2 + 3 = 3.1, eps_u = 0.1  ->  0.1 + 7.5 * (3.1 - 0.1) = 22.6
    assert torch.allclose(eps, torch.full_like(eps, 22.6))
    # one batched call: conditional half first, views repeated for both halves
    z_in, t_in, emb_in = prior.calls[-1]
    assert z_in.shape[0] == 2 and t_in.tolist() == [10, 10] and emb_in.view(-1).tolist() == [3.0, 0.0]
    assert torch.allclose(prior.guided_noise(z_t, torch.tensor([10]), prompt, _views(1), guidance=1.0),
                          torch.full_like(z_t, 3.1))  # scale 1 is the conditional model alone


def test_sds_gradient_matches_hand_computation():
    # schedule of 4 steps; t_range (0.5, 0.5) pins t = 2: alpha_bar 0.36, sqrt 0.6, sqrt(1 - ab) 0.8, w = 0.64
    prior = LinearPrior(a=0.5, alphas_cumprod=torch.tensor([0.9, 0.64, 0.36, 0.25]), resolution=1)
    prompt = prior.encode_prompt("abc", "")
    images = torch.tensor([[0.5, 0.75, 1.0], [0.0, 0.25, 0.5]]).view(2, 3, 1, 1).requires_grad_(True)
    out = prior.sds_loss(images, prompt, _views(2), guidance=7.5, t_range=(0.5, 0.5),
                         generator=torch.Generator().manual_seed(3))
    out.loss.backward()
    assert out.timesteps.tolist() == [2, 2]
    z = images.detach() * 2 - 1
    z_t = prior.calls[-1][0][:2]  # what the denoiser saw (conditional half)
    noise = (z_t - 0.6 * z) / 0.8
    eps_hat = 0.5 * z_t + 7.5 * 3.0  # eps_u + 7.5 (eps_c - eps_u) with eps_c - eps_u = 3
    expected = 0.64 * (eps_hat - noise) * 2 / 2  # dz/dx = 2, averaged over the batch of 2
    assert torch.allclose(images.grad, expected, atol=1e-5)
    assert math.isclose(out.loss.item(), 0.5 * (0.64 * (eps_hat - noise)).pow(2).sum().item() / 2, rel_tol=1e-5)
    assert prior.a.grad is None  # the diffusion model is frozen by construction


def test_sds_per_image_prompts_and_timestep_range():
    prior = LinearPrior(a=0.0)
    prompt = PromptEmbedding(torch.tensor([[1.0], [5.0], [9.0]]), torch.tensor([[0.0]]))
    images = torch.rand(3, 3, 4, 4, requires_grad=True)
    out = prior.sds_loss(images, prompt, _views(3), guidance=2.0, t_range=(0.1, 0.2),
                         generator=torch.Generator().manual_seed(0))
    assert all(100 <= t < 200 for t in out.timesteps.tolist())
    assert prior.calls[-1][2].view(-1).tolist() == [1.0, 5.0, 9.0, 0.0, 0.0, 0.0]
    out.loss.backward()
    z_t = prior.calls[-1][0][:3]
    ab = prior.alphas_cumprod[out.timesteps].view(-1, 1, 1, 1)
    noise = (z_t - ab.sqrt() * (images.detach() * 2 - 1)) / (1 - ab).sqrt()
    eps_hat = 2.0 * torch.tensor([1.0, 5.0, 9.0]).view(-1, 1, 1, 1)  # a = 0: eps_u = 0, eps_c = e
    assert torch.allclose(images.grad, (1 - ab) * (eps_hat - noise) * 2 / 3, atol=1e-4)


def test_sds_is_repeatable_for_a_generator_seed():
    prior = LinearPrior()
    images = torch.rand(2, 3, 4, 4)
    prompt = prior.encode_prompt("a cube")
    a = prior.sds_loss(images, prompt, _views(2), 5.0, generator=torch.Generator().manual_seed(7))
    b = prior.sds_loss(images, prompt, _views(2), 5.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.loss, b.loss) and torch.equal(a.timesteps, b.timesteps)


def test_eps_from_v_inverts_v_parameterisation():
    # hand values: alpha_bar 0.36, v 1, z_t 2 -> 0.6 * 1 + 0.8 * 2 = 2.2
    one = torch.ones(1, 1, 1, 1)
    assert torch.allclose(eps_from_v(one, 2 * one, 0.36 * one), 2.2 * one)
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 4, 8, 8, generator=gen)
    ab = torch.tensor([0.9, 0.5, 0.1]).view(-1, 1, 1, 1)
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    z_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    assert torch.allclose(eps_from_v(v, z_t, ab), eps, atol=1e-5)


@pytest.mark.parametrize("guidance", [1.0, 100.0])
def test_sds_gradient_is_finite_at_extreme_timesteps(guidance):
    prior = LinearPrior()
    images = torch.rand(2, 3, 4, 4, requires_grad=True)
    for t_range in ((0.0, 0.001), (0.999, 1.0)):
        out = prior.sds_loss(images, prior.encode_prompt("x"), _views(2), guidance, t_range)
        out.loss.backward()
        assert torch.isfinite(out.loss) and torch.isfinite(images.grad).all()
