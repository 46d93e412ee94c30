"""Empty space skipped when a generalizable model renders: the per-scene occupancy pass covers what
the density holds and nothing far from it, the skipping sampler keeps exactly the stratified samples
in occupied cells (or whole rays for a ray module), and renders match the whole-box ones."""

from __future__ import annotations

import torch

from nerfgen.cameras import Rays
from nerfgen.fields import Conditioning, FieldOutput, RadianceField
from nerfgen.generalize.occupancy import SkipEmptySampler, scene_occupancy
from nerfgen.render import StratifiedConfig, StratifiedSampler, render_rays

BOX = torch.tensor([-1.0, -1, -1, 1, 1, 1])


class Ball(RadianceField):
    """Density 50 inside a ball of radius 0.3 at (0.4, 0, 0), nothing elsewhere; red."""

    accepts = frozenset({"views"})

    def density(self, positions, cond=None):
        return 50.0 * ((positions - torch.tensor([0.4, 0.0, 0.0])).norm(dim=-1) < 0.3).float()

    def forward(self, positions, directions, cond=None):
        return FieldOutput(self.density(positions), torch.tensor([1.0, 0.0, 0.0]).expand(len(positions), 3))


def rays_through_box(n: int = 64) -> Rays:
    g = torch.Generator().manual_seed(0)
    origins = torch.tensor([3.0, 0.0, 0.0]) + torch.randn(n, 3, generator=g) * torch.tensor([0.0, 0.5, 0.5])
    return Rays(origins, torch.tensor([[-1.0, 0.0, 0.0]]).expand(n, 3).contiguous())


def test_the_occupancy_pass_covers_the_density_and_not_far_from_it():
    occupied = scene_occupancy(Ball(BOX), Conditioning(), 16, 0.01, 0.05)
    assert occupied.shape == (16, 16, 16)
    centres = (torch.stack(torch.meshgrid(*[torch.arange(16)] * 3, indexing="ij"), -1).float() + 0.5) / 16 * 2 - 1
    distance = (centres - torch.tensor([0.4, 0.0, 0.0])).norm(dim=-1)
    assert occupied[distance < 0.3].all()  # every cell whose centre is in the ball
    assert not occupied[distance > 0.3 + 3 * 0.125 * 3 ** 0.5].any()  # nothing beyond the one-cell margin
    assert 0.005 < occupied.float().mean() < 0.1


def test_skipping_keeps_the_stratified_samples_in_occupied_cells_and_renders_the_same():
    field, rays = Ball(BOX), rays_through_box()
    inner = StratifiedSampler(BOX, StratifiedConfig(n_samples=64))
    occupied = scene_occupancy(field, Conditioning(), 16, 0.01, 2 * 3 ** 0.5 / 64)
    all_samples = inner.sample(rays)
    for whole_rays in (False, True):
        sampler = SkipEmptySampler(inner, occupied, whole_rays)
        kept = sampler.sample(rays)
        assert 0 < len(kept) < len(all_samples)
        starts = set(zip(all_samples.ray_indices.tolist(), all_samples.t_starts.tolist()))
        assert set(zip(kept.ray_indices.tolist(), kept.t_starts.tolist())) <= starts  # a subset, same positions
        mids = rays.origins[kept.ray_indices] + rays.directions[kept.ray_indices] * (
            (kept.t_starts + kept.t_ends) / 2)[:, None]
        if whole_rays:  # every sample of the rays that meet an occupied cell
            counts = torch.bincount(kept.ray_indices, minlength=len(rays))
            assert set(counts.tolist()) <= {0, 64}
        else:
            assert sampler.occupied(mids).all()
        with torch.no_grad():
            full = render_rays(field, inner, rays, torch.ones(3))
            skipped = render_rays(field, sampler, rays, torch.ones(3))
        assert torch.allclose(full.rgb, skipped.rgb, atol=1e-5)
        assert full.opacity.max() > 0.9 and full.opacity.min() < 0.01  # some rays hit the ball, some miss
