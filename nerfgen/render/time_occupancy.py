"""Occupancy grids of a dynamic scene: one grid per bin of time, so empty space is skipped as things move.

A static scene's grid (:class:`~nerfgen.render.OccupancyGrid`) marks where anything is; in a
dynamic scene that changes with time. :class:`TimeOccupancyGrid` splits time ``[0, 1]`` into
``time_bins`` equal bins and keeps a grid (with its cascades) for each, holding what is occupied at
any instant of the bin: each update evaluates the field at jittered points of the grid's cells,
each at its own instant spread over the bin (a low-discrepancy sequence: no random draws beyond a
static grid's, so one bin over a field that ignores time updates exactly as the static grid does).
A ray is marched through the grid of its own time's bin (``Conditioning.time``); rays of several
bins in one batch are marched bin by bin and their samples packed together again.

With one bin the grid is the union of every instant: always correct, skipping less. The bins a
grid refreshes per update are taken in turn (``time_bins_per_update``), so the cost of an update
does not grow with the number of bins.

>>> grid = TimeOccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), 1, OccGridConfig(resolution=16, time_bins=4))
>>> grid.bin_of(torch.tensor([0.0, 0.3, 1.0])).tolist()
[0, 1, 3]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from nerfgen.cameras import Rays
from nerfgen.distributed import SINGLE, World
from nerfgen.fields import Conditioning
from nerfgen.ops import RaySamples, grid_lookup, traverse_grids
from nerfgen.render.occupancy import OccGridConfig, OccupancyGrid
from nerfgen.render.sampler import DensityFn, SigmaFn

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
"""Step of the low-discrepancy sequence that spreads update instants over a bin."""


class TimeOccupancyGrid(OccupancyGrid):
    """An :class:`OccupancyGrid` per bin of time (module docstring).

    Args:
        aabb: ``[6]`` box of the finest cascade.
        cascades: number of cascades.
        config: grid settings; ``time_bins`` (at least 1) bins of time.

    Buffers ``occs [bins, cascades, res^3]``, ``binaries [bins, cascades, res, res, res]`` and
    ``hull [bins, cascades, res^3]`` hold each bin's grid.
    """

    def __init__(self, aabb: Tensor, cascades: int = 1, config: OccGridConfig | None = None) -> None:
        super().__init__(aabb, cascades, config)
        self.bins = max(1, self.config.time_bins)
        res = self.config.resolution
        self.register_buffer("occs", torch.zeros(self.bins, cascades, res**3))
        self.register_buffer("binaries", torch.ones(self.bins, cascades, res, res, res, dtype=torch.bool))
        self.register_buffer("hull", torch.ones(self.bins, cascades, res**3, dtype=torch.bool))

    def bin_of(self, times: Tensor) -> Tensor:
        """``[n]`` long: the bin of each of ``times [n]`` (1 falls in the last bin)."""
        return (times * self.bins).long().clamp(0, self.bins - 1)

    def span(self, b: int) -> tuple[float, float]:
        """The instants ``[lo, hi)`` of bin ``b``."""
        return b / self.bins, (b + 1) / self.bins

    def _times(self, cond: Conditioning | None, n_rays: int) -> Tensor:
        if cond is None or cond.time is None:
            raise ValueError("TimeOccupancyGrid: a dynamic scene's rays need their time (Conditioning.time)")
        if cond.time.shape[0] not in (1, n_rays):
            raise ValueError(f"TimeOccupancyGrid: Conditioning.time must be [{n_rays} | 1], got {list(cond.time.shape)}")
        return cond.time.reshape(-1)

    @torch.no_grad()
    def sample(self, rays: Rays, sigma_fn: SigmaFn | None = None, stratified: bool = False,
               cond: Conditioning | None = None, defer_termination: bool = False) -> RaySamples:
        """Samples of each ray in the occupied space of its time's bin, with early termination
        (see :meth:`OccupancyGrid.sample`; the kernel skips empty space on each bin's grid)."""
        cfg = self.config
        origins, directions = rays.origins, rays.directions
        bins = self.bin_of(self._times(cond, len(rays)))
        jitter = torch.rand(origins.shape[0], device=origins.device) if stratified else None
        step = self.current_step_size()
        group = max(1, int(self.cell_size(0) / (2 * step)))

        def march(b: int, rows: Tensor | None) -> RaySamples:
            o, d = (origins, directions) if rows is None else (origins[rows], directions[rows])
            j = jitter if jitter is None or rows is None else jitter[rows]
            return traverse_grids(o, d, self.binaries[b], self.aabbs, cfg.near_plane, 1e10, step, self.cone_angle, j,
                                  group)

        present = torch.unique(bins)
        if present.numel() == 1:
            samples = march(int(present[0]), None)
        else:
            parts = []
            for b in present.tolist():
                rows = torch.nonzero(bins == b)[:, 0]
                part = march(b, rows)
                parts.append((part.t_starts, part.t_ends, rows[part.ray_indices]))
            samples = _merge(parts, len(rays))
        return self._terminate(samples, sigma_fn, defer_termination)

    def occupied(self, positions: Tensor) -> Tensor:
        """``[n]`` bool: which of ``positions [n, 3]`` may hold anything at some instant."""
        return grid_lookup(positions, self.binaries.any(0), self.aabbs)

    def at_time(self, t: float) -> OccupancyGrid:
        """A static grid of what bin of instant ``t`` holds (a copy, for meshing one instant)."""
        b = int(self.bin_of(torch.tensor([float(t)]))[0])
        grid = OccupancyGrid(self.aabbs[0].cpu(), self.aabbs.shape[0], dataclasses.replace(self.config, time_bins=0))
        grid = grid.to(self.aabbs.device)
        grid.occs.copy_(self.occs[b])
        grid.binaries.copy_(self.binaries[b])
        grid.hull.copy_(self.hull[b])
        return grid

    @torch.no_grad()
    def restrict(self, inside: Callable[[Tensor, float], Tensor]) -> None:
        """Mark cells that never hold anything, at any instant (every bin)."""
        self.restrict_bins(lambda centers, size, b: inside(centers, size))

    @torch.no_grad()
    def restrict_bins(self, inside: Callable[[Tensor, float, int], Tensor]) -> None:
        """Mark cells that hold nothing during a bin: ``inside(centres [n, 3], cell_size, bin) -> [n]``
        bool (the union of the visual hulls of the bin's instants, say)."""
        n_cells = self.config.resolution**3
        for level in range(self.aabbs.shape[0]):
            centers = self.cell_positions(level, torch.arange(n_cells, device=self.aabbs.device))
            for b in range(self.bins):
                self.hull[b, level] = inside(centers, self.cell_size(level), b)
        self.binaries &= self.hull.view_as(self.binaries)

    def _instants(self, b: int, n: int, update: int, device: torch.device) -> Tensor:
        """``[n]`` instants spread over bin ``b`` for update number ``update`` (no random draws)."""
        lo, hi = self.span(b)
        u = torch.frac((torch.arange(n, device=device, dtype=torch.float64) + update) * GOLDEN)
        return (lo + (hi - lo) * u).float()

    @torch.no_grad()
    def update(self, step: int, density_fn: DensityFn, world: World = SINGLE, chunk: int = 1 << 16) -> bool:
        """Refresh ``time_bins_per_update`` bins (in turn) every ``update_every`` steps, as
        :meth:`OccupancyGrid.update` does one grid, each cell at an instant of its bin:
        ``density_fn(positions, Conditioning(time=...))``."""
        cfg = self.config
        self._training_step = step
        if step % cfg.update_every != 0 or step == 0:
            return False
        update = step // cfg.update_every
        per = min(cfg.time_bins_per_update, self.bins)
        n_cells = cfg.resolution**3
        for b in sorted({(update * per + j) % self.bins for j in range(per)}):
            estimates = torch.zeros_like(self.occs[b])
            for level in range(self.aabbs.shape[0]):
                occupied = torch.nonzero(self.binaries[b, level].reshape(-1))[:, 0][world.rank::world.size]
                drawn = -(-min(cfg.cells_per_update, n_cells) // world.size)
                uniform = torch.randint(0, n_cells, (drawn,), device=occupied.device)
                cells = torch.unique(torch.cat([uniform, occupied]))
                cells = cells[self.hull[b, level, cells]]
                times = self._instants(b, cells.shape[0], update, cells.device)
                values = [density_fn(self.cell_positions(level, part, jitter=True), Conditioning(time=when))
                          for part, when in zip(cells.split(chunk), times.split(chunk))]
                estimates[level, cells] = torch.cat(values + [cells.new_zeros(0, dtype=torch.float32)]) * self.step_size
            world.all_reduce(estimates, "max")
            torch.maximum(self.occs[b].mul_(cfg.ema_decay), estimates, out=self.occs[b])
            mean = (self.occs[b] * self.hull[b]).sum() / self.hull[b].sum().clamp_min(1)  # no host read
            occupied = ((self.occs[b] > mean.clamp(max=cfg.occ_threshold)) & self.hull[b]).view_as(self.binaries[b])
            if step < cfg.warmup_steps:
                occupied |= self.binaries[b]
            self.binaries[b].copy_(occupied)
        return True


def _merge(parts: list[tuple[Tensor, Tensor, Tensor]], n_rays: int) -> RaySamples:
    """Pack the samples of several disjoint sets of rays, each ``(t_starts, t_ends, ray_indices)``
    sorted by ray, into one :class:`RaySamples` sorted by ray (a scatter: every ray's samples are
    in one part, in order)."""
    t_starts, t_ends, ray_indices = (torch.cat(p) for p in zip(*parts))
    counts = torch.bincount(ray_indices, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts  # where each ray's samples go
    first = torch.zeros_like(starts)  # where each ray's samples are in the concatenation
    offset = 0
    for *_, rays in parts:
        part_counts = torch.bincount(rays, minlength=n_rays)
        has = part_counts > 0
        first[has] = (torch.cumsum(part_counts, 0) - part_counts)[has] + offset
        offset += rays.shape[0]
    dest = starts[ray_indices] + torch.arange(ray_indices.shape[0], device=ray_indices.device) - first[ray_indices]
    out = [torch.empty_like(t) for t in (t_starts, t_ends, ray_indices)]
    for o, t in zip(out, (t_starts, t_ends, ray_indices)):
        o[dest] = t
    return RaySamples(*out, n_rays)
