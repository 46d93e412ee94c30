r"""Surface normals of a density field: :math:`n = -\nabla\sigma / \|\nabla\sigma\|`.

Central finite differences (threestudio's ``finite_difference`` normals): six extra density
queries per point, differentiable in the field's parameters with any encoding backend (a
compiled kernel need not support double backward).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

_OFFSETS = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])


def density_normals(density_fn: Callable[[Tensor], Tensor], positions: Tensor, eps: float) -> Tensor:
    r"""Unit normals pointing out of the density, :math:`-\nabla\sigma` by central differences.

    Args:
        density_fn: ``positions [n, 3] -> sigma [n]``.
        positions: ``[n, 3]``.
        eps: half the difference step (world units).

    Returns:
        ``[n, 3]`` unit vectors (zero where the density is flat).

    >>> n = density_normals(lambda x: (1 - x.norm(dim=-1)).clamp(min=0), torch.tensor([[0.5, 0, 0]]), 1e-3)
    >>> [round(v, 3) for v in n[0].tolist()]
    [1.0, 0.0, 0.0]
    """
    offsets = _OFFSETS.to(positions) * eps  # [6, 3]
    sigma = density_fn((positions[:, None, :] + offsets).reshape(-1, 3)).view(-1, 3, 2)
    grad = (sigma[..., 0] - sigma[..., 1]) / (2 * eps)  # [n, 3]
    return -grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-10)
