"""Occupancy-grid sampler: which parts of space hold anything, to skip empty space (instant-ngp)."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.cameras import Rays
from nerfgen.distributed import SINGLE, World
from nerfgen.fields import Conditioning
from nerfgen.ops import RaySamples, grid_lookup, traverse_grids, volume_render
from nerfgen.render.sampler import DensityFn, Sampler, SigmaFn


PREVIEW_STEP = 2.0
"""How many times longer a preview's marching steps are (:meth:`OccupancyGrid.preview`)..."""
PREVIEW_DIAGONAL_STEPS = 256
"""... and at least the box diagonal over this: a field trained at 1024 steps across the box
(``configs/ngp_fine.yaml``) previews lego at 256x256 in 155 ms a frame instead of 233 (two threads),
28.4 dB against the ground truth instead of 30.3 (30.6 at its full march; 8 test views)."""
PREVIEW_EARLY_STOP = 1e-2
"""Transmittance at which a preview stops a ray."""
PREVIEW_MARCH_ROUND = 8
"""Samples a preview's rays advance per round of early termination (its rays are half as long;
lego at 256x256, one thread: 280 ms a frame against 330 ms with the training's 32)."""


@dataclass
class OccGridConfig:
    """Occupancy grid and sampling settings."""

    resolution: int = 64
    """Cells per axis of each cascade (instant-ngp uses 128; 64 keeps grid updates cheap on a CPU)."""
    render_step_size: float = 0.0
    """Smallest step along rays; 0 picks the box diagonal / ``diagonal_steps``."""
    diagonal_steps: int = 1024
    """Steps across the box diagonal when ``render_step_size`` is 0 (instant-ngp: 1024); with
    ``pixel_step``, the finest step it may pick."""
    pixel_step: float = 0.0
    """Reconstruction: the step as this many of the training views' pixel footprints at the box
    centre (the median of camera distance over focal length), between ``diagonal_steps`` and
    ``min_diagonal_steps`` steps across the diagonal; recorded as ``render_step_size`` when the run
    starts (:meth:`for_footprint`). Large images of a small object get fine steps, small images
    coarse ones (and twice or three times the rays a step). 0: off."""
    min_diagonal_steps: int = 342
    """With ``pixel_step``, the coarsest step it may pick (steps across the box diagonal)."""
    cone_angle: float = -1.0
    """Step growth with distance; -1 picks 0 for one cascade, 1/256 for several (instant-ngp)."""
    near_plane: float = 0.05
    """Closest sample to the camera."""
    occ_threshold: float = 0.01
    """Opacity (``sigma * step``) above which a cell counts as occupied."""
    ema_decay: float = 0.95
    """Decay of a cell's stored opacity at each update."""
    update_every: int = 16
    """Steps between grid updates."""
    cells_per_update: int = 1 << 18
    """Uniformly drawn cells evaluated per update (besides the occupied ones)."""
    early_stop_eps: float = 1e-4
    """Stop marching a ray once its transmittance drops below this."""
    coarse_while_dense: bool = True
    """March with up to 8x longer steps while much of the grid is occupied early in training, so
    samples per ray stay bounded before the grid has carved empty space."""
    coarse_steps: int = 1000
    """Training steps during which ``coarse_while_dense`` applies. Later (and whenever a trained run
    is rendered) the step stays fine: a grid that fills again late in training (fog in a
    forward-facing capture's NDC volume) would otherwise coarsen the march for the rest of the run
    (horns: 24.46 dB at 5 minutes, 24.08 dB at 20 with 4x coarser steps)."""
    march_round: int = 32
    """Samples a ray advances per round of early termination."""
    alpha_threshold: float = 0.0
    """Drop samples whose opacity is below this (instant-ngp uses 1e-2 on large scenes)."""
    warmup_steps: int = 256
    """Before this step, updates mark cells occupied but never empty: a surface the young field
    has not yet given density is not carved away before it can learn it."""
    time_bins: int = 0
    """Dynamic scenes: one grid per bin of this many equal bins of time ``[0, 1]``, each holding
    what is occupied at any instant of its bin (:class:`~nerfgen.render.TimeOccupancyGrid`); 1
    keeps one grid for all of time (the union of every instant). 0: a static scene's grid."""
    time_bins_per_update: int = 2
    """Dynamic scenes: bins refreshed at each update, in turn (each bin every
    ``time_bins / time_bins_per_update`` updates)."""

    def validate(self, source: str) -> None:
        ranges = {"resolution": (1, 1024), "diagonal_steps": (1, 1 << 20), "update_every": (1, None),
                  "min_diagonal_steps": (1, 1 << 20), "pixel_step": (0.0, None),
                  "coarse_steps": (0, None),
                  "cells_per_update": (1, 1 << 30), "march_round": (1, 1 << 16), "warmup_steps": (0, None),
                  "time_bins": (0, 256), "time_bins_per_update": (1, 256),
                  "render_step_size": (0.0, None), "near_plane": (0.0, None), "occ_threshold": (0.0, None),
                  "ema_decay": (0.0, 1.0), "early_stop_eps": (0.0, 1.0), "alpha_threshold": (0.0, 1.0)}
        for key, (low, high) in ranges.items():
            value = getattr(self, key)
            if value < low or (high is not None and value > high):
                span = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"{source}: {key}: expected a value {span}, got {value}")
        if 0 < self.render_step_size < 1e-6:
            raise ValueError(f"{source}: render_step_size: expected 0 (from diagonal_steps) or a step >= 1e-6, "
                             f"got {self.render_step_size}")
        if self.cone_angle != -1.0 and self.cone_angle < 0:
            raise ValueError(f"{source}: cone_angle: expected -1 (automatic) or a value >= 0, got {self.cone_angle}")
        if self.pixel_step > 0 and self.min_diagonal_steps > self.diagonal_steps:
            raise ValueError(f"{source}: min_diagonal_steps: expected at most diagonal_steps ({self.diagonal_steps}), "
                             f"got {self.min_diagonal_steps}")

    def for_footprint(self, footprint: float, diagonal: float) -> OccGridConfig:
        """This config with ``render_step_size`` set from ``pixel_step`` (unless it is set already or
        ``pixel_step`` is 0): ``pixel_step * footprint`` (a pixel's width, world units, at the scene),
        kept between ``diagonal / diagonal_steps`` and ``diagonal / min_diagonal_steps``.

        >>> round(OccGridConfig(pixel_step=1.5).for_footprint(0.0036, 5.196).render_step_size, 4)
        0.0054
        >>> round(OccGridConfig(pixel_step=1.5).for_footprint(0.029, 5.196).render_step_size, 4)  # 342 steps
        0.0152
        """
        if self.pixel_step <= 0 or self.render_step_size > 0:
            return self
        if not (footprint > 0 and diagonal > 0):
            raise ValueError(f"OccGridConfig.for_footprint: need a footprint and diagonal > 0, got {footprint}, {diagonal}")
        step = min(max(self.pixel_step * footprint, diagonal / self.diagonal_steps), diagonal / self.min_diagonal_steps)
        return dataclasses.replace(self, render_step_size=step)


class OccupancyGrid(Sampler):
    """Multi-cascade occupancy grid with nerfacc/instant-ngp style updates.

    Cascade ``l`` covers the finest box scaled by ``2^l`` about its centre.

    Args:
        aabb: ``[6]`` box of the finest cascade.
        cascades: number of cascades.
        config: grid and sampling settings.
    """

    def __init__(self, aabb: Tensor, cascades: int = 1, config: OccGridConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or OccGridConfig()
        self.config = cfg
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        center, half = (aabb[:3] + aabb[3:]) / 2, (aabb[3:] - aabb[:3]) / 2
        scales = 2.0 ** torch.arange(cascades, dtype=torch.float32)[:, None]
        self.register_buffer("aabbs", torch.cat([center - half * scales, center + half * scales], -1))
        res = cfg.resolution
        extents = (self.aabbs[:, 3:] - self.aabbs[:, :3]).amax(-1).tolist()  # read here, never from a GPU later
        self._cell_sizes = [extent / res for extent in extents]
        self.register_buffer("occs", torch.zeros(cascades, res**3))
        self.register_buffer("binaries", torch.ones(cascades, res, res, res, dtype=torch.bool))
        self.register_buffer("hull", torch.ones(cascades, res**3, dtype=torch.bool))
        self._fraction, self._counted = 1.0, None
        self._training_step: int | None = None  # the step of the last update() call; None: not training
        self._diagonal = float((aabb[3:] - aabb[:3]).norm())
        self.step_size = cfg.render_step_size or self._diagonal / cfg.diagonal_steps
        self.cone_angle = cfg.cone_angle if cfg.cone_angle >= 0 else (0.0 if cascades == 1 else 1 / 256)

    @property
    def outer_aabb(self) -> Tensor:
        """``[6]`` the coarsest cascade's box (where every sample lies)."""
        return self.aabbs[-1]

    def current_step_size(self) -> float:
        """The marching step now: ``step_size`` times 1, 2, 4 or 8 as the occupied fraction of
        the grid falls below 1/8, 1/4, 1/2 (with ``coarse_while_dense``, in the first
        ``coarse_steps`` training steps)."""
        step = self._training_step
        if not self.config.coarse_while_dense or step is None or step >= self.config.coarse_steps:
            return self.step_size
        fraction = self.occupancy_fraction()
        level = 0 if fraction <= 0 else min(3, max(0, math.floor(math.log2(fraction * 16))))
        return self.step_size * 2**level

    def occupancy_fraction(self) -> float:
        """Fraction of cells marked occupied (recounted only after the grid changed: updates,
        :meth:`restrict`, loading a state dict all bump the tensor's version)."""
        version = (self.binaries.data_ptr(), self.binaries._version)
        if self._counted != version:
            self._fraction, self._counted = float(self.binaries.float().mean()), version
        return self._fraction

    @property
    def early_stop_eps(self) -> float:
        return self.config.early_stop_eps

    def preview(self) -> OccupancyGrid:
        """This grid (its tensors shared, not copied) marching :data:`PREVIEW_STEP` times longer
        steps (at least the box diagonal over :data:`PREVIEW_DIAGONAL_STEPS`), stopping rays at
        transmittance :data:`PREVIEW_EARLY_STOP` and terminating them in rounds of
        :data:`PREVIEW_MARCH_ROUND` samples: the frames a viewer shows while the camera moves."""
        coarse = copy.copy(self)
        coarse.step_size = max(self.step_size * PREVIEW_STEP, self._diagonal / PREVIEW_DIAGONAL_STEPS)
        cfg = self.config
        coarse.config = dataclasses.replace(cfg, early_stop_eps=max(cfg.early_stop_eps, PREVIEW_EARLY_STOP),
                                            march_round=min(cfg.march_round, PREVIEW_MARCH_ROUND))
        return coarse

    def occupied(self, positions: Tensor) -> Tensor:
        return grid_lookup(positions, self.binaries, self.aabbs)

    @torch.no_grad()
    def sample(self, rays: Rays, sigma_fn: SigmaFn | None = None, stratified: bool = False,
               cond: Conditioning | None = None, defer_termination: bool = False) -> RaySamples:
        """Samples of the rays in occupied space, with early termination (``cond`` is not used:
        one grid serves every ray).

        Args:
            rays: ``[n_rays]`` rays with unit directions.
            sigma_fn: ``sigma_fn(t_starts, t_ends, ray_indices) -> sigmas [n_samples]``; when given,
                samples behind an opaque surface (transmittance below ``early_stop_eps``) are dropped.
            stratified: jitter each ray's samples by a random fraction of a step.
            defer_termination: keep every sample of the rays that hold no more than a round and
                leave their termination to compositing (renders without gradients; see
                :class:`Sampler`); longer rays are terminated here.

        Returns:
            :class:`RaySamples` (no gradient flows through the positions).
        """
        cfg = self.config
        origins, directions = rays.origins, rays.directions
        jitter = torch.rand(origins.shape[0], device=origins.device) if stratified else None
        step = self.current_step_size()
        group = max(1, int(self.cell_size(0) / (2 * step)))
        samples = traverse_grids(
            origins, directions, self.binaries, self.aabbs, cfg.near_plane, 1e10,
            step, self.cone_angle, jitter, group,
        )
        return self._terminate(samples, sigma_fn, defer_termination)

    def _terminate(self, samples: RaySamples, sigma_fn: SigmaFn | None, defer_termination: bool) -> RaySamples:
        """The marched ``samples`` less those behind opaque surfaces (every ray's, or with
        ``defer_termination`` only those of rays longer than a round; see :meth:`sample`)."""
        if sigma_fn is None or len(samples) == 0:
            return samples
        if not defer_termination:
            return samples.masked(self._visible(samples, sigma_fn))
        in_long = (samples.packed_info[:, 1] > self.config.march_round)[samples.ray_indices]  # rays past a round
        if not bool(in_long.any()):
            return samples
        keep = torch.ones(len(samples), dtype=torch.bool, device=in_long.device)
        keep[in_long] = self._visible(samples.masked(in_long), sigma_fn)
        return samples.masked(keep)

    def _visible(self, samples: RaySamples, sigma_fn: SigmaFn) -> Tensor:
        """Early ray termination, marching front to back in rounds of ``march_round`` samples a
        ray, so samples behind opaque surfaces are never evaluated.

        Each round lays the next samples of the rays still alive out densely (``[alive, round]``),
        so its bookkeeping costs what the round evaluates, not what all rays hold.

        Returns:
            ``[n_samples]`` bool: transmittance before the sample at least ``early_stop_eps`` and
            opacity at least ``alpha_threshold``.
        """
        cfg = self.config
        device = samples.ray_indices.device
        start, count = samples.packed_info.unbind(-1)  # [n_rays] each
        if int(count.max()) <= cfg.march_round:  # one round holds every ray's samples: no bookkeeping
            return self._visible_at_once(samples, sigma_fn)
        optical = torch.zeros(samples.n_rays, device=device)
        keep = torch.zeros(len(samples), dtype=torch.bool, device=device)
        limit = -math.log(cfg.early_stop_eps) if cfg.early_stop_eps > 0 else math.inf
        offsets = torch.arange(cfg.march_round, device=device)
        rays = torch.nonzero(count > 0)[:, 0]
        first = 0
        while rays.numel() > 0:
            rank = first + offsets  # [round]
            valid = rank[None, :] < count[rays, None]  # [alive, round]
            idx = (start[rays, None] + rank[None, :])[valid]
            ray_of = rays[:, None].expand(-1, cfg.march_round)[valid]
            t0, t1 = samples.t_starts[idx], samples.t_ends[idx]
            sigma_delta = sigma_fn(t0, t1, ray_of) * (t1 - t0)
            dense = torch.zeros(valid.shape, device=device)
            dense[valid] = sigma_delta
            before = (torch.cumsum(dense, 1) - dense + optical[rays, None])[valid]
            visible = before <= limit
            if cfg.alpha_threshold > 0:
                visible &= (1.0 - torch.exp(-sigma_delta)) >= cfg.alpha_threshold
            keep[idx] = visible
            optical[rays] += dense.sum(1)
            first += cfg.march_round
            rays = rays[(optical[rays] <= limit) & (count[rays] > first)]
        return keep

    def _visible_at_once(self, samples: RaySamples, sigma_fn: SigmaFn) -> Tensor:
        """:meth:`_visible` when no ray holds more than a round of samples: one density call for all
        of them and one compositing pass (the kernel) for the transmittance before each."""
        cfg = self.config
        sigmas = sigma_fn(samples.t_starts, samples.t_ends, samples.ray_indices)
        comp = volume_render(samples.t_starts, samples.t_ends, sigmas, sigmas.new_zeros(len(samples), 1),
                             samples.ray_indices, samples.n_rays, cfg.early_stop_eps)
        visible = comp.transmittance > 0 if cfg.early_stop_eps > 0 else torch.ones_like(sigmas, dtype=torch.bool)
        if cfg.alpha_threshold > 0:
            visible &= (1.0 - torch.exp(-sigmas * (samples.t_ends - samples.t_starts))) >= cfg.alpha_threshold
        return visible

    def cell_positions(self, level: int, cells: Tensor, jitter: bool = False) -> Tensor:
        """``[n, 3]`` points in cells ``[n]`` (flat indices) of ``level``: centres, or jittered."""
        res = self.config.resolution
        ijk = torch.stack([cells // (res * res), (cells // res) % res, cells % res], -1).float()
        offset = torch.rand_like(ijk) if jitter else torch.full_like(ijk, 0.5)
        lo, hi = self.aabbs[level, :3], self.aabbs[level, 3:]
        return lo + (ijk + offset) / res * (hi - lo)

    def cell_size(self, level: int) -> float:
        """Edge length of a cell of ``level`` (the largest axis)."""
        return self._cell_sizes[level]

    @torch.no_grad()
    def restrict(self, inside: Callable[[Tensor, float], Tensor]) -> None:
        """Mark cells that can never hold anything: ``inside(centres [n, 3], cell_size) -> [n]`` bool.

        Used with :func:`nerfgen.render.carving.visual_hull` when training images carry alpha.
        """
        n_cells = self.config.resolution**3
        for level in range(self.aabbs.shape[0]):
            centers = self.cell_positions(level, torch.arange(n_cells, device=self.aabbs.device))
            self.hull[level] = inside(centers, self.cell_size(level))
        self.binaries &= self.hull.view_as(self.binaries)

    @torch.no_grad()
    def update(self, step: int, density_fn: DensityFn, world: World = SINGLE, chunk: int = 1 << 16) -> bool:
        """Refresh the grid every ``update_every`` steps (not at step 0).

        Each update decays every cell's stored opacity by ``ema_decay`` and takes the max with
        the opacity ``density_fn(x) * step_size`` at a jittered point of each evaluated cell: all
        occupied cells plus ``cells_per_update`` uniformly drawn ones. In a job of several ranks
        (``world``) each rank evaluates its share of those cells at its own random points and the
        estimates are reduced (max) over the ranks, so every rank holds the same grid.

        Returns:
            True when the grid was updated at this step.
        """
        cfg = self.config
        self._training_step = step
        if step % cfg.update_every != 0 or step == 0:  # the untrained field says nothing at step 0
            return False
        n_cells = cfg.resolution**3
        estimates = torch.zeros_like(self.occs)  # opacities are >= 0: a cell nobody evaluated only decays
        for level in range(self.aabbs.shape[0]):
            occupied = torch.nonzero(self.binaries[level].reshape(-1))[:, 0][world.rank::world.size]
            drawn = -(-min(cfg.cells_per_update, n_cells) // world.size)
            uniform = torch.randint(0, n_cells, (drawn,), device=occupied.device)
            cells = torch.unique(torch.cat([uniform, occupied]))
            cells = cells[self.hull[level, cells]]
            estimates[level, cells] = torch.cat(
                [density_fn(self.cell_positions(level, part, jitter=True)) for part in cells.split(chunk)]
                + [cells.new_zeros(0, dtype=torch.float32)]) * self.step_size
        world.all_reduce(estimates, "max")
        torch.maximum(self.occs.mul_(cfg.ema_decay), estimates, out=self.occs)
        mean = (self.occs * self.hull).sum() / self.hull.sum().clamp_min(1)  # over the hull; no host read
        occupied = ((self.occs > mean.clamp(max=cfg.occ_threshold)) & self.hull).view_as(self.binaries)
        if step < cfg.warmup_steps:
            occupied |= self.binaries
        self.binaries.copy_(occupied)
        return True
