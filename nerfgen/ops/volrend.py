"""Volume rendering on packed samples: the fused compositing kernel and its pure-torch twin.

Every function takes samples packed flat and sorted by ray (``ray_indices``), as produced by
the samplers of :mod:`nerfgen.render`; rays own any number of samples, zero included.
:func:`volume_render` composites in one pass forward and one pass backward (C++/OpenMP kernel,
``cuda/src/volrend*``) when the kernels are available, else :func:`volume_render_torch`; the other
functions are the torch building blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.ops import _backend
from nerfgen.ops.packed import packed_info_from_indices


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


@dataclass
class Composite:
    r"""Volume rendering of packed samples.

    Attributes:
        color: ``[n_rays, C]`` :math:`\sum_i w_i c_i`.
        opacity: ``[n_rays]`` :math:`\sum_i w_i`.
        depth: ``[n_rays]`` :math:`\sum_i w_i (t^{start}_i + t^{end}_i) / 2` (not divided by the opacity).
        weights: ``[n_samples]`` :math:`w_i = T_i \alpha_i` (0 past early termination).
        transmittance: ``[n_samples]`` :math:`T_i` (0 past early termination).
    """

    color: Tensor
    opacity: Tensor
    depth: Tensor
    weights: Tensor
    transmittance: Tensor


def volume_render(
    t_starts: Tensor,
    t_ends: Tensor,
    sigmas: Tensor,
    colors: Tensor,
    ray_indices: Tensor,
    n_rays: int,
    early_stop_eps: float = 0.0,
) -> Composite:
    r"""Composite packed samples along their rays, with early ray termination.

    :math:`T_i = \exp(-\sum_{j<i} \sigma_j \delta_j)`, :math:`w_i = T_i (1 - e^{-\sigma_i \delta_i})`;
    the first sample of a ray with :math:`T_i <` ``early_stop_eps`` and all after it get
    :math:`w_i = T_i = 0`. Differentiable in ``sigmas``, ``colors`` (through every output).
    The kernel serves float32/float64 when it is available, else :func:`volume_render_torch`.

    Args:
        t_starts, t_ends: ``[n_samples]`` interval bounds.
        sigmas: ``[n_samples]`` non-negative densities.
        colors: ``[n_samples, C]`` values to composite (rgb, features, normals, ...).
        ray_indices: ``[n_samples]`` long, sorted.
        n_rays: number of rays.
        early_stop_eps: transmittance below which a ray stops (0: never).

    Returns:
        :class:`Composite`.

    >>> t0 = torch.tensor([0.0, 1.0]); t1 = torch.tensor([1.0, 2.0])
    >>> out = volume_render(t0, t1, torch.tensor([1.0, 1.0]), torch.ones(2, 3), torch.tensor([0, 0]), 1)
    >>> [round(x, 4) for x in out.weights.tolist()], round(float(out.opacity), 4)
    ([0.6321, 0.2325], 0.8647)
    """
    n = sigmas.shape[0]
    if not (t_starts.shape == t_ends.shape == sigmas.shape == ray_indices.shape == (n,)):
        raise ValueError(f"volume_render: t_starts, t_ends, sigmas, ray_indices must all be [n_samples], got "
                         f"{[tuple(t.shape) for t in (t_starts, t_ends, sigmas, ray_indices)]}")
    if colors.dim() != 2 or colors.shape[0] != n:
        raise ValueError(f"volume_render: colors must be [n_samples, C] with n_samples = {n}, got {tuple(colors.shape)}")
    dtypes = (torch.float32, torch.float64)
    if ray_indices.dtype == torch.long and _backend.kernels_serve(t_starts, t_ends, sigmas, colors, dtypes=dtypes):
        packed_info = packed_info_from_indices(ray_indices, n_rays)
        return Composite(*torch.ops.nerfgen.composite_fwd(
            t_starts.contiguous(), t_ends.contiguous(), sigmas.contiguous(), colors.contiguous(), packed_info,
            early_stop_eps,
        ))
    return volume_render_torch(t_starts, t_ends, sigmas, colors, ray_indices, n_rays, early_stop_eps)


def volume_render_torch(
    t_starts: Tensor,
    t_ends: Tensor,
    sigmas: Tensor,
    colors: Tensor,
    ray_indices: Tensor,
    n_rays: int,
    early_stop_eps: float = 0.0,
) -> Composite:
    """The pure-torch twin of :func:`volume_render` (same signature and results)."""
    weights, transmittance, _ = render_weight_from_density(t_starts, t_ends, sigmas, ray_indices, n_rays)
    if early_stop_eps > 0:
        alive = (transmittance >= early_stop_eps).detach()
        weights, transmittance = weights * alive, transmittance * alive
    mids = (t_starts + t_ends) * 0.5
    return Composite(
        color=accumulate_along_rays(weights, colors, ray_indices, n_rays),
        opacity=accumulate_along_rays(weights, None, ray_indices, n_rays)[:, 0],
        depth=accumulate_along_rays(weights, mids[:, None], ray_indices, n_rays)[:, 0],
        weights=weights,
        transmittance=transmittance,
    )
