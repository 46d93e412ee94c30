"""Depth supervision from SfM points: targets that land on their points, and DS-NeRF's loss on
packed samples (minimal where the weights sit at the target, finite gradients through a field)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfgen.cameras import Cameras, orbit_cameras, pixel_rays
from nerfgen.data.transforms import SfMPoints
from nerfgen.fields import NGPField, NGPFieldConfig
from nerfgen.ops import RaySamples
from nerfgen.reconstruct.depth import DepthLossConfig, depth_loss, reprojection_weights, sfm_depth_targets
from nerfgen.render import StratifiedConfig, StratifiedSampler, render_rays
from nerfgen.render.renderer import RenderOutput, render_rays_chunked

BOX = torch.tensor([-1.0, -1, -1, 1, 1, 1])


def scene(distortion: bool = False) -> tuple[Cameras, np.ndarray]:
    cams = orbit_cameras(4, radius=3.0, elevation_deg=15.0, fov_x_deg=60.0, width=40, height=30)
    if distortion:
        cams.distortion = torch.tensor([[0.05, -0.01, 0.001, -0.002]]).expand(4, 4).contiguous()
    g = np.random.default_rng(0)
    return cams, g.uniform(-0.6, 0.6, size=(50, 3))


@pytest.mark.parametrize("distortion", [False, True], ids=["pinhole", "distorted"])
def test_targets_lie_on_their_points(distortion):
    """The ray through each target's pixel, followed for the target's distance, reaches the point."""
    cams, xyz = scene(distortion)
    visible = [np.arange(50), np.arange(0, 50, 2), np.arange(10), np.arange(25, 50)]
    points = SfMPoints(xyz, np.full(50, 0.5), visible)
    targets = sfm_depth_targets(cams, points)
    assert len(targets) == 50 + 25 + 10 + 25  # every point is in front of every camera and in view
    assert targets.cam_idx.dtype == torch.long and targets.t.dtype == cams.c2w.dtype
    rays = pixel_rays(cams, targets.cam_idx, targets.px, targets.py)
    ends = rays.origins + rays.directions * targets.t[:, None]
    expected = torch.cat([torch.as_tensor(xyz[v], dtype=torch.float32) for v in visible])
    torch.testing.assert_close(ends, expected, atol=1e-4, rtol=0)
    z = ((expected - cams.c2w[targets.cam_idx, :, 3]) * -cams.c2w[targets.cam_idx, :, 2]).sum(-1)
    assert (targets.t > z + 1e-3).any()  # a ray distance, not the z-depth
    torch.testing.assert_close(targets.weight, torch.full_like(targets.t, math.exp(-1.0)))


def test_points_behind_or_outside_the_image_are_dropped_and_empty_lists_handled():
    cams, xyz = scene()
    c2w = cams.c2w[0]
    behind = (c2w[:, 3] + 1.0 * c2w[:, 2]).numpy()  # one unit behind camera 0 (it looks down -z)
    aside = (c2w[:, 3] - 1.0 * c2w[:, 2] + 5.0 * c2w[:, 0]).numpy()  # in front, far to the right
    xyz = np.concatenate([xyz, behind[None], aside[None]])
    errors = np.concatenate([np.full(50, 1.0), [1.0, 1.0]])
    points = SfMPoints(xyz, errors, [np.array([0, 50, 51]), np.zeros(0, np.int64), np.array([3]), np.array([], int)])
    targets = sfm_depth_targets(cams, points)
    assert targets.cam_idx.tolist() == [0, 2]
    none = sfm_depth_targets(cams, SfMPoints(xyz, errors, [np.zeros(0, np.int64)] * 4))
    assert len(none) == 0 and none.cam_idx.dtype == torch.long
    with pytest.raises(ValueError, match="no depth targets"):
        none.sample(8, torch.Generator().manual_seed(0))
    # images of their own sizes: a point right of camera 2's narrower image is dropped there only
    seen = [np.arange(50)] * 4
    full = sfm_depth_targets(cams, SfMPoints(xyz, errors, seen))
    sizes = torch.tensor([[40, 30], [40, 30], [20, 30], [40, 30]])
    narrow = sfm_depth_targets(cams, SfMPoints(xyz, errors, seen), sizes=sizes)
    right = (full.cam_idx == 2) & (full.px >= 20)
    assert right.any() and len(narrow) == len(full) - int(right.sum())
    assert not ((narrow.cam_idx == 2) & (narrow.px >= 20)).any()
    with pytest.raises(ValueError, match="3 visibility lists for 4 cameras"):
        sfm_depth_targets(cams, SfMPoints(xyz, errors, [np.arange(3)] * 3))
    with pytest.raises(ValueError, match="outside"):
        sfm_depth_targets(cams, SfMPoints(xyz, errors, [np.array([52])] * 4))


def test_weights_follow_reprojection_error():
    w = reprojection_weights(np.array([0.0, 0.5, 1.0, 2.5]))  # mean error 1
    torch.testing.assert_close(w, torch.exp(-torch.tensor([0.0, 0.25, 1.0, 6.25], dtype=torch.float64)))
    assert reprojection_weights(np.zeros(3)).tolist() == [1.0, 1.0, 1.0]
    cams, xyz = scene()
    errors = np.linspace(0.1, 2.0, 50)
    targets = sfm_depth_targets(cams, SfMPoints(xyz, errors, [np.array([7, 49])] * 4))
    expected = reprojection_weights(errors)[[7, 49]].float().repeat(4)
    torch.testing.assert_close(targets.weight, expected)


def test_sampling_draws_targets_reproducibly():
    cams, xyz = scene()
    targets = sfm_depth_targets(cams, SfMPoints(xyz, np.ones(50), [np.arange(50)] * 4))
    a = targets.sample(64, torch.Generator().manual_seed(5))
    b = targets.sample(64, torch.Generator().manual_seed(5))
    assert len(a) == 64 and torch.equal(a.t, b.t) and torch.equal(a.cam_idx, b.cam_idx)
    rows = {(int(c), float(x), float(y)) for c, x, y in zip(targets.cam_idx, targets.px, targets.py)}
    assert all((int(c), float(x), float(y)) in rows for c, x, y in zip(a.cam_idx, a.px, a.py))


def packed(weights: list[torch.Tensor], width: float = 0.02) -> RenderOutput:
    """Rays of the same uniform bins from 0, with the given compositing weights (packed)."""
    n_bins = weights[0].shape[0]
    starts = torch.arange(n_bins, dtype=torch.float64) * width
    samples = RaySamples(starts.repeat(len(weights)), (starts + width).repeat(len(weights)),
                         torch.arange(len(weights)).repeat_interleave(n_bins), len(weights))
    w = torch.cat(weights)
    mids = (samples.t_starts + samples.t_ends) / 2
    opacity = torch.zeros(len(weights), dtype=w.dtype).index_add(0, samples.ray_indices, w)
    depth = torch.zeros_like(opacity).index_add(0, samples.ray_indices, w * mids) / opacity.clamp(min=1e-6)
    return RenderOutput(None, depth, opacity, len(samples), weights=w, samples=samples)


def bump(center: float, spread: float = 0.05, n_bins: int = 200, width: float = 0.02) -> torch.Tensor:
    mids = (torch.arange(n_bins, dtype=torch.float64) + 0.5) * width
    w = torch.exp(-((mids - center) ** 2) / (2 * spread**2))
    return 0.95 * w / w.sum()  # most of the ray's weight, like a solid surface


def test_ds_loss_is_smallest_when_the_weights_sit_at_the_target():
    target, one = torch.tensor([2.0], dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    at = float(depth_loss(packed([bump(2.0)]), target, one, sigma=0.05))
    for center in (1.5, 1.9, 1.97, 2.03, 2.1, 3.0):
        assert at < float(depth_loss(packed([bump(center)]), target, one, sigma=0.05)), center
    flat = torch.full((200,), 0.95 / 200, dtype=torch.float64)
    assert at < float(depth_loss(packed([flat]), target, one, sigma=0.05))
    # the cross-entropy's minimiser over distributions is the Gaussian itself (Gibbs' inequality)
    matched = float(depth_loss(packed([bump(2.0, spread=0.05)]), target, one, sigma=0.05))
    for spread in (0.02, 0.035, 0.07, 0.1):
        assert matched < float(depth_loss(packed([bump(2.0, spread=spread)]), target, one, sigma=0.05)), spread


def test_ds_loss_on_packed_rays_is_the_weighted_mean_of_per_ray_losses():
    a, b = bump(1.0), bump(3.0)
    t = torch.tensor([1.2, 2.0], dtype=torch.float64)
    both = depth_loss(packed([a, b]), t, torch.tensor([1.0, 0.25], dtype=torch.float64), sigma=0.1)
    first = depth_loss(packed([a]), t[:1], torch.ones(1, dtype=torch.float64), sigma=0.1)
    second = depth_loss(packed([b]), t[1:], torch.ones(1, dtype=torch.float64), sigma=0.1)
    torch.testing.assert_close(both, (first + 0.25 * second) / 2)
    per_ray_sigma = depth_loss(packed([a, b]), t, torch.tensor([1.0, 0.25], dtype=torch.float64),
                               sigma=torch.tensor([0.1, 0.1], dtype=torch.float64))
    torch.testing.assert_close(per_ray_sigma, both)
    ignored = depth_loss(packed([a, b]), t, torch.tensor([1.0, 0.0], dtype=torch.float64), sigma=0.1)
    torch.testing.assert_close(ignored, first / 2)


def test_l2_loss_is_the_expected_distance_error():
    out = packed([bump(2.0), bump(1.0)])
    t = out.depth.detach().clone()
    zero = depth_loss(out, t, torch.ones(2, dtype=torch.float64), mode="l2")
    assert float(zero) == 0.0
    off = depth_loss(out, t + torch.tensor([0.3, -0.1], dtype=torch.float64), torch.ones(2, dtype=torch.float64),
                     mode="l2")
    torch.testing.assert_close(off, torch.tensor((0.09 + 0.01) / 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="mode must be"):
        depth_loss(out, t, torch.ones(2, dtype=torch.float64), mode="kl")
    with pytest.raises(ValueError, match=r"\[2\]"):
        depth_loss(out, t[:1], torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["ds", "l2"])
def test_gradients_through_a_rendered_field_are_finite_and_pull_towards_the_target(mode):
    torch.manual_seed(0)
    field = NGPField(BOX, NGPFieldConfig(n_levels=4, log2_table_size=10, hidden=16))
    sampler = StratifiedSampler(BOX, StratifiedConfig(n_samples=64))
    cams, xyz = scene()
    targets = sfm_depth_targets(cams, SfMPoints(xyz, np.linspace(0.0, 3.0, 50), [np.arange(50)] * 4))
    batch = targets.sample(32, torch.Generator().manual_seed(1))
    rays = pixel_rays(cams, batch.cam_idx, batch.px, batch.py)
    out = render_rays(field, sampler, rays, torch.zeros(3))
    loss = depth_loss(out, batch.t, batch.weight, sigma=0.1, mode=mode)
    loss.backward()
    grads = [p.grad for p in field.parameters() if p.grad is not None]
    assert math.isfinite(float(loss.detach())) and grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # a small step along the gradient lowers the loss
    with torch.no_grad():
        for p in field.parameters():
            if p.grad is not None:
                p -= 1e-3 * p.grad / max(float(p.grad.abs().max()), 1e-12)
        after = depth_loss(render_rays(field, sampler, rays, torch.zeros(3)), batch.t, batch.weight, 0.1, mode)
    assert float(after) < float(loss.detach())


def test_ds_loss_needs_the_packed_samples_and_empty_batches_are_zero():
    field = NGPField(BOX, NGPFieldConfig(n_levels=2, log2_table_size=8, hidden=8))
    sampler = StratifiedSampler(BOX, StratifiedConfig(n_samples=8))
    cams, _ = scene()
    rays = pixel_rays(cams, torch.tensor([0, 1]), torch.tensor([20.0, 20.0]), torch.tensor([15.0, 15.0]))
    out = render_rays_chunked(field, sampler, rays, torch.zeros(3))
    with pytest.raises(ValueError, match="packed weights"):
        depth_loss(out, torch.ones(2), torch.ones(2))
    nothing = torch.zeros(0)
    empty = RenderOutput(None, nothing, nothing, 0, weights=nothing,
                         samples=RaySamples(nothing, nothing, torch.zeros(0, dtype=torch.long), 0))
    for mode in ("ds", "l2"):
        assert float(depth_loss(empty, nothing, nothing, mode=mode)) == 0.0


def test_config_validation():
    DepthLossConfig(weight=0.1).validate("test")
    with pytest.raises(ValueError, match="sigma > 0"):
        DepthLossConfig(sigma=0.0).validate("test")
    with pytest.raises(ValueError, match="ds or l2"):
        DepthLossConfig(mode="kl").validate("test")
