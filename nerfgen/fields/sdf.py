r"""A signed-distance field rendered as a density (VolSDF): the surface of a refined generated object.

A hash grid and a small network give the signed distance :math:`d(x)` (negative inside) and
geometry features; a colour head turns the features into albedo (no view dependence: the object's
own colour, what a textured mesh carries). The renderer sees the density

.. math::
    \sigma(x) = \frac{1}{\beta}\,\Psi_\beta(-d(x)), \qquad
    \Psi_\beta(s) = \begin{cases} \tfrac12 e^{s/\beta} & s \le 0 \\ 1 - \tfrac12 e^{-s/\beta} & s > 0 \end{cases}

(the CDF of a Laplace distribution of scale :math:`\beta`): :math:`1/\beta` inside, falling to 0
within a few :math:`\beta` of the surface. As :math:`\beta` shrinks the opacity of every ray
becomes 0 or 1 and a silhouette's edge narrows to the pixel; :attr:`SDFField.beta` is a buffer (the
refinement anneals it, a saved run keeps its last value).

>>> field = SDFField(torch.tensor([-1.0, -1, -1, 1, 1, 1]), SDFFieldConfig(init_radius=0.5))
>>> field.sdf(torch.zeros(1, 3)).shape
torch.Size([1])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.encodings import HashEncoding, mlp


@dataclass
class SDFFieldConfig:
    """Hyper-parameters of :class:`SDFField` (sized for a CPU)."""

    n_levels: int = 8
    """Hash-grid levels."""
    n_features: int = 2
    """Features per level."""
    log2_table_size: int = 15
    """log2 of the rows per level."""
    base_resolution: int = 16
    """Coarsest grid resolution."""
    max_resolution: int = 256
    """Finest grid resolution."""
    hidden: int = 64
    """Width of the hidden layers."""
    geo_features: int = 15
    """Geometry features handed from the distance network to the colour head."""
    init_radius: float = 0.5
    """The untrained field is a sphere of this radius at the box's centre (the network adds to
    ``|x - centre| - init_radius``)."""
    beta: float = 0.01
    """Initial Laplace scale :math:`\\beta` of the density (world units)."""


def laplace_density(sdf: Tensor, beta: float | Tensor) -> Tensor:
    r""":math:`\sigma = \Psi_\beta(-d) / \beta` of signed distances ``sdf [n]`` (VolSDF), computed
    without overflow on either side of the surface."""
    s = -sdf / beta
    half = 0.5 * torch.exp(-s.abs())
    return torch.where(s <= 0, half, 1 - half) / beta


class SDFField(RadianceField):
    """Signed distance + albedo over a box: ``sdf(positions)``, ``density(positions)`` (VolSDF) and
    ``field(positions, directions) -> FieldOutput(sigma, rgb)`` (directions are ignored: albedo)."""

    accepts = frozenset({"transform"})

    def __init__(self, aabb: Tensor, config: SDFFieldConfig | None = None) -> None:
        super().__init__(aabb)
        self.config = c = config or SDFFieldConfig()
        self.encoding = HashEncoding(c.n_levels, c.n_features, c.log2_table_size, c.base_resolution,
                                     c.max_resolution)
        self.sdf_net = mlp(self.encoding.out_dim + 3, c.hidden, 2, 1 + c.geo_features)
        with torch.no_grad():  # start as the sphere
            self.sdf_net[-1].weight[0].mul_(0.01)
            self.sdf_net[-1].bias[0].zero_()
        self.color_net = mlp(c.geo_features, c.hidden, 1, 3)
        self.register_buffer("beta", torch.tensor(float(c.beta)))

    def _geometry(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``sdf [n]`` and geometry features ``[n, geo_features]`` at ``positions [n, 3]`` (field frame)."""
        unit, _ = self.normalize(positions)
        h = self.sdf_net(torch.cat([self.encoding(unit), unit * 2 - 1], -1))
        center = (self.aabb[:3] + self.aabb[3:]) * 0.5
        sphere = (positions - center).norm(dim=-1) - self.config.init_radius
        return sphere + h[:, 0], h[:, 1:]

    def sdf(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``positions [n, 3]`` -> signed distance ``[n]`` (negative inside)."""
        positions, _ = self.local(positions, None, cond)
        return self._geometry(positions)[0]

    def _sigma(self, sdf: Tensor, positions: Tensor) -> Tensor:
        _, inside = self.normalize(positions)
        return laplace_density(sdf, self.beta) * inside

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        positions, _ = self.local(positions, None, cond)
        return self._sigma(self._geometry(positions)[0], positions)

    def grown_density(self, positions: Tensor, grow: float) -> Tensor:
        """The density of the surface moved ``grow`` world units outwards (``sdf - grow``): where an
        occupancy grid evaluated at one point of a cell must see the surface anywhere in the cell."""
        return self._sigma(self.sdf(positions) - grow, positions)

    def albedo(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``positions [n, 3]`` -> colour ``[n, 3]`` in [0, 1]."""
        positions, _ = self.local(positions, None, cond)
        return torch.sigmoid(self.color_net(self._geometry(positions)[1]))

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        positions, _ = self.local(positions, directions, cond)
        sdf, geo = self._geometry(positions)
        return FieldOutput(self._sigma(sdf, positions), torch.sigmoid(self.color_net(geo)))
