"""Empty space skipped when a generalizable model renders a scene: an occupancy grid per scene,
from one coarse pass of the field's density over the scene box.

A trained per-scene run keeps an occupancy grid it refreshes while training; a generalizable model
meets every scene new. Once per scene (with its encoding), the field's density is read at the
centre of every cell; a cell is occupied when its centre would be opaque beyond ``threshold`` over
the longest step the sampler takes, and the occupied cells grow by one cell (what lies between the
centres). Rendering then keeps only the stratified samples that fall in
occupied cells, or, for a field that reads along its rays (IBRNet's ray module, whose density
depends on the ray's samples), every sample of each ray that meets an occupied cell: the samples
those rays were trained with. Training always samples the whole box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.fields import Conditioning, RadianceField
from nerfgen.ops import RaySamples, grid_lookup
from nerfgen.render import Sampler, StratifiedSampler

CHUNK = 1 << 15
"""Lattice points read at once."""


@dataclass
class SkipConfig:
    """The per-scene occupancy grid used when rendering."""

    resolution: int = 32
    """Cells per side of the scene box (0: sample the whole box, as in training)."""
    threshold: float = 0.05
    """Opacity over one sampler step below which a point is empty."""

    def validate(self, source: str) -> None:
        if self.resolution < 0 or not 0 < self.threshold < 1:
            raise ValueError(f"{source}: resolution >= 0 and 0 < threshold < 1 expected, got {self.resolution} "
                             f"and {self.threshold}")


@torch.no_grad()
def scene_occupancy(field: RadianceField, cond: Conditioning, resolution: int, threshold: float,
                    step: float) -> Tensor:
    """``[resolution]^3`` bool: the cells of ``field``'s box that may hold anything in the scene
    ``cond`` describes (see the module's notes); ``step`` the sampler's longest step."""
    lo, hi = field.aabb[:3], field.aabb[3:]
    axis = (torch.arange(resolution, device=lo.device, dtype=lo.dtype) + 0.5) / resolution
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    points = lo + grid * (hi - lo)
    sigma = torch.cat([field.density(chunk, cond) for chunk in points.split(CHUNK)])
    opaque = ((1 - torch.exp(-sigma * step)) > threshold).view(1, 1, resolution, resolution, resolution)
    return F.max_pool3d(opaque.float(), 3, stride=1, padding=1)[0, 0] > 0


class SkipEmptySampler(Sampler):
    """A stratified sampler's samples, less those in empty cells of one scene's occupancy grid.

    Args:
        inner: the stratified sampler the model trains with.
        occupied: ``[res, res, res]`` bool over the inner sampler's box.
        whole_rays: keep every sample of a ray that meets an occupied cell (a ray module's field),
            rather than the occupied samples only.
    """

    def __init__(self, inner: StratifiedSampler, occupied: Tensor, whole_rays: bool) -> None:
        super().__init__(inner.aabb)
        self.inner, self.whole_rays = inner, whole_rays
        self.config = inner.config
        self.register_buffer("binaries", occupied[None], persistent=False)

    @torch.no_grad()
    def sample(self, rays, sigma_fn=None, stratified: bool = False, cond: Conditioning | None = None,
               defer_termination: bool = False) -> RaySamples:
        samples = self.inner.sample(rays, stratified=stratified)
        ri = samples.ray_indices
        mids = rays.origins[ri] + rays.directions[ri] * ((samples.t_starts + samples.t_ends) * 0.5)[:, None]
        keep = grid_lookup(mids, self.binaries, self.aabb[None])
        if self.whole_rays:
            hit = torch.zeros(samples.n_rays, dtype=torch.bool, device=ri.device)
            keep = hit.index_fill_(0, ri[keep], True)[ri]
        return samples.masked(keep)

    def occupied(self, positions: Tensor) -> Tensor:
        return grid_lookup(positions, self.binaries, self.aabb[None])

    def occupancy_fraction(self) -> float:
        return float(self.binaries.float().mean())


__all__ = ["SkipConfig", "SkipEmptySampler", "scene_occupancy"]
