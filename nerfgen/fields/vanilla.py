"""The original NeRF MLP (Mildenhall et al. 2020) with positional encoding, optionally conditioned
on latent codes as GRAF's generator is (Schwarz et al. 2020), and optionally a feature field."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.encodings import FrequencyEncoding


@dataclass
class VanillaFieldConfig:
    """Hyper-parameters of :class:`VanillaField` (the paper's values by default)."""

    depth: int = 8
    """Layers of the trunk."""
    width: int = 256
    """Width of the trunk."""
    skip: int = 4
    """Layer that sees the encoded input again."""
    position_frequencies: int = 10
    """Frequencies of the position encoding."""
    direction_frequencies: int = 4
    """Frequencies of the direction encoding."""
    shape_latent: int = 0
    """Length of the shape code appended to the encoded position (trunk input and skip); 0: none."""
    appearance_latent: int = 0
    """Length of the appearance code appended to the encoded direction (colour head); 0: none.
    ``cond.latent`` holds the shape code, then the appearance code."""
    features: int = 0
    """Output feature vectors of this length instead of a sigmoid colour (GIRAFFE); 0: rgb."""

    def validate(self, source: str) -> None:
        if not 0 <= self.skip < self.depth:
            raise ValueError(f"{source}: skip: expected a trunk layer in [0, {self.depth}), got {self.skip}")
        if min(self.shape_latent, self.appearance_latent, self.features) < 0:
            raise ValueError(f"{source}: shape_latent, appearance_latent and features must be >= 0")


class VanillaField(RadianceField):
    """NeRF's 8x256 ReLU MLP: density from position, colour from position and direction.

    With latent codes (``shape_latent`` / ``appearance_latent`` > 0) it is GRAF's conditional
    generator: ``cond.latent [n | 1, shape_latent + appearance_latent]`` (one code per point, or
    one for all); an object transform is accepted too.

    >>> field = VanillaField(torch.tensor([-1.0, -1, -1, 1, 1, 1]), VanillaFieldConfig(width=32, shape_latent=4))
    >>> out = field(torch.zeros(5, 3), torch.tensor([[0.0, 0, 1]]).expand(5, 3), Conditioning(torch.randn(1, 4)))
    >>> out.sigma.shape, out.rgb.shape
    (torch.Size([5]), torch.Size([5, 3]))
    """

    def __init__(self, aabb: Tensor, config: VanillaFieldConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or VanillaFieldConfig()
        self.config = cfg
        self.n_latent = cfg.shape_latent + cfg.appearance_latent
        if self.n_latent > 0:
            self.accepts = frozenset({"transform", "latent"})
        self.out_channels = cfg.features or 3
        self.pos_enc = FrequencyEncoding(cfg.position_frequencies)
        self.dir_enc = FrequencyEncoding(cfg.direction_frequencies)
        trunk_in = self.pos_enc.out_dim + cfg.shape_latent
        dims = [trunk_in] + [cfg.width] * cfg.depth
        self.trunk = nn.ModuleList(
            nn.Linear(dims[i] + (trunk_in if i == cfg.skip else 0), dims[i + 1]) for i in range(cfg.depth)
        )
        self.sigma_head = nn.Linear(cfg.width, 1)
        self.feature = nn.Linear(cfg.width, cfg.width)
        self.color_head = nn.Sequential(
            nn.Linear(cfg.width + self.dir_enc.out_dim + cfg.appearance_latent, cfg.width // 2), nn.ReLU(inplace=True),
            nn.Linear(cfg.width // 2, self.out_channels),
        )

    def _codes(self, cond: Conditioning | None, n: int) -> tuple[Tensor | None, Tensor | None]:
        """The shape and appearance codes ``[n, *]`` (None where the config has none)."""
        if self.n_latent == 0:
            return None, None
        if cond is None or cond.latent is None or cond.latent.shape[-1] != self.n_latent:
            got = None if cond is None or cond.latent is None else list(cond.latent.shape)
            raise ValueError(f"VanillaField needs cond.latent [n | 1, {self.n_latent}] "
                             f"(shape {self.config.shape_latent} + appearance {self.config.appearance_latent}), got {got}")
        z = cond.latent.expand(n, -1)
        s = self.config.shape_latent
        return (z[:, :s] if s else None), (z[:, s:] if self.config.appearance_latent else None)

    def _trunk(self, positions: Tensor, shape_code: Tensor | None) -> tuple[Tensor, Tensor]:
        unit, inside = self.normalize(positions)
        x = self.pos_enc(unit * 2.0 - 1.0)
        if shape_code is not None:
            x = torch.cat([x, shape_code], -1)
        h = x
        for i, layer in enumerate(self.trunk):
            if i == self.config.skip:
                h = torch.cat([h, x], -1)
            h = torch.relu(layer(h))
        sigma = torch.nn.functional.softplus(self.sigma_head(h)[:, 0]) * inside
        return sigma, h

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        positions, _ = self.local(positions, None, cond)
        return self._trunk(positions, self._codes(cond, positions.shape[0])[0])[0]

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        positions, directions = self.local(positions, directions, cond)
        shape_code, appearance_code = self._codes(cond, positions.shape[0])
        sigma, h = self._trunk(positions, shape_code)
        head = [self.feature(h), self.dir_enc(directions)] + ([appearance_code] if appearance_code is not None else [])
        out = self.color_head(torch.cat(head, -1))
        if self.config.features:
            return FieldOutput(sigma, features=out)
        return FieldOutput(sigma, rgb=torch.sigmoid(out))
