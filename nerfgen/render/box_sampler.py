"""Samples where a composed scene's objects are: stratified samples over the scene's box, plus a
fixed number in each object's own cube a ray crosses (GIRAFFE's objects, a few pixels across,
otherwise fall between two stratified samples).

The union of both sets is sorted along each ray and cut into intervals at the midpoints between
neighbours, so the intervals still tile the ray's span of the scene box (as the stratified ones
do) and volume rendering stays what it was, with finer intervals inside the objects.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nerfgen.cameras import Rays
from nerfgen.fields import Conditioning
from nerfgen.ops import RaySamples, ray_aabb_intersect
from nerfgen.render.sampler import SigmaFn, StratifiedConfig, StratifiedSampler, stratified_midpoints


def _cube_spans(rays: Rays, transform: Tensor, box: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Where each ray enters and leaves ``box`` in the frame of the affine ``transform [3, 4]``
    (world to local): ``t_in [n], t_out [n], hit [n]``, in the world ray's own parameter (an
    affine map keeps the ray's parameter, so the local ray's direction is not normalised)."""
    a, b = transform[:, :3], transform[:, 3]
    t_in, t_out, hit = ray_aabb_intersect(rays.origins @ a.T + b, rays.directions @ a.T, box[None])
    return t_in[:, 0], t_out[:, 0], hit[:, 0]


class ObjectBoxSampler(StratifiedSampler):
    """``config.n_samples`` stratified samples over ``aabb`` and ``per_box`` in each object's cube.

    Args:
        aabb: ``[6]`` the scene's box.
        config: the stratified samples over it.
        box: ``[6]`` every object's cube in its own frame.
        per_box: samples in each cube a ray crosses.

    ``sample(..., cond=...)`` reads the objects from the scene's conditioning: every slot of
    ``cond.transform [1, K + 1, 3, 4]`` but the last (the background) is an object, there when
    ``cond.present [1, K + 1]`` says so.
    """

    def __init__(self, aabb: Tensor, config: StratifiedConfig, box: Tensor, per_box: int) -> None:
        super().__init__(aabb, config)
        if per_box < 1:
            raise ValueError(f"ObjectBoxSampler: per_box must be >= 1, got {per_box}")
        self.register_buffer("box", torch.as_tensor(box, dtype=torch.float32).clone(), persistent=False)
        self.per_box = per_box

    @torch.no_grad()
    def sample(self, rays: Rays, sigma_fn: SigmaFn | None = None, stratified: bool = False,
               cond: Conditioning | None = None, defer_termination: bool = False) -> RaySamples:
        if cond is None or cond.transform is None:
            raise ValueError("ObjectBoxSampler: the scene's conditioning (its objects' transforms) is needed")
        cfg, n_rays = self.config, rays.origins.shape[0]
        t_min, t_max, hit = ray_aabb_intersect(rays.origins, rays.directions, self.aabb[None])
        t0, t1 = t_min[:, 0].clamp(min=cfg.near), t_max[:, 0]
        if cfg.far > 0:
            t1 = t1.clamp(max=cfg.far)
        hit = hit[:, 0] & (t1 > t0)
        mids = [stratified_midpoints(t0, t1, cfg.n_samples, stratified)]
        transforms, present = cond.transform[0], None if cond.present is None else cond.present[0]
        for k in range(transforms.shape[0] - 1):
            t_in, t_out, crossed = _cube_spans(rays, transforms[k], self.box)
            if present is not None:
                crossed = crossed & present[k]
            t_in, t_out = torch.maximum(t_in, t0), torch.minimum(t_out, t1)
            inside = stratified_midpoints(t_in, t_out, self.per_box, stratified)
            mids.append(torch.where((crossed & (t_out > t_in))[:, None], inside, torch.inf))
        mids = torch.cat(mids, -1).sort(-1).values  # [n, N], the misses (inf) last
        valid = mids.isfinite() & hit[:, None]
        between = 0.5 * (mids[:, 1:] + mids[:, :-1])
        starts = torch.cat([t0[:, None], between], -1)
        ends = torch.where(valid[:, 1:], between, t1[:, None])
        ends = torch.cat([ends, t1[:, None]], -1)
        ray_indices = torch.arange(n_rays, device=mids.device)[:, None].expand_as(mids)
        return RaySamples(starts[valid], ends[valid], ray_indices[valid], n_rays)
