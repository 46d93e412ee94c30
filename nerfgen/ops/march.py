r"""Ray marching through a multi-cascade occupancy grid: compiled kernel and pure-torch twin.

Samples are placed on each ray at ``t_0 + k * dt`` where the step grows with distance as in
instant-ngp, :math:`dt = \max(\text{step\_size}, \text{cone\_angle} \cdot t)`, and only samples
whose midpoint falls in an occupied cell are kept.

:func:`traverse_grids` runs the C++/OpenMP kernel (``cuda/src/march_cpu.cpp``; ``march.cu`` in a
CUDA build), which skips empty cells and keeps exactly the samples of the torch twin
:func:`traverse_grids_torch` (same float32 expressions).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nerfgen.ops import _backend
from nerfgen.ops.intersect import ray_aabb_intersect_torch
from nerfgen.ops.packed import RaySamples


def _steps_to(t0: Tensor, t_end: Tensor, step_size: float, cone_angle: float) -> Tensor:
    """Number of steps from ``t0`` until ``t_end`` is passed (closed form of the step rule)."""
    linear = torch.ceil((t_end - t0) / step_size).clamp(min=0)
    if cone_angle <= 0:
        return linear.long()
    t_switch = step_size / cone_angle
    k1 = torch.ceil((t_switch - t0) / step_size).clamp(min=0)
    t_k1 = t0 + k1 * step_size
    geometric = k1 + torch.ceil(torch.log(t_end.clamp(min=1e-10) / t_k1.clamp(min=1e-10)) / math.log1p(cone_angle))
    return torch.where(t_end <= t_k1, linear, geometric.clamp(min=0)).long()


def _t_of_step(t0: Tensor, k: Tensor, step_size: float, cone_angle: float) -> Tensor:
    """``t`` after ``k`` steps from ``t0`` (``t0, k`` broadcast together)."""
    linear = t0 + k * step_size
    if cone_angle <= 0:
        return linear
    t_switch = step_size / cone_angle
    k1 = torch.ceil((t_switch - t0) / step_size).clamp(min=0)
    t_k1 = t0 + k1 * step_size
    geometric = t_k1 * torch.exp((k - k1).clamp(min=0) * math.log1p(cone_angle))
    return torch.where(k <= k1, linear, geometric)


def grid_lookup(positions: Tensor, binaries: Tensor, aabbs: Tensor) -> Tensor:
    """Occupancy of ``positions [n, 3]`` in nested cascades.

    Args:
        positions: ``[n, 3]`` world points.
        binaries: ``[n_levels, res, res, res]`` bool occupancy, level 0 the finest.
        aabbs: ``[n_levels, 6]`` box of each level, nested.

    Returns:
        ``[n]`` bool, False outside the coarsest box.
    """
    n_levels, res = binaries.shape[0], binaries.shape[1]
    lo, hi = aabbs[:, :3], aabbs[:, 3:]  # [n_levels, 3]
    inside = ((positions[:, None] >= lo) & (positions[:, None] < hi)).all(-1)  # [n, n_levels]
    level = torch.where(inside.any(-1), inside.int().argmax(-1), n_levels - 1)
    rel = (positions - lo[level]) / (hi[level] - lo[level])
    cell = (rel * res).long().clamp(0, res - 1)
    flat = ((level * res + cell[:, 0]) * res + cell[:, 1]) * res + cell[:, 2]
    return binaries.reshape(-1)[flat] & inside.any(-1)


def traverse_grids(
    origins: Tensor,
    directions: Tensor,
    binaries: Tensor,
    aabbs: Tensor,
    near_plane: float,
    far_plane: float,
    step_size: float,
    cone_angle: float = 0.0,
    jitter: Tensor | None = None,
    group: int = 1,
) -> RaySamples:
    """March rays through an occupancy grid and keep the samples in occupied cells.

    The compiled kernel serves float32 tensors when it is available (``group`` is then moot: the
    kernel keeps every sample of the exact march); else :func:`traverse_grids_torch` runs. See it
    for the arguments.
    """
    if origins.dim() != 2 or origins.shape[-1] != 3 or directions.shape != origins.shape:
        raise ValueError(f"traverse_grids: origins and directions must be [n_rays, 3], got "
                         f"{tuple(origins.shape)} and {tuple(directions.shape)}")
    if binaries.dim() != 4 or aabbs.shape != (binaries.shape[0], 6):
        raise ValueError(f"traverse_grids: binaries must be [n_levels, res, res, res] and aabbs [n_levels, 6], got "
                         f"{tuple(binaries.shape)} and {tuple(aabbs.shape)}")
    if not (0 < step_size < math.inf and 0 <= cone_angle < math.inf and near_plane <= far_plane):
        raise ValueError(f"traverse_grids: need finite step_size > 0, cone_angle >= 0 and near_plane <= far_plane, got "
                         f"{step_size}, {cone_angle}, {near_plane}, {far_plane}")
    extra = () if jitter is None else (jitter,)
    if binaries.dtype == torch.bool and _backend.kernels_serve(origins, directions, aabbs, *extra):
        t_starts, t_ends, ray_indices = torch.ops.nerfgen.traverse_grids(
            origins.contiguous(), directions.contiguous(), binaries.contiguous(), aabbs.contiguous(),
            None if jitter is None else jitter.contiguous(), near_plane, far_plane, step_size, cone_angle,
        )
        return RaySamples(t_starts, t_ends, ray_indices, origins.shape[0])
    return traverse_grids_torch(origins, directions, binaries, aabbs, near_plane, far_plane, step_size, cone_angle,
                                jitter, group)


def traverse_grids_torch(
    origins: Tensor,
    directions: Tensor,
    binaries: Tensor,
    aabbs: Tensor,
    near_plane: float,
    far_plane: float,
    step_size: float,
    cone_angle: float = 0.0,
    jitter: Tensor | None = None,
    group: int = 1,
) -> RaySamples:
    """March rays through an occupancy grid and keep the samples in occupied cells.

    Args:
        origins: ``[n_rays, 3]``.
        directions: ``[n_rays, 3]`` unit length (so ``t`` is distance).
        binaries: ``[n_levels, res, res, res]`` bool occupancy, level 0 the finest.
        aabbs: ``[n_levels, 6]`` nested boxes, the last one the coarsest.
        near_plane, far_plane: limits on ``t``.
        step_size: smallest step.
        cone_angle: steps grow as ``cone_angle * t`` (0: uniform steps).
        jitter: optional ``[n_rays]`` in [0, 1): shifts each ray's first sample by a fraction
            of a step (stratified sampling during training).
        group: march ``group`` steps at a time first and expand only groups whose start, middle
            or end lies in an occupied cell (keep a group shorter than half a cell); 1 tests
            every step.

    Returns:
        :class:`RaySamples` sorted by ray.
    """
    n_rays = origins.shape[0]
    t_min, t_max, hit = ray_aabb_intersect_torch(origins, directions, aabbs[-1:], near_plane, far_plane)
    finite = torch.isfinite(origins).all(-1) & torch.isfinite(directions).all(-1)  # else no samples, as the kernel
    t_min, t_max, hit = t_min[:, 0], t_max[:, 0], hit[:, 0] & finite
    if jitter is not None:
        t_min = t_min + jitter * step_size
    counts = torch.where(hit, _steps_to(t_min, t_max, step_size, cone_angle), 0)
    device = origins.device
    if group > 1:  # coarse pass over groups of steps, then expand the occupied groups
        n_groups = (counts + group - 1) // group
        ray_g = torch.repeat_interleave(torch.arange(n_rays, device=device), n_groups)
        first_g = torch.cumsum(n_groups, 0) - n_groups
        k_g = (torch.arange(ray_g.shape[0], device=device) - first_g[ray_g]) * group
        t0g = t_min[ray_g]
        ta = _t_of_step(t0g, k_g.to(t_min.dtype), step_size, cone_angle)
        tb = torch.minimum(_t_of_step(t0g, (k_g + group).to(t_min.dtype), step_size, cone_angle), t_max[ray_g])
        o, d = origins[ray_g], directions[ray_g]
        occupied = torch.zeros_like(ta, dtype=torch.bool)
        for t in (ta, (ta + tb) * 0.5, tb):
            occupied |= grid_lookup(o + d * t[:, None], binaries, aabbs)
        ray_g, k_g = ray_g[occupied], k_g[occupied]
        ray_indices = ray_g.repeat_interleave(group)
        k_int = (k_g[:, None] + torch.arange(group, device=device)).reshape(-1)
        valid = k_int < counts[ray_indices]
        ray_indices, k_int = ray_indices[valid], k_int[valid]
    else:
        ray_indices = torch.repeat_interleave(torch.arange(n_rays, device=device), counts)
        first = torch.cumsum(counts, 0) - counts
        k_int = torch.arange(ray_indices.shape[0], device=device) - first[ray_indices]
    k = k_int.to(t_min.dtype)
    t0 = t_min[ray_indices]
    t_starts = _t_of_step(t0, k, step_size, cone_angle)
    t_ends = torch.minimum(_t_of_step(t0, k + 1, step_size, cone_angle), t_max[ray_indices])
    mids = origins[ray_indices] + directions[ray_indices] * ((t_starts + t_ends) * 0.5)[:, None]
    keep = grid_lookup(mids, binaries, aabbs) & (t_ends > t_starts)
    return RaySamples(t_starts[keep], t_ends[keep], ray_indices[keep], n_rays)
