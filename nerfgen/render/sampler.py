"""Where along each ray a field is sampled: one interface, several samplers (nerfacc's estimators).

A sampler places packed samples on rays, ``sample(rays, sigma_fn, cond=...) -> RaySamples``, and
may keep state that it refreshes from the field during training, ``update(step, density_fn)``.
``cond`` is the rays' conditioning: a sampler whose state depends on it (an occupancy grid per
time bin of a dynamic scene, :mod:`nerfgen.render.time_occupancy`) reads it; the others ignore it. The
renderer calls nothing else, so an occupancy grid (bounded scenes, fast), a plain stratified
sampler between near and far (a GAN: a new scene per latent code, nothing to cache) and proposal
density networks (unbounded captures, :mod:`nerfgen.render.proposal`) are interchangeable; a
sampler with losses of its own returns them from ``losses(output)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from nerfgen.cameras import Rays
from nerfgen.distributed import SINGLE, World
from nerfgen.fields import Conditioning
from nerfgen.ops import RaySamples, ray_aabb_intersect

if TYPE_CHECKING:
    from nerfgen.render.renderer import RenderOutput

SigmaFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``sigma_fn(t_starts [m], t_ends [m], ray_indices [m]) -> sigmas [m]`` of the rays' samples."""
DensityFn = Callable[..., Tensor]
"""``density_fn(positions [m, 3]) -> sigmas [m]`` (a field's ``density``; samplers of dynamic
scenes also pass the points' conditioning, ``density_fn(positions, cond)``)."""


class Sampler(nn.Module):
    """Places samples on rays.

    Args:
        aabb: ``[6]`` the region samples may fall in (the field's box).
    """

    early_stop_eps: float = 0.0
    """Transmittance below which compositing may stop a ray (0: never)."""

    def __init__(self, aabb: Tensor) -> None:
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone(), persistent=False)

    def preview(self) -> Sampler:
        """The sampler for frames shown while a viewer's camera moves (fewer samples, coarser);
        this one where it has nothing coarser."""
        return self

    @property
    def outer_aabb(self) -> Tensor:
        """``[6]`` the box every sample lies in (what the field must cover)."""
        return self.aabb

    def sample(self, rays: Rays, sigma_fn: SigmaFn | None = None, stratified: bool = False,
               cond: Conditioning | None = None, defer_termination: bool = False) -> RaySamples:
        """Samples of ``rays`` (no gradient flows through their positions).

        Args:
            rays: ``[n_rays]`` rays with unit directions.
            sigma_fn: the field's density at samples, for samplers that skip occluded space.
            stratified: jitter the samples (training) rather than take fixed positions.
            cond: the rays' conditioning (per ray or shared), for samplers whose state depends
                on it (a dynamic scene's time); ignored by the others.
            defer_termination: a render without gradients: where the rays are short, a sampler
                that terminates rays may leave that to compositing (``early_stop_eps``) rather than
                evaluate the density first; shading a sample that compositing then drops costs less
                than a second pass over the field.
        """
        raise NotImplementedError

    def update(self, step: int, density_fn: DensityFn, world: World = SINGLE) -> bool:
        """Refresh cached state from the field at training step ``step``; True if it changed.
        State that depends on random draws is reduced over ``world`` so it stays the same on
        every rank of a job."""
        return False

    def losses(self, output: RenderOutput) -> dict[str, Tensor]:
        """The sampler's own loss terms on a training render ``output`` of its last samples, ready
        to add to the task's loss (a proposal sampler's interlevel and distortion); none by default."""
        return {}

    def occupied(self, positions: Tensor) -> Tensor:
        """``[n]`` bool: which of ``positions [n, 3]`` may hold anything (all of the box by default)."""
        lo, hi = self.outer_aabb[:3], self.outer_aabb[3:]
        return ((positions >= lo) & (positions <= hi)).all(-1)

    def occupancy_fraction(self) -> float:
        """Fraction of the box that may hold anything."""
        return 1.0


def stratified_midpoints(t0: Tensor, t1: Tensor, n: int, stratified: bool) -> Tensor:
    """``[rays, n]`` the midpoints of ``n`` equal bins between ``t0 [rays]`` and ``t1 [rays]``,
    jittered uniformly in their bins when ``stratified``."""
    bins = torch.arange(n, device=t0.device, dtype=t0.dtype)[None]
    u = torch.rand(t0.shape[0], n, device=t0.device) if stratified else torch.full_like(bins, 0.5)
    return t0[:, None] + (bins + u) * ((t1 - t0) / n)[:, None]


@dataclass
class StratifiedConfig:
    """A fixed number of stratified samples per ray (NeRF's coarse sampling, GRAF)."""

    n_samples: int = 64
    """Samples per ray."""
    near: float = 0.0
    """Smallest ray distance sampled (0: where the ray enters the box)."""
    far: float = 0.0
    """Largest ray distance sampled (0: where the ray leaves the box)."""

    def validate(self, source: str) -> None:
        if self.n_samples < 1:
            raise ValueError(f"{source}: n_samples: expected at least 1, got {self.n_samples}")
        if not 0 <= self.near < 1e6 or not 0 <= self.far < 1e6:
            raise ValueError(f"{source}: near and far: expected distances in [0, 1e6), got {self.near} and {self.far}")
        if self.far and self.far <= self.near:
            raise ValueError(f"{source}: far ({self.far}) must exceed near ({self.near})")


class StratifiedSampler(Sampler):
    r"""``n_samples`` equal intervals between near and far on every ray that meets the box.

    Interval :math:`i` spans :math:`[t_0 + (i + u_i - \tfrac12)\delta, t_0 + (i + u_i + \tfrac12)\delta]`
    with :math:`\delta = (t_1 - t_0) / n`: centred in its bin (:math:`u_i = \tfrac12`), or with
    :math:`u_i \sim U[0, 1)` drawn per sample when stratified, so the sample lies anywhere in its
    bin (NeRF's stratified sampling); the intervals' lengths always add up to :math:`t_1 - t_0`.

    Args:
        aabb: ``[6]`` the box rays are clipped to.
        config: samples per ray and near/far planes.
    """

    def __init__(self, aabb: Tensor, config: StratifiedConfig | None = None) -> None:
        super().__init__(aabb)
        self.config = config or StratifiedConfig()

    @torch.no_grad()
    def sample(self, rays: Rays, sigma_fn: SigmaFn | None = None, stratified: bool = False,
               cond: Conditioning | None = None, defer_termination: bool = False) -> RaySamples:
        cfg, n = self.config, self.config.n_samples
        t_min, t_max, hit = ray_aabb_intersect(rays.origins, rays.directions, self.aabb[None])
        t0, t1 = t_min[:, 0].clamp(min=cfg.near), t_max[:, 0]
        if cfg.far > 0:
            t1 = t1.clamp(max=cfg.far)
        rays_hit = torch.nonzero(hit[:, 0] & (t1 > t0))[:, 0]  # [m]
        t0, t1 = t0[rays_hit, None], t1[rays_hit, None]
        delta = (t1 - t0) / n  # [m, 1]
        mids = stratified_midpoints(t0[:, 0], t1[:, 0], n, stratified)  # [m, n]
        return RaySamples((mids - 0.5 * delta).reshape(-1), (mids + 0.5 * delta).reshape(-1),
                          rays_hit.repeat_interleave(n), rays.origins.shape[0])
