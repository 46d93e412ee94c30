"""IBRNet's ray module: packed samples grouped by ray, attention that stays within a ray, the renderer
handing rays only to fields that read them, and the point-only density proxy and its loss."""

from __future__ import annotations

import pytest
import torch

from nerfgen.cameras import Rays
from nerfgen.fields import Conditioning
from nerfgen.generalize.pixelnerf import EncoderConfig, PixelFieldConfig, PixelNeRF, PixelNeRFConfig
from nerfgen.generalize.ray_module import RayAttention, pad_rays
from nerfgen.generalize.sources import SourceViews
from nerfgen.render import StratifiedConfig, render_rays
from tests.test_generalize import camera, stack


def test_packed_samples_pad_by_ray_and_round_trip():
    values = torch.arange(14, dtype=torch.float32).view(7, 2)
    padded, mask = pad_rays(values, torch.tensor([0, 0, 2, 2, 2, 5, 9]))
    assert padded.shape == (4, 3, 2) and mask.sum(1).tolist() == [2, 3, 1, 1]
    assert torch.equal(padded[mask], values)
    assert torch.equal(padded[1, :, 0], torch.tensor([4.0, 6.0, 8.0]))  # the three samples of ray 2, in order
    assert not bool(padded[~mask].any())
    with pytest.raises(ValueError, match="packed, ray by ray"):
        pad_rays(values, torch.tensor([0, 0, 2, 1, 2, 5, 9]))


def random_attention(width: int = 8) -> RayAttention:
    torch.manual_seed(0)
    module = RayAttention(width, heads=2)
    assert torch.equal(module(torch.ones(3, width), torch.tensor([0, 0, 1])), torch.ones(3, width))  # starts as identity
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return module


def test_attention_mixes_the_samples_of_a_ray_and_no_others():
    module = random_attention()
    rays = torch.tensor([0, 0, 0, 1, 1, 3, 3, 3, 3])
    g = torch.randn(9, 8)
    base = module(g, rays)
    moved = g.clone()
    moved[1] += torch.randn(8)  # a sample of ray 0
    out = module(moved, rays)
    changed = (out - base).abs().amax(-1) > 1e-6
    assert changed[[0, 1, 2]].all() and not changed[3:].any()
    # each ray alone gives what the packed batch gave; a point without its ray is a ray of its own
    for r in (0, 1, 3):
        assert torch.allclose(module(g[rays == r], rays[rays == r]), base[rays == r], atol=1e-5)
    assert torch.allclose(module(g[:1], None), module(g[:1], torch.tensor([0])), atol=1e-6)


def tiny_ray_model() -> PixelNeRF:
    torch.manual_seed(1)
    config = PixelNeRFConfig(EncoderConfig((4, 6)), PixelFieldConfig(16, 1, 1, 2, "meanvar", "blend", ray_module=True),
                             StratifiedConfig(n_samples=8))
    model = PixelNeRF(config, torch.tensor([-1.0, -1, -1, 1, 1, 1])).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model


def scene(model: PixelNeRF):
    cams = stack(camera((3.0, 0.5, 1.0)), camera((0.0, 3.0, 1.5)), camera((-2.5, -1.5, 1.0)))
    torch.manual_seed(2)
    return model.encode(SourceViews(torch.rand(3, 48, 64, 3), cams, ["a", "b", "c"]))


def test_the_renderer_gives_a_ray_module_its_rays_and_rays_render_independently():
    model = tiny_ray_model()
    assert "rays" in model.field.accepts
    features = scene(model)
    origins = torch.tensor([[3.0, 0.2, 0.5], [0.0, 3.0, 0.0], [10.0, 10.0, 10.0], [-3.0, 0.0, 0.3]])
    directions = torch.nn.functional.normalize(-origins + torch.tensor([0.1, -0.2, 0.0]), dim=-1)
    directions[2] = torch.tensor([1.0, 0.0, 0.0])  # misses the box: no samples
    rays, bg = Rays(origins, directions), torch.ones(3)
    with torch.no_grad():
        together = render_rays(model.field, model.sampler, rays, bg, Conditioning(views=features))
        alone = [render_rays(model.field, model.sampler, rays[[i]], bg, Conditioning(views=features)) for i in range(4)]
        assert torch.allclose(together.rgb, torch.cat([a.rgb for a in alone]), atol=1e-5)
        assert torch.allclose(together.rgb[2], bg)
        # the attention matters: the same samples as points on rays of their own render differently
        samples = model.sampler.sample(rays)
        ri = samples.ray_indices
        mids = origins[ri] + directions[ri] * ((samples.t_starts + samples.t_ends) / 2)[:, None]
        own = model.field(mids, directions[ri], Conditioning(views=features)).sigma
        along = model.field(mids, directions[ri], Conditioning(views=features, rays=ri)).sigma
        assert (own - along).abs().max() > 1e-3


def test_the_proxy_density_is_what_points_alone_read_and_its_loss_is_collected_once():
    model = tiny_ray_model()
    features = scene(model)
    points, dirs = torch.rand(24, 3) * 1.6 - 0.8, torch.nn.functional.normalize(torch.randn(24, 3), dim=-1)
    cond = Conditioning(views=features, rays=torch.arange(24) // 8)
    model.train()
    out = model.field(points, dirs, cond)
    terms = model.field.regularizers()
    assert set(terms) == {"density_proxy"} and terms["density_proxy"].requires_grad
    assert model.field.regularizers() == {}  # collected once
    terms["density_proxy"].backward()
    assert model.field.ray.proxy.weight.grad.abs().sum() > 0
    assert model.field.sigma.weight.grad is None  # the target is detached
    model.eval()
    model.field(points, dirs, cond)
    assert model.field.regularizers() == {}  # no term outside training
    g = model.field.trunk(points, torch.tensor([[0.0, 0.0, -1.0]]).expand(24, 3), Conditioning(views=features))[3]
    expected = model.field._sigma(model.field.ray.proxy(g), points)
    assert torch.allclose(model.field.density(points, Conditioning(views=features)), expected, atol=1e-6)
    assert out.sigma.shape == (24,)
    with pytest.raises(ValueError, match="takes no rays"):
        PixelNeRF(PixelNeRFConfig(EncoderConfig((4,)), PixelFieldConfig(8, 0, 0, 1)),
                  torch.tensor([-1.0, -1, -1, 1, 1, 1])).field(points, dirs, cond)
