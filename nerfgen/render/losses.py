r"""Losses on a ray's sample weights: mip-NeRF 360's distortion loss and its interlevel
(proposal) loss.

Both work on one coordinate along the rays, the normalised distance :math:`s \in [0, 1]` in which
the samples were spaced (what mip-NeRF 360 and nerfacto use; in world units the far background
would dominate). :func:`distortion_loss` takes packed samples (``ray_indices``) and runs in
:math:`O(n)` with prefix sums; :func:`interlevel_loss` takes the dense ``[n_rays, k]`` layout that
a proposal sampler produces (every ray the same number of samples).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nerfgen.ops import exclusive_sum_by_ray


def distortion_loss(weights: Tensor, s_starts: Tensor, s_ends: Tensor, ray_indices: Tensor, n_rays: int) -> Tensor:
    r"""mip-NeRF 360's distortion loss of each ray, in :math:`O(n)`.

    .. math::
        \mathcal{L}_{dist} = \sum_{i,j} w_i w_j \left|\frac{s_i + s_{i+1}}{2} - \frac{s_j + s_{j+1}}{2}\right|
        + \frac13 \sum_i w_i^2 (s_{i+1} - s_i)

    With the midpoints :math:`m_i` sorted along each ray, the double sum is
    :math:`2 \sum_i w_i (m_i W_i - M_i)`, where :math:`W_i = \sum_{j<i} w_j` and
    :math:`M_i = \sum_{j<i} w_j m_j` are exclusive prefix sums within the ray.

    Args:
        weights: ``[n_samples]`` compositing weights (differentiable).
        s_starts, s_ends: ``[n_samples]`` interval bounds, sorted within each ray.
        ray_indices: ``[n_samples]`` long, sorted.
        n_rays: number of rays.

    Returns:
        ``[n_rays]`` the loss of each ray (0 for rays without samples).

    >>> w = torch.tensor([0.5, 0.5]); s0 = torch.tensor([0.0, 0.5]); s1 = torch.tensor([0.5, 1.0])
    >>> round(float(distortion_loss(w, s0, s1, torch.tensor([0, 0]), 1)), 4)  # 2 * .25 * .5 + (.25 + .25) * .5 / 3
    0.3333
    """
    n = weights.shape[0]
    if not (s_starts.shape == s_ends.shape == ray_indices.shape == (n,)):
        raise ValueError(f"distortion_loss: weights, s_starts, s_ends, ray_indices must all be [n_samples], got "
                         f"{[tuple(t.shape) for t in (weights, s_starts, s_ends, ray_indices)]}")
    mids = (s_starts + s_ends) * 0.5
    w_before = exclusive_sum_by_ray(weights, ray_indices, n_rays)  # W_i
    wm_before = exclusive_sum_by_ray(weights * mids, ray_indices, n_rays)  # M_i
    per_sample = 2.0 * weights * (mids * w_before - wm_before) + weights**2 * (s_ends - s_starts) / 3.0
    return torch.zeros(n_rays, dtype=weights.dtype, device=weights.device).index_add(0, ray_indices, per_sample)


def outer_weights(edges: Tensor, env_edges: Tensor, env_weights: Tensor) -> Tensor:
    r"""mip-NeRF 360's outer measure: for each interval of ``edges``, the summed weight of the
    intervals of the envelope ``(env_edges, env_weights)`` that overlap it.

    Args:
        edges: ``[n_rays, k + 1]`` sorted interval edges (the final samples).
        env_edges: ``[n_rays, p + 1]`` sorted interval edges of the envelope (a proposal level).
        env_weights: ``[n_rays, p]`` the envelope's weights (differentiable).

    Returns:
        ``[n_rays, k]`` :math:`\sum_{j: (e_j, e_{j+1}) \cap (t_i, t_{i+1}) \neq \emptyset} \hat w_j`.
    """
    p = env_weights.shape[-1]
    cum = torch.cat([torch.zeros_like(env_weights[:, :1]), torch.cumsum(env_weights, -1)], -1)  # [n_rays, p + 1]
    env_edges, starts, ends = env_edges.contiguous(), edges[:, :-1].contiguous(), edges[:, 1:].contiguous()
    first = (torch.searchsorted(env_edges, starts, right=True) - 1).clamp(0, p)  # first j with e_{j+1} > t_i
    last = torch.searchsorted(env_edges, ends, right=False).clamp(0, p)  # one past the last j with e_j < t_{i+1}
    return (cum.gather(1, last) - cum.gather(1, first)).clamp(min=0)


def interlevel_loss(edges: Tensor, weights: Tensor, proposals: list[tuple[Tensor, Tensor]],
                    eps: float = 1.1920929e-07) -> Tensor:
    r"""mip-NeRF 360's proposal loss: each proposal level's weights must bound the final ones.

    .. math::
        \mathcal{L}_{prop} = \sum_{\ell} \operatorname{mean}_{r, i}
        \frac{\max(0,\, w_i - \operatorname{bound}_\ell(t_i, t_{i+1}))^2}{w_i + \epsilon}

    with :math:`\operatorname{bound}_\ell` the :func:`outer_weights` of level :math:`\ell`. The final
    edges and weights are taken as constants (stop-gradient): only the proposals learn.

    Args:
        edges: ``[n_rays, k + 1]`` final interval edges.
        weights: ``[n_rays, k]`` final weights.
        proposals: per level, ``(edges [n_rays, p + 1], weights [n_rays, p])``.
        eps: keeps the division finite where a final weight is 0.

    Returns:
        ``[]`` the loss summed over levels (0 with no level).
    """
    edges, weights = edges.detach(), weights.detach()
    loss = weights.new_zeros(())
    for env_edges, env_weights in proposals:
        bound = outer_weights(edges, env_edges.detach(), env_weights)
        loss = loss + ((weights - bound).clamp(min=0) ** 2 / (weights + eps)).mean()
    return loss
