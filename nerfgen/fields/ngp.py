"""Instant-ngp field: hash-grid density network and a spherical-harmonics colour network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from nerfgen.fields.activations import trunc_exp
from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.encodings import HashEncoding, SHEncoding, fused_layers, mlp, tcnn_mlp
from nerfgen.ops.mlp import ngp_density, ngp_mlp


@dataclass
class NGPFieldConfig:
    """Hyper-parameters of :class:`NGPField` (instant-ngp's defaults, sized for a CPU)."""

    n_levels: int = 16
    """Hash-grid levels."""
    n_features: int = 2
    """Features per level."""
    log2_table_size: int = 19
    """log2 of the rows per level."""
    base_resolution: int = 16
    """Coarsest grid resolution."""
    max_resolution: int = 2048
    """Finest grid resolution (multiplied by the scene's cascade extent)."""
    hidden: int = 64
    """Width of both MLPs."""
    geo_features: int = 15
    """Features passed from the density network to the colour network."""
    color_layers: int = 2
    """Hidden layers of the colour network."""
    implementation: Literal["auto", "nerfgen", "tcnn"] = "auto"
    """Backend of the hash encoding and the MLPs: auto | nerfgen | tcnn (tiny-cuda-nn's encoding and
    FullyFusedMLPs, CUDA only; auto picks it where it imports and CUDA is present). Its parameters are
    its own: a run trained with tcnn opens only where tcnn runs."""
    fused_mlp: bool = True
    """Run both networks in nerfgen's fused MLP kernel where it serves (CPU tensors, no appearance
    embedding in the colour network; ``nerfgen.ops.mlp``); False: torch's layers."""
    blob_density: float = 0.0
    """Density bias of a blob at the box centre, ``blob_density * (1 - r / blob_radius)`` added to the
    raw density before its activation (Magic3D); it falls below zero beyond ``blob_radius``, which
    keeps the box edges empty. 0 turns it off. Text-to-3D starts from this blob."""
    blob_radius: float = 0.5
    """Distance from the box centre (world units) where the blob's bias crosses zero."""
    appearance_dim: int = 0
    """Length of a learned per-image appearance embedding appended to the colour network's input
    (NeRF-W / nerfacto); 0 turns it off, and the field is then exactly the plain instant-ngp one."""
    appearance_images: int = 0
    """Rows of the appearance embedding: the number of training images. Needed when
    ``appearance_dim > 0``; reconstruction fills it in from the training set."""

    def validate(self, source: str) -> None:
        if self.appearance_dim < 0 or self.appearance_images < 0:
            raise ValueError(f"{source}: appearance_dim and appearance_images must be >= 0, got "
                             f"{self.appearance_dim} and {self.appearance_images}")


class NGPField(RadianceField):
    """Hash-grid radiance field (Müller et al. 2022).

    Conditioning: an object transform (:class:`Conditioning`). With an appearance embedding
    (``appearance_dim > 0``) also ``cond.latent``: ``[n | 1]`` integer training-image indices (their
    embedding rows are used) or ``[n | 1, appearance_dim]`` float codes used as given; without one,
    the mean of the training images' embeddings (:attr:`appearance_protocol`). Density never
    depends on appearance. Without an embedding, latent codes are rejected.

    >>> field = NGPField(torch.tensor([-1.0, -1, -1, 1, 1, 1]), NGPFieldConfig(log2_table_size=12))
    >>> out = field(torch.zeros(4, 3), torch.tensor([[0.0, 0, 1]]).expand(4, 3))
    >>> out.sigma.shape, out.rgb.shape
    (torch.Size([4]), torch.Size([4, 3]))
    """

    def __init__(self, aabb: Tensor, config: NGPFieldConfig | None = None) -> None:
        super().__init__(aabb)
        cfg = config or NGPFieldConfig()
        self.config = cfg
        self.encoding = HashEncoding(
            cfg.n_levels, cfg.n_features, cfg.log2_table_size, cfg.base_resolution, cfg.max_resolution,
            cfg.implementation,
        )
        make_mlp = mlp if self.encoding.tcnn is None else tcnn_mlp
        self.density_net = make_mlp(self.encoding.out_dim, cfg.hidden, 1, 1 + cfg.geo_features)
        self.direction_encoding = SHEncoding()
        self.color_net = make_mlp(SHEncoding.out_dim + cfg.geo_features + cfg.appearance_dim, cfg.hidden,
                                  cfg.color_layers, 3)
        if cfg.appearance_dim > 0:  # made last: the other modules draw the same initial values as without it
            if cfg.appearance_images < 1:
                raise ValueError("NGPField: appearance_dim > 0 needs appearance_images >= 1 (the number of "
                                 "training images)")
            self.appearance = torch.nn.Embedding(cfg.appearance_images, cfg.appearance_dim)
            self.accepts = type(self).accepts | {"latent"}

    @property
    def appearance_protocol(self) -> str:
        """How views without an image index (evaluation, novel views) are coloured, for reports."""
        if self.config.appearance_dim == 0:
            return "appearance: no embedding"
        return f"appearance: mean training embedding (of {self.config.appearance_images} images)"

    def appearance_code(self, latent: Tensor | None, n: int) -> Tensor:
        """The appearance codes ``[n | 1, appearance_dim]`` for ``cond.latent`` (see the class)."""
        table = self.appearance.weight
        if latent is None:
            return table.mean(0, keepdim=True)
        if not latent.is_floating_point():
            if latent.ndim != 1 or latent.shape[0] not in (1, n):
                raise ValueError(f"NGPField: integer cond.latent must be image indices [{n} | 1], got "
                                 f"{list(latent.shape)}")
            # Checked where it costs nothing (a host tensor); on a GPU the lookup itself fails on a
            # bad index, and checking would make every training step wait for the device.
            if latent.device.type == "cpu" and bool(((latent < 0) | (latent >= table.shape[0])).any()):
                raise ValueError(f"NGPField: image index out of range [0, {table.shape[0]}) in cond.latent")
            return self.appearance(latent)
        if latent.ndim != 2 or latent.shape[0] not in (1, n) or latent.shape[1] != table.shape[1]:
            raise ValueError(f"NGPField: float cond.latent must be appearance codes [{n} | 1, {table.shape[1]}], "
                             f"got {list(latent.shape)}")
        return latent.to(table.dtype)

    @property
    def fused(self) -> bool:
        """Whether the networks go through :func:`nerfgen.ops.mlp.ngp_mlp` (which falls back to the
        same layers in torch where its kernel does not serve the tensors)."""
        return self.config.fused_mlp and self.encoding.tcnn is None

    def mlp_layers(self) -> tuple[list[Tensor], list[Tensor], int]:
        """Weights and biases of the density then colour networks' layers, and how many are the
        density network's."""
        return fused_layers(self.density_net, self.color_net)

    def _sigma(self, raw_out: Tensor, positions: Tensor, inside: Tensor) -> Tensor:
        """Density from the density network's first output (and the blob's bias)."""
        raw = raw_out - 1.0
        if self.config.blob_density != 0:
            center = (self.aabb[:3] + self.aabb[3:]) * 0.5
            raw = raw + self.config.blob_density * (1.0 - (positions - center).norm(dim=-1) / self.config.blob_radius)
        return trunc_exp(raw) * inside

    def _geometry(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        unit, inside = self.normalize(positions)
        h = self.density_net(self.encoding(unit))
        return self._sigma(h[:, 0], positions, inside), h[:, 1:]

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        positions, _ = self.local(positions, None, cond)
        if self.fused:
            unit, inside = self.normalize(positions)
            weights, biases, n_density = self.mlp_layers()
            raw = ngp_density(self.encoding(unit), weights[:n_density], biases[:n_density])
            return self._sigma(raw, positions, inside)
        return self._geometry(positions)[0]

    def radiance_at(self, positions: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        """``sigma [n]`` and ``rgb [n, m, 3]`` at ``positions [n, 3]`` (the field's frame) seen along
        each of ``directions [m, 3]``, the density network run once per point (baking); views
        without an image index are coloured as :attr:`appearance_protocol` says."""
        sigma, geo = self._geometry(positions)
        n, m = positions.shape[0], directions.shape[0]
        parts = [self.direction_encoding(directions)[None].expand(n, m, -1), geo[:, None].expand(n, m, -1)]
        if self.config.appearance_dim > 0:
            parts.append(self.appearance_code(None, 1)[None].expand(n, m, -1))
        rgb = torch.sigmoid(self.color_net(torch.cat(parts, -1).reshape(n * m, -1)))
        return sigma, rgb.view(n, m, 3)

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        positions, directions = self.local(positions, directions, cond)
        if self.fused and self.config.appearance_dim == 0:
            unit, inside = self.normalize(positions)
            raw, rgb = ngp_mlp(self.encoding(unit), self.direction_encoding(directions), *self.mlp_layers())
            return FieldOutput(self._sigma(raw, positions, inside), rgb)
        sigma, geo = self._geometry(positions)
        parts = [self.direction_encoding(directions), geo]
        if self.config.appearance_dim > 0:
            code = self.appearance_code(None if cond is None else cond.latent, positions.shape[0])
            parts.append(code.expand(positions.shape[0], -1))
        return FieldOutput(sigma, torch.sigmoid(self.color_net(torch.cat(parts, -1))))
