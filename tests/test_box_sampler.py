"""The object-box sampler: intervals that tile each ray's span of the scene box, samples inside
every object's cube a ray crosses, and the same render as a dense stratified sampler."""

from __future__ import annotations

import pytest
import torch

from nerfgen.gan.config import CameraPrior, FieldSize, GanConfig, ObjectPrior
from nerfgen.gan.generator import OBJECT_BOX, build_generator
from nerfgen.gan.priors import prior_cameras, sample_codes
from nerfgen.render import StratifiedConfig, StratifiedSampler
from nerfgen.render.box_sampler import ObjectBoxSampler

CAMERA = CameraPrior(fov=56.0, distance=(4.5, 4.5), elevation=(40.0, 40.0), azimuth=(0.0, 0.0))


def _scene(object_samples: int = 6, seed: int = 0):
    cfg = GanConfig(size=32, features=4, upsample=1, shape_latent=4, appearance_latent=4, field=FieldSize(2, 16, 2, 1),
                    background_field=FieldSize(1, 16, 2, 1), aabb=(-3.0, -3.0, -0.2, 3.0, 3.0, 1.0), camera=CAMERA,
                    objects=ObjectPrior(count=(2, 3), scale=(0.3, 0.4)), sampler=StratifiedConfig(n_samples=8),
                    object_samples=object_samples)
    torch.manual_seed(seed)
    gen = build_generator(cfg)
    codes = sample_codes(1, 4, 4, cfg.objects, cfg.camera, torch.Generator().manual_seed(seed), cfg.slots)
    cameras = prior_cameras(cfg.camera, codes.views, cfg.size)
    return gen, codes, cameras


@pytest.mark.parametrize("stratified", [False, True])
def test_intervals_tile_the_box_span_and_each_crossed_cube_gets_its_samples(stratified):
    gen, codes, cameras = _scene(object_samples=12)
    rays, cond = gen.rays(cameras, 0), gen.conditioning(codes, 0)
    samples = gen.sampler.sample(rays, stratified=stratified, cond=cond)
    starts, ends, ray = samples.t_starts, samples.t_ends, samples.ray_indices
    assert (ray[1:] >= ray[:-1]).all() and (ends > starts).all()
    same = ray[1:] == ray[:-1]
    assert torch.equal(starts[1:][same], ends[:-1][same])  # no gaps, no overlaps
    reference = StratifiedSampler(gen.sampler.aabb, StratifiedConfig(n_samples=8)).sample(rays)
    first = torch.ones_like(ray, dtype=torch.bool)
    first[1:] = ~same
    last = torch.ones_like(first)
    last[:-1] = ~same
    ref_first = torch.ones_like(reference.ray_indices, dtype=torch.bool)
    ref_first[1:] = reference.ray_indices[1:] != reference.ray_indices[:-1]
    assert torch.allclose(starts[first], reference.t_starts[ref_first])  # where the ray enters the box
    mids = 0.5 * (starts + ends)
    points = rays.origins[ray] + mids[:, None] * rays.directions[ray]
    transforms = cond.transform[0]
    inside = torch.stack([(((points @ transforms[k, :, :3].T + transforms[k, :, 3]).abs() <= 1 + 1e-4).all(-1))
                          for k in range(codes.slots)])  # [K, m]
    present = codes.present[0]
    for k in range(codes.slots):
        alone = inside[k] & ~inside[present & (torch.arange(codes.slots) != k)].any(0)
        per_ray = torch.zeros(len(rays), dtype=torch.long).index_add_(0, ray[alone], torch.ones_like(ray[alone]))
        if bool(present[k]):
            assert (per_ray > 0).sum() > 4, f"object {k} got no samples"
            assert per_ray.max() >= 12  # its own samples, on top of any stratified one
    if not stratified and not present.all():  # an absent object places nothing: as if it were far away
        far = cond.transform.clone()
        far[0, :-1, :, 3] = torch.where(present[:, None], far[0, :-1, :, 3], torch.tensor(100.0))
        moved = gen.sampler.sample(rays, cond=type(cond)(latent=cond.latent, transform=far, present=cond.present))
        assert torch.equal(moved.t_starts, starts) and torch.equal(moved.ray_indices, ray)
    assert last.sum() == len(torch.unique(ray))


def test_it_renders_what_a_dense_stratified_sampler_renders_and_the_sparse_one_does_not():
    gen, codes, cameras = _scene(object_samples=16, seed=3)
    with torch.no_grad():
        box = gen.scene_rays(codes, cameras, 0).opacity
        gen.sampler = StratifiedSampler(gen.sampler.aabb, StratifiedConfig(n_samples=1024))
        dense = gen.scene_rays(codes, cameras, 0).opacity
        gen.sampler = StratifiedSampler(gen.sampler.aabb, StratifiedConfig(n_samples=8))
        sparse = gen.scene_rays(codes, cameras, 0).opacity
    assert (box - dense).abs().max() < 0.5 * (sparse - dense).abs().max()


def test_it_needs_the_scene_and_at_least_one_sample_per_box():
    with pytest.raises(ValueError, match="per_box"):
        ObjectBoxSampler(torch.tensor([-1.0, -1, -1, 1, 1, 1]), StratifiedConfig(4), torch.tensor(OBJECT_BOX), 0)
    gen, codes, cameras = _scene()
    with pytest.raises(ValueError, match="conditioning"):
        gen.sampler.sample(gen.rays(cameras, 0))


def test_giraffe_renders_through_it_with_gradients_to_both_fields():
    gen, codes, cameras = _scene(object_samples=4)
    assert isinstance(gen.sampler, ObjectBoxSampler)
    image = gen(codes, cameras, stratified=True)
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()
    image.mean().backward()
    for field in (gen.object_field, gen.background_field):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in field.parameters())
