r"""IBRNet's ray module: density decided along the ray, not point by point.

A point's pooled features say what the source views see there; whether it is the surface also
depends on what lies in front of it and behind it on the same ray (an occluder the views agree on,
a point that only one view sees). IBRNet (Wang et al. 2021) lets the samples of a ray attend to one
another before density is read: :math:`g'_i = g_i + \mathrm{MHA}(\mathrm{LN}(g))_i` over the samples
:math:`i` of one ray, then :math:`\sigma_i = \mathrm{head}(g'_i)`.

The renderer gives the field each sample's ray (:attr:`nerfgen.fields.Conditioning.rays`); samples
arrive packed, ray by ray, any number per ray. A point given without its ray is a ray of its own.

Density without a ray (an occupancy pass, a mesh) is read by a small :attr:`RayAttention.proxy`
head on the point's own features, trained alongside to follow the ray module's density (the target
detached, log densities compared): mip-NeRF 360's proposal idea inside one network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pad_rays(values: Tensor, rays: Tensor) -> tuple[Tensor, Tensor]:
    """Packed per-sample ``values [n, W]`` of non-decreasing ``rays [n]`` -> ``[R, S, W]`` (``R``
    rays present, ``S`` the most samples of one) and the ``[R, S]`` bool mask of real samples."""
    if rays.numel() > 1 and bool((rays[1:] < rays[:-1]).any()):
        raise ValueError("ray module: samples must arrive packed, ray by ray (non-decreasing ray indices)")
    _, counts = torch.unique_consecutive(rays, return_counts=True)
    row = torch.repeat_interleave(torch.arange(len(counts), device=rays.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    col = torch.arange(len(rays), device=rays.device) - starts[row]
    shape = (len(counts), int(counts.max()) if len(counts) else 0)
    padded = values.new_zeros(*shape, values.shape[-1])
    padded[row, col] = values
    mask = torch.zeros(shape, dtype=torch.bool, device=values.device)
    mask[row, col] = True
    return padded, mask


class RayAttention(nn.Module):
    """Self-attention among the samples of each ray, residual (it starts as the identity).

    Args:
        width: feature width.
        heads: attention heads.
    """

    def __init__(self, width: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)
        self.proxy = nn.Linear(width, 1)
        """The point-only density logit (see the module's notes)."""

    def forward(self, g: Tensor, rays: Tensor | None) -> Tensor:
        """``g [n, W]`` the samples' features, ``rays [n]`` their rays (None: each its own) ->
        ``[n, W]`` the features after the samples of each ray have seen one another."""
        if rays is None or g.shape[0] == 0:
            x = self.norm(g)[:, None]
            return g + self.attention(x, x, x, need_weights=False)[0][:, 0]
        padded, mask = pad_rays(g, rays)
        x = self.norm(padded)
        attended = self.attention(x, x, x, key_padding_mask=~mask, need_weights=False)[0]
        return g + attended[mask]


def proxy_loss(proxy_sigma: Tensor, sigma: Tensor) -> Tensor:
    """How far the point-only density is from the ray module's (the target detached), in log space."""
    return F.mse_loss(torch.log1p(proxy_sigma), torch.log1p(sigma.detach()))


__all__ = ["RayAttention", "pad_rays", "proxy_loss"]
