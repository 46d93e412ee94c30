"""Is a generated object solid with crisp edges? Figures that see fuzz, measured on what a user sees:
the accumulated opacity of a render, and the surface a mesh export contours.

* :func:`semi_transparent_share`: of the pixels an object covers (opacity above 0.05), the share
  that are neither empty nor opaque (opacity in (0.05, 0.95)). A solid object rendered with
  anti-aliased edges has only its outline's pixels there; a cloud has most of them.
* :func:`edge_width`: how many pixels the opacity takes to go from 0.9 to 0.1 across the
  silhouette, measured along the opacity's gradient at each outline pixel (median over the outline).
  A hard axis-aligned edge measures 0.8, an anti-aliased disc 1.2, a linear ramp over w pixels
  about 0.8 w (w = 8: 6.4), a haze many.
* :func:`normal_consistency`: how well the contoured surface's triangles face the way the density
  says its surface faces (area-weighted mean cosine of each face normal with the density's outward
  normal at its centroid). A coherent surface scores near 1; fuzz, whose gradient points every
  which way inside a half-transparent skin, scores low.

>>> alpha = torch.zeros(32, 32); alpha[8:24, 8:24] = 1.0
>>> round(semi_transparent_share(alpha), 3), round(edge_width(alpha), 2)
(0.0, 0.8)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

COVERED = 0.05
"""Opacity above which a pixel counts as covered by the object."""
OPAQUE = 0.95
"""Opacity at or above which a pixel counts as opaque."""
EDGE_LOW, EDGE_HIGH = 0.1, 0.9
"""Opacities between which an edge's width is measured."""


def semi_transparent_share(alpha: Tensor) -> float:
    """Share of the covered pixels (opacity > :data:`COVERED`) of ``alpha [..., H, W]`` whose
    opacity is below :data:`OPAQUE`; 0 when nothing is covered."""
    covered = alpha > COVERED
    n = int(covered.sum())
    return float((covered & (alpha < OPAQUE)).sum()) / n if n else 0.0


def _outward_directions(alpha: Tensor) -> Tensor:
    """``[H, W, 2]`` unit (x, y) directions in which ``alpha [H, W]`` falls fastest (Sobel of a
    lightly blurred copy), zero where it is flat."""
    kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
    smooth = F.conv2d(alpha[None, None], (kernel[:, None] * kernel[None, :])[None, None], padding=1)
    sobel_x = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
    gx = F.conv2d(F.pad(smooth, (1, 1, 1, 1), mode="replicate"), sobel_x[None, None])[0, 0]
    gy = F.conv2d(F.pad(smooth, (1, 1, 1, 1), mode="replicate"), sobel_x.T[None, None])[0, 0]
    g = -torch.stack([gx, gy], -1)
    return g / g.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def _crossing(t: Tensor, profile: Tensor, level: Tensor | float, inward: bool) -> Tensor:
    """Per row of ``profile [N, K]`` (opacity at offsets ``t [K]``, falling with ``t``), the offset
    nearest 0 on the inner (``inward``: ``t <= 0``, opacity >= level) or outer side (``t >= 0``,
    opacity <= level) where the opacity reaches ``level``, linearly interpolated to the next sample
    towards 0; NaN where it never does."""
    if inward:
        hit = (t <= 0) & (profile >= level)
        k = torch.where(hit, torch.arange(len(t)), -1).max(1).values
        nxt = (k + 1).clamp(max=len(t) - 1)
    else:
        hit = (t >= 0) & (profile <= level)
        k = torch.where(hit, torch.arange(len(t)), len(t)).min(1).values
        nxt = (k - 1).clamp(min=0)
    found = hit.any(1)
    k = k.clamp(0, len(t) - 1)
    a, b = profile.gather(1, k[:, None])[:, 0], profile.gather(1, nxt[:, None])[:, 0]
    frac = ((a - level) / (a - b)).nan_to_num(0.0).clamp(0, 1)
    where = t[k] + frac * (t[nxt] - t[k])
    return torch.where(found, where, torch.full_like(where, float("nan")))


def edge_widths(alpha: Tensor, reach: float = 8.0, step: float = 0.25) -> Tensor:
    """Widths in pixels (``[N]``, one per outline pixel of ``alpha [H, W]``: opacity >= 0.5 with a
    4-neighbour below) over which the opacity falls from :data:`EDGE_HIGH` to :data:`EDGE_LOW`
    along its outward gradient, sampled bilinearly every ``step`` pixels up to ``reach`` pixels
    either side; an edge that does not get there within ``reach`` counts as ``2 * reach``."""
    inside = alpha >= 0.5
    pad = F.pad(inside[None, None].float(), (1, 1, 1, 1), value=0.0)[0, 0] > 0.5
    outline = inside & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:])
    ys, xs = outline.nonzero(as_tuple=True)
    if len(ys) == 0:
        return torch.zeros(0)
    direction = _outward_directions(alpha.float())[ys, xs]
    t = torch.arange(-reach, reach + step / 2, step)
    px = xs[:, None].float() + t[None] * direction[:, :1]
    py = ys[:, None].float() + t[None] * direction[:, 1:]
    h, w = alpha.shape
    grid = torch.stack([(px + 0.5) / w * 2 - 1, (py + 0.5) / h * 2 - 1], -1)
    profile = F.grid_sample(alpha.float()[None, None], grid[None], mode="bilinear", padding_mode="zeros",
                            align_corners=False)[0, 0]
    width = _crossing(t, profile, EDGE_LOW, inward=False) - _crossing(t, profile, EDGE_HIGH, inward=True)
    return width.nan_to_num(2 * reach)


def edge_width(alpha: Tensor, reach: float = 8.0) -> float:
    """Median of :func:`edge_widths` over the outline of ``alpha [H, W]`` (or, for ``[V, H, W]``,
    over the outlines of every view); 0 when nothing is covered."""
    views = alpha.reshape(-1, *alpha.shape[-2:])
    widths = torch.cat([edge_widths(a, reach) for a in views])
    return float(widths.median()) if len(widths) else 0.0


def normal_consistency(density: Callable[[Tensor], Tensor], vertices: np.ndarray, faces: np.ndarray,
                       chunk: int = 1 << 16) -> float:
    """Area-weighted mean cosine between each face normal of the mesh ``(vertices [V, 3], faces
    [F, 3])`` (counter-clockwise seen from outside) and the outward normal ``-grad sigma / |grad
    sigma|`` of ``density`` (``positions [N, 3] -> sigma [N]``) at the face's centroid. 1: the
    density's surface is the mesh's; near 0: its gradient is noise."""
    v = torch.as_tensor(np.ascontiguousarray(vertices), dtype=torch.float32)
    f = torch.as_tensor(np.ascontiguousarray(faces), dtype=torch.long)
    if len(f) == 0:
        return 0.0
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = torch.linalg.cross(b - a, c - a)
    area = cross.norm(dim=-1)
    normal = cross / area[:, None].clamp(min=1e-12)
    centroid = (a + b + c) / 3
    cosines = []
    for start in range(0, len(f), chunk):
        x = centroid[start:start + chunk].clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(density(x).sum(), x)
        outward = -grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        cosines.append((outward * normal[start:start + chunk]).sum(-1))
    cos = torch.cat(cosines)
    return float((cos * area).sum() / area.sum().clamp(min=1e-12))
