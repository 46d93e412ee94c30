"""Conditioned fields, composition, feature rendering and the stratified sampler behind the sampler
interface: what GAN-trained and composed scenes plug into."""

from __future__ import annotations

import math

import pytest
import torch

from nerfgen.cameras import Rays, image_rays, orbit_cameras
from nerfgen.fields import Conditioning, FieldOutput, RadianceField, build_field
from nerfgen.fields.vanilla import VanillaField, VanillaFieldConfig
from nerfgen.ops import volume_render_torch
from nerfgen.render import (
    ComposedField,
    OccGridConfig,
    OccupancyGrid,
    StratifiedConfig,
    StratifiedSampler,
    compose,
    render_rays,
)

BOX = torch.tensor([-1.0, -1, -1, 1, 1, 1])


class Slab(RadianceField):
    """Density ``sigma`` for ``|z| < half`` and colour / features ``value`` there, zero elsewhere."""

    def __init__(self, sigma: float, value: list[float], half: float = 0.25, features: bool = False) -> None:
        super().__init__(BOX)
        self.sigma, self.value, self.half, self.features = sigma, torch.tensor(value), half, features
        self.out_channels = len(value)

    def density(self, positions, cond=None):
        positions, _ = self.local(positions, None, cond)
        return self.sigma * (positions[:, 2].abs() < self.half).float()

    def forward(self, positions, directions, cond=None):
        sigma = self.density(positions, cond)
        value = self.value.expand(positions.shape[0], -1)
        return FieldOutput(sigma, features=value) if self.features else FieldOutput(sigma, rgb=value)


def down_rays(n: int, x: float = 0.0) -> Rays:
    """``n`` rays from z = 3 straight down, at x (spread over y)."""
    origins = torch.stack([torch.full((n,), x), torch.linspace(-0.5, 0.5, n), torch.full((n,), 3.0)], -1)
    return Rays(origins, torch.tensor([[0.0, 0.0, -1.0]]).expand(n, 3).contiguous())


def test_conditioning_follows_rays_to_their_samples():
    cond = Conditioning(latent=torch.arange(3.0)[:, None], transform=torch.eye(3, 4)[None])
    taken = cond.take(torch.tensor([2, 2, 0]))
    assert taken.latent[:, 0].tolist() == [2.0, 2.0, 0.0] and taken.transform.shape == (1, 3, 4)  # shared stays shared
    slots = Conditioning(latent=torch.randn(5, 2, 4), transform=torch.randn(1, 2, 3, 4))
    assert slots.slot(1).latent.shape == (5, 4) and slots.slot(1).transform.shape == (1, 3, 4)


def test_fields_reject_conditioning_they_cannot_use():
    ngp = build_field("ngp", BOX, {"log2_table_size": 10, "n_levels": 2})
    with pytest.raises(ValueError, match="NGPField takes no latent conditioning"):
        ngp(torch.zeros(2, 3), torch.tensor([[0.0, 0, 1]]).expand(2, 3), Conditioning(latent=torch.zeros(1, 4)))
    graf = VanillaField(BOX, VanillaFieldConfig(depth=2, width=16, skip=1, shape_latent=3, appearance_latent=2))
    with pytest.raises(ValueError, match=r"needs cond.latent \[n \| 1, 5\]"):
        graf(torch.zeros(2, 3), torch.tensor([[0.0, 0, 1]]).expand(2, 3))


def test_latent_codes_change_shape_and_appearance_separately():
    torch.manual_seed(0)
    graf = VanillaField(BOX, VanillaFieldConfig(depth=2, width=32, skip=1, shape_latent=4, appearance_latent=4))
    x = torch.rand(64, 3) * 2 - 1
    d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    z = torch.randn(1, 8)
    other_shape = torch.cat([torch.randn(1, 4), z[:, 4:]], -1)
    other_look = torch.cat([z[:, :4], torch.randn(1, 4)], -1)
    base = graf(x, d, Conditioning(z))
    assert not torch.allclose(graf(x, d, Conditioning(other_shape)).sigma, base.sigma)
    look = graf(x, d, Conditioning(other_look))
    assert torch.equal(look.sigma, base.sigma) and not torch.allclose(look.rgb, base.rgb)  # appearance only
    per_point = graf(x, d, Conditioning(z.expand(64, 8)))
    assert torch.allclose(per_point.rgb, base.rgb) and torch.allclose(per_point.sigma, base.sigma)


def test_a_transformed_object_renders_as_the_moved_camera_sees_it():
    """Moving an object by ``t`` (world-to-object ``x - t``) is the same as moving the camera by ``-t``."""
    torch.manual_seed(0)
    field = build_field("ngp", BOX, {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64})
    sampler = StratifiedSampler(torch.full((6,), 100.0) * torch.tensor([-1, -1, -1, 1, 1, 1]),
                                StratifiedConfig(n_samples=96, near=1.5, far=5.5))  # the same t on both rays
    cams = orbit_cameras(1, 3.5, 20.0, 50.0, 12, 10)
    shift = torch.tensor([0.3, -0.2, 0.1])
    moved = Conditioning(transform=torch.cat([torch.eye(3), -shift[:, None]], 1)[None])
    rays = image_rays(cams, 0)
    seen = render_rays(field, sampler, rays, torch.zeros(3), moved)
    back = render_rays(field, sampler, Rays(rays.origins - shift, rays.directions), torch.zeros(3))
    assert float(seen.opacity.detach().max()) > 0.01
    assert torch.allclose(seen.rgb, back.rgb, atol=2e-4) and torch.allclose(seen.opacity, back.opacity, atol=2e-4)


def test_composition_adds_densities_and_mixes_by_density():
    red, blue = Slab(2.0, [1.0, 0, 0]), Slab(6.0, [0, 0, 1.0])
    x, d = torch.zeros(4, 3), torch.tensor([[0.0, 0, 1]]).expand(4, 3)
    out = ComposedField([red, blue])(x, d)
    assert torch.allclose(out.sigma, torch.full((4,), 8.0)) and torch.allclose(out.rgb[0], torch.tensor([0.25, 0, 0.75]))
    only_red = ComposedField([red, blue])(x, d, Conditioning(present=torch.tensor([[True, False]])))
    assert torch.allclose(only_red.sigma, torch.full((4,), 2.0)) and torch.allclose(only_red.rgb[0], torch.tensor([1.0, 0, 0]))
    assert compose([red(x, d), blue(x, d)]).rgb.shape == (4, 3)
    with pytest.raises(ValueError, match="as many channels"):
        ComposedField([red, Slab(1.0, [1.0, 0, 0, 0], features=True)])


def test_composed_objects_each_at_their_own_pose():
    """Two slabs in two slots, moved apart along x: rays above each see that one's colour."""
    red, blue = Slab(50.0, [1.0, 0, 0], half=0.1), Slab(50.0, [0, 0, 1.0], half=0.1)
    scene = ComposedField([red, blue])

    def pose(x: float):  # world-to-object: the slab stands upright at world x
        rotate = torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]])  # swaps x and z
        return torch.cat([rotate, -(rotate @ torch.tensor([x, 0.0, 0]))[:, None]], 1)

    cond = Conditioning(transform=torch.stack([pose(-0.5), pose(0.5)])[None])
    sampler = StratifiedSampler(BOX, StratifiedConfig(n_samples=256))
    left = render_rays(scene, sampler, down_rays(8, -0.5), torch.ones(3), cond)
    right = render_rays(scene, sampler, down_rays(8, 0.5), torch.ones(3), cond)
    assert (left.rgb[:, 0] > 0.95).all() and (left.rgb[:, 2] < 0.05).all()
    assert (right.rgb[:, 2] > 0.95).all() and (right.rgb[:, 0] < 0.05).all()


@pytest.mark.parametrize("channels", [3, 8])
def test_the_renderer_composites_any_number_of_channels(channels):
    values = torch.linspace(-1, 1, channels).tolist()
    field = Slab(3.0, values, features=channels != 3)
    sampler = StratifiedSampler(BOX, StratifiedConfig(n_samples=128))
    rays = down_rays(5)
    background = torch.full((channels,), 0.5)
    out = render_rays(field, sampler, rays, background)
    rendered = out.rgb if channels == 3 else out.features
    assert rendered.shape == (5, channels) and (out.rgb is None) == (channels != 3)
    samples = sampler.sample(rays)
    mids = rays.origins[samples.ray_indices] + rays.directions[samples.ray_indices] * (
        (samples.t_starts + samples.t_ends) / 2)[:, None]
    ref = volume_render_torch(samples.t_starts, samples.t_ends, field.density(mids),
                              torch.tensor(values).expand(len(samples), -1), samples.ray_indices, 5)
    assert torch.allclose(rendered, ref.color + (1 - ref.opacity[:, None]) * background, atol=1e-6)
    alpha = 1 - math.exp(-3.0 * 0.5)  # the slab is 0.5 thick
    assert torch.allclose(out.opacity, torch.full((5,), alpha), atol=0.02)


def test_stratified_samples_partition_the_ray_between_near_and_far():
    sampler = StratifiedSampler(BOX, StratifiedConfig(n_samples=16))
    rays = Rays(torch.tensor([[0.0, 0, -3], [5.0, 5, -3], [0.2, 0, 0]]), torch.tensor([[0.0, 0, 1]] * 3))
    fixed = sampler.sample(rays)
    assert fixed.ray_indices.tolist() == [0] * 16 + [2] * 16  # the second ray misses the box
    first = fixed.ray_indices == 0
    assert float(fixed.t_starts[first][0]) == pytest.approx(2.0) and float(fixed.t_ends[first][-1]) == pytest.approx(4.0)
    assert torch.allclose(fixed.t_starts[first][1:], fixed.t_ends[first][:-1])  # bins touch end to end
    assert float(fixed.t_starts[~first][0]) == pytest.approx(0.0)  # a ray that starts inside begins at 0
    torch.manual_seed(0)
    jittered = sampler.sample(rays, stratified=True)
    delta = 2.0 / 16
    mids = (jittered.t_starts[first] + jittered.t_ends[first]) / 2
    bins = torch.arange(16) * delta + 2.0
    assert ((mids >= bins) & (mids < bins + delta)).all() and not torch.allclose(mids, bins + delta / 2)
    assert torch.allclose((jittered.t_ends - jittered.t_starts)[first].sum(), torch.tensor(2.0))
    near_far = StratifiedSampler(BOX, StratifiedConfig(n_samples=4, near=2.5, far=3.0)).sample(rays[:1])
    assert float(near_far.t_starts[0]) == pytest.approx(2.5) and float(near_far.t_ends[-1]) == pytest.approx(3.0)


def test_both_samplers_render_the_same_slab():
    field = Slab(4.0, [0.2, 0.6, 0.9])
    rays = down_rays(6)
    grid = OccupancyGrid(BOX, 1, OccGridConfig(resolution=16, render_step_size=0.005, coarse_while_dense=False,
                                               early_stop_eps=0.0))
    strat = StratifiedSampler(BOX, StratifiedConfig(n_samples=400))
    a, b = render_rays(field, grid, rays, torch.zeros(3)), render_rays(field, strat, rays, torch.zeros(3))
    assert torch.allclose(a.rgb, b.rgb, atol=0.01) and torch.allclose(a.depth, b.depth, atol=0.01)
    assert torch.allclose(a.opacity, torch.full((6,), 1 - math.exp(-2.0)), atol=0.01)
