"""Packed ragged samples: many rays, a different number of samples each, stored flat."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RaySamples:
    """Samples of many rays, packed flat and sorted by ray.

    Attributes:
        t_starts: ``[n_samples]`` interval starts along each ray.
        t_ends: ``[n_samples]`` interval ends.
        ray_indices: ``[n_samples]`` long, the ray each sample belongs to (non-decreasing).
        n_rays: number of rays the samples were drawn for (rays may own no sample).
    """

    t_starts: Tensor
    t_ends: Tensor
    ray_indices: Tensor
    n_rays: int

    def __len__(self) -> int:
        return self.t_starts.shape[0]

    def masked(self, keep: Tensor) -> "RaySamples":
        """The samples where ``keep [n_samples]`` is True (order is kept)."""
        return RaySamples(self.t_starts[keep], self.t_ends[keep], self.ray_indices[keep], self.n_rays)

    @property
    def packed_info(self) -> Tensor:
        """``[n_rays, 2]`` long: first sample index and sample count of each ray."""
        return packed_info_from_indices(self.ray_indices, self.n_rays)


def packed_info_from_indices(ray_indices: Tensor, n_rays: int) -> Tensor:
    """``[n_rays, 2]`` (start, count) of each ray in sorted ``ray_indices [n_samples]``."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts
    return torch.stack([starts, counts], -1)
