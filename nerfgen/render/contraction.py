r"""Scene contraction (mip-NeRF 360): all of space squeezed into a bounded box for a hash grid.

A field's ``aabb`` is the inner, uncontracted region. Points are first mapped to the box's
normalised coordinates :math:`x \in [-1, 1]^3`, then

.. math::
    \operatorname{contract}(x) = \begin{cases} x & \|x\| \le 1 \\
    \left(2 - \frac{1}{\|x\|}\right) \frac{x}{\|x\|} & \|x\| > 1 \end{cases}

with :math:`\|\cdot\|` the L-infinity norm (nerfacto's default, which keeps the inner box a box)
or the L2 norm (mip-NeRF 360's ball). The result lies in :math:`[-2, 2]^3`; :func:`contract_to_unit`
maps it to :math:`[0, 1]^3`, what a hash grid encodes. The module depends on torch alone.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Contraction = Literal["none", "linf", "l2"]
"""``none`` (a bounded box, points outside are empty), ``linf`` or ``l2`` (the norm of :func:`contract`)."""
CONTRACTIONS: tuple[str, ...] = ("none", "linf", "l2")


def contract(x: Tensor, kind: Contraction = "linf") -> Tensor:
    r"""mip-NeRF 360's contraction of normalised points: identity in the unit ball of the norm,
    :math:`(2 - 1/\|x\|)\, x / \|x\|` outside it.

    Args:
        x: ``[..., 3]`` points in the inner box's normalised coordinates (the box is ``[-1, 1]^3``).
        kind: ``linf`` or ``l2`` (``none`` returns ``x`` unchanged).

    Returns:
        ``[..., 3]`` in ``[-2, 2]^3`` (``linf``) or the radius-2 ball (``l2``); differentiable, with
        finite gradients everywhere (the origin and infinity-bound points included).

    >>> contract(torch.tensor([[0.5, 0.0, 0.0], [4.0, 2.0, 0.0]])).tolist()
    [[0.5, 0.0, 0.0], [1.75, 0.875, 0.0]]
    """
    if kind == "none":
        return x
    if kind not in CONTRACTIONS:
        raise ValueError(f"contract: kind: expected one of {', '.join(CONTRACTIONS)}, got {kind!r}")
    norm = x.abs().amax(-1, keepdim=True)  # [..., 1] the L-inf norm
    if kind == "l2":  # scaled by the L-inf norm first, so huge points do not overflow the squares
        scale = norm.clamp(min=torch.finfo(x.dtype).tiny)
        norm = scale * (x / scale).norm(dim=-1, keepdim=True)
    outside = norm > 1
    safe = torch.where(outside, norm, torch.ones_like(norm))  # no 1/0 in either branch's gradient
    return torch.where(outside, (2.0 - 1.0 / safe) * (x / safe), x)


def contract_to_unit(positions: Tensor, aabb: Tensor, kind: Contraction = "linf") -> Tensor:
    """World ``positions [n, 3]`` -> contracted points in ``[0, 1]^3`` (the inner box ``aabb [6]``
    fills the central ``[1/4, 3/4]^3``)."""
    lo, hi = aabb[:3], aabb[3:]
    x = (positions - lo) / (hi - lo) * 2.0 - 1.0
    return (contract(x, kind) + 2.0) * 0.25
