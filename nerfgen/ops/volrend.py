"""Volume rendering on packed samples (the pure-torch reference).

Every function takes samples packed flat and sorted by ray (``ray_indices``), as produced by
:class:`nerfgen.render.OccGridEstimator`; rays own any number of samples, zero included.
"""

from __future__ import annotations

import torch
from torch import Tensor


def exclusive_sum_by_ray(values: Tensor, ray_indices: Tensor, n_rays: int) -> Tensor:
    r"""Exclusive prefix sum of ``values`` within each ray.

    :math:`S_i = \sum_{j < i,\, r(j) = r(i)} v_j`. Summed in float64 so long rays with large
    optical depth lose no precision.

    Args:
        values: ``[n_samples]``.
        ray_indices: ``[n_samples]`` long, sorted.
        n_rays: number of rays.

    Returns:
        ``[n_samples]`` in the dtype of ``values``.
    """
    if values.numel() == 0:
        return values.clone()
    inclusive = torch.cumsum(values.double(), 0)
    exclusive = inclusive - values.double()
    counts = torch.bincount(ray_indices, minlength=n_rays)
    first = torch.cumsum(counts, 0) - counts  # index of each ray's first sample
    ray_offset = exclusive[first.clamp(max=values.shape[0] - 1)]  # [n_rays]
    return (exclusive - ray_offset[ray_indices]).to(values.dtype)


def render_transmittance_from_density(
    t_starts: Tensor, t_ends: Tensor, sigmas: Tensor, ray_indices: Tensor, n_rays: int
) -> tuple[Tensor, Tensor]:
    r"""Transmittance and opacity of each sample.

    :math:`T_i = \exp(-\sum_{j<i} \sigma_j \delta_j)`, :math:`\alpha_i = 1 - \exp(-\sigma_i \delta_i)`.

    Args:
        t_starts, t_ends: ``[n_samples]`` interval bounds.
        sigmas: ``[n_samples]`` non-negative densities.
        ray_indices: ``[n_samples]`` long, sorted.
        n_rays: number of rays.

    Returns:
        ``transmittance [n_samples]`` and ``alphas [n_samples]``.
    """
    sigma_delta = sigmas * (t_ends - t_starts)
    transmittance = torch.exp(-exclusive_sum_by_ray(sigma_delta, ray_indices, n_rays))
    alphas = 1.0 - torch.exp(-sigma_delta)
    return transmittance, alphas


def render_weight_from_density(
    t_starts: Tensor, t_ends: Tensor, sigmas: Tensor, ray_indices: Tensor, n_rays: int
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Compositing weights :math:`w_i = T_i \alpha_i` of packed samples.

    Returns:
        ``weights [n_samples]``, ``transmittance [n_samples]``, ``alphas [n_samples]``.

    >>> t0 = torch.tensor([0.0, 1.0]); t1 = torch.tensor([1.0, 2.0])
    >>> w, _, _ = render_weight_from_density(t0, t1, torch.tensor([1.0, 1.0]), torch.tensor([0, 0]), 1)
    >>> [round(x, 4) for x in w.tolist()]
    [0.6321, 0.2325]
    """
    transmittance, alphas = render_transmittance_from_density(t_starts, t_ends, sigmas, ray_indices, n_rays)
    return transmittance * alphas, transmittance, alphas


def accumulate_along_rays(weights: Tensor, values: Tensor | None, ray_indices: Tensor, n_rays: int) -> Tensor:
    r"""Per-ray sums :math:`\sum_i w_i v_i`.

    Args:
        weights: ``[n_samples]``.
        values: ``[n_samples, d]``, or None to sum the weights alone (opacity).
        ray_indices: ``[n_samples]`` long.
        n_rays: number of rays.

    Returns:
        ``[n_rays, d]`` (``[n_rays, 1]`` when ``values`` is None).
    """
    src = weights[:, None] if values is None else weights[:, None] * values
    out = torch.zeros(n_rays, src.shape[-1], dtype=src.dtype, device=src.device)
    return out.index_add(0, ray_indices, src)
