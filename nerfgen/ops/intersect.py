"""Ray / axis-aligned box intersection (slab test): compiled kernel and pure-torch twin."""

from __future__ import annotations

import torch
from torch import Tensor

from nerfgen.ops import _backend


def ray_aabb_intersect(
    origins: Tensor, directions: Tensor, aabbs: Tensor, near_plane: float = 0.0, far_plane: float = 1e10
) -> tuple[Tensor, Tensor, Tensor]:
    """Intersect rays with boxes; the kernel (``cuda/src/march*``) for float32 tensors when it is
    available (the kernel has no gradient: rays that require one take the twin), else
    :func:`ray_aabb_intersect_torch` (same signature and results)."""
    if origins.dim() != 2 or origins.shape[-1] != 3 or directions.shape != origins.shape:
        raise ValueError(f"ray_aabb_intersect: origins and directions must be [n_rays, 3], got "
                         f"{tuple(origins.shape)} and {tuple(directions.shape)}")
    if aabbs.dim() != 2 or aabbs.shape[-1] != 6:
        raise ValueError(f"ray_aabb_intersect: aabbs must be [n_aabbs, 6], got {tuple(aabbs.shape)}")
    if not (origins.requires_grad or directions.requires_grad) and _backend.kernels_serve(origins, directions, aabbs):
        return torch.ops.nerfgen.ray_aabb_intersect(
            origins.contiguous(), directions.contiguous(), aabbs.contiguous(), near_plane, far_plane
        )
    return ray_aabb_intersect_torch(origins, directions, aabbs, near_plane, far_plane)


def ray_aabb_intersect_torch(
    origins: Tensor, directions: Tensor, aabbs: Tensor, near_plane: float = 0.0, far_plane: float = 1e10
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Intersect rays with boxes by the slab method.

    For each ray :math:`o + t d` and box :math:`[b_{min}, b_{max}]`,
    :math:`t_{min} = \max_i \min(t^i_0, t^i_1)` and :math:`t_{max} = \min_i \max(t^i_0, t^i_1)`
    with :math:`t^i_j = (b^i_j - o^i) / d^i`, clipped to ``[near_plane, far_plane]``.

    Args:
        origins: ``[n_rays, 3]`` ray origins.
        directions: ``[n_rays, 3]`` ray directions (need not be unit length).
        aabbs: ``[n_aabbs, 6]`` boxes as ``(xmin, ymin, zmin, xmax, ymax, zmax)``.
        near_plane: smallest ``t`` kept.
        far_plane: largest ``t`` kept.

    Returns:
        ``t_mins [n_rays, n_aabbs]``, ``t_maxs [n_rays, n_aabbs]`` and ``hits [n_rays, n_aabbs]``
        (bool). Where a ray misses, ``t_mins = t_maxs = far_plane`` and ``hits`` is False.

    >>> o = torch.tensor([[0.0, 0.0, -3.0]]); d = torch.tensor([[0.0, 0.0, 1.0]])
    >>> ray_aabb_intersect_torch(o, d, torch.tensor([[-1.0, -1, -1, 1, 1, 1]]))[0]
    tensor([[2.]])
    """
    inv = 1.0 / torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0 = (aabbs[None, :, :3] - origins[:, None, :]) * inv[:, None, :]  # [n_rays, n_aabbs, 3]
    t1 = (aabbs[None, :, 3:] - origins[:, None, :]) * inv[:, None, :]
    t_mins = torch.minimum(t0, t1).amax(-1).clamp(min=near_plane)
    t_maxs = torch.maximum(t0, t1).amin(-1).clamp(max=far_plane)
    hits = t_maxs > t_mins
    t_mins = torch.where(hits, t_mins, torch.full_like(t_mins, far_plane))
    t_maxs = torch.where(hits, t_maxs, torch.full_like(t_maxs, far_plane))
    return t_mins, t_maxs, hits
