r"""pixelNeRF / GRF: a CNN encoder on the source images, and a field that projects each point into
every source view, reads the views' features there, and pools over the views.

Per point :math:`x` and source view :math:`v` (Yu et al. 2021, Trevithick & Yang 2021):

.. math::
    h_v = \mathrm{MLP}_1\big(\gamma(R_v x + t_v),\ R_v d,\ W(\pi_v(x)),\ I_v(\pi_v(x))\big), \qquad
    g = \mathrm{pool}_v(h_v), \qquad (\sigma, c) = \mathrm{MLP}_2(g)

with :math:`\gamma` a frequency encoding of the point in the view's camera frame, :math:`W` the
view's encoder features and :math:`I_v` its colours sampled bilinearly at the projection
:math:`\pi_v(x)`. Pooling (:data:`POOLING`) is pixelNeRF's mean, or IBRNet's visibility-weighted
mean and variance; colour (:data:`COLOUR`) is decoded by the MLP (pixelNeRF) or blended from the
source colours with weights the MLP predicts per view (IBRNet); with IBRNet's ray module
(:mod:`nerfgen.generalize.ray_module`) the samples of a ray attend to one another before density is
read. One view suffices; the result does not depend on the order of the views.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfgen.fields import Conditioning, FieldOutput, RadianceField
from nerfgen.generalize.occupancy import SkipConfig, SkipEmptySampler, scene_occupancy
from nerfgen.generalize.projection import Projected, project_points, sample_maps
from nerfgen.generalize.ray_module import RayAttention, proxy_loss
from nerfgen.generalize.sources import SceneFeatures, SourceViews
from nerfgen.render import StratifiedConfig, StratifiedSampler

SIGMA_SCALE = 10.0
"""Density is ``SIGMA_SCALE * softplus(raw - SIGMA_SHIFT)`` per world unit."""
SIGMA_SHIFT = 3.0
"""An untrained field starts nearly empty (about 0.5 per unit)."""


@dataclass
class EncoderConfig:
    """The CNN on each source image."""

    widths: tuple[int, ...] = (32, 64, 64)
    """Channels of each level; level ``l`` has ``1 / 2^(l + 1)`` of the image's resolution."""

    def validate(self, source: str) -> None:
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"{source}: widths: expected at least one positive channel count, got {self.widths}")


@dataclass
class PixelFieldConfig:
    """The field that reads the encoder's features."""

    width: int = 64
    """Width of the MLPs."""
    blocks_before: int = 2
    """Residual blocks per view before pooling (features enter each)."""
    blocks_after: int = 2
    """Residual blocks after pooling."""
    frequencies: int = 6
    """Frequencies of the encoding of the point in each view's frame."""
    pooling: Literal["mean", "meanvar"] = "mean"
    """``mean`` over views (pixelNeRF) or visibility-weighted ``meanvar`` (IBRNet)."""
    colour: Literal["mlp", "blend"] = "mlp"
    """``mlp``: the MLP decodes colour (pixelNeRF); ``blend``: colour is a blend of the source
    colours with predicted per-view weights (IBRNet)."""
    ray_module: bool = False
    """IBRNet's ray module: density from the samples of a ray attending to one another."""

    def validate(self, source: str) -> None:
        if min(self.width, self.blocks_before + 1, self.blocks_after + 1, self.frequencies + 1) < 1:
            raise ValueError(f"{source}: width >= 1, blocks and frequencies >= 0 expected")


@dataclass
class PixelNeRFConfig:
    """A pixelNeRF model: encoder, field, and the samples per ray."""

    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    field: PixelFieldConfig = dataclasses.field(default_factory=PixelFieldConfig)
    sampler: StratifiedConfig = dataclasses.field(default_factory=lambda: StratifiedConfig(n_samples=48))
    """Stratified samples per ray inside the scene box."""
    skip: SkipConfig = dataclasses.field(default_factory=SkipConfig)
    """Empty space skipped when rendering (:mod:`nerfgen.generalize.occupancy`)."""

    def validate(self, source: str) -> None:
        self.encoder.validate(f"{source}: encoder")
        self.field.validate(f"{source}: field")
        self.sampler.validate(f"{source}: sampler")
        self.skip.validate(f"{source}: skip")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1),
                         nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """Feature maps of a batch of images at ``1/2, 1/4, 1/8, ...`` of their resolution (pixelNeRF
    upsamples them to the first's and concatenates them: :meth:`PixelNeRF.encode`)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        widths = config.widths
        self.levels = nn.ModuleList(_conv(3 if i == 0 else widths[i - 1], w, 2) for i, w in enumerate(widths))
        self.out_channels = sum(widths)

    def forward(self, images: Tensor) -> list[Tensor]:
        """``images [V, 3, H, W]`` in [0, 1] -> one ``[V, C_l, H / 2^(l+1), W / 2^(l+1)]`` map per level."""
        x, maps = images * 2 - 1, []
        for level in self.levels:
            x = level(x)
            maps.append(x)
        return maps


class Block(nn.Module):
    """``x + W_2 relu(W_1 relu(x))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(width, width), nn.Linear(width, width)
        nn.init.zeros_(self.b.weight)
        nn.init.zeros_(self.b.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.relu(self.a(F.relu(x))))


def encode_frequencies(x: Tensor, n: int) -> Tensor:
    r""":math:`(x, \sin 2^k x, \cos 2^k x)_{k<n}` of ``x [..., 3]`` -> ``[..., 3 (2n + 1)]``."""
    freqs = 2.0 ** torch.arange(n, device=x.device, dtype=x.dtype)
    scaled = (x[..., None, :] * freqs[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(scaled), torch.cos(scaled)], -1)


def pool_views(h: Tensor, weights: Tensor, mode: str) -> Tensor:
    """Pool ``h [V, n, W]`` over the views: ``mean`` (plain) or ``meanvar`` (mean and variance,
    weighted by ``weights [V, n]``, concatenated). Symmetric in the views."""
    if mode == "mean":
        return h.mean(0)
    w = weights[..., None] / weights.sum(0).clamp(min=1e-6)[None, :, None]
    mean = (w * h).sum(0)
    var = (w * (h - mean) ** 2).sum(0)
    return torch.cat([mean, var], -1)


POOLING = ("mean", "meanvar")
COLOUR = ("mlp", "blend")


class PixelField(RadianceField):
    """The field of a pixelNeRF model: ``field(x, d, Conditioning(views=SceneFeatures))``.

    Args:
        aabb: ``[6]`` the scene box (zero density outside).
        config: sizes, pooling and colour.
        feature_channels: channels of the scene's maps (encoder levels and colour) together.
    """

    accepts = frozenset({"views"})

    def __init__(self, aabb: Tensor, config: PixelFieldConfig, feature_channels: int) -> None:
        super().__init__(aabb)
        self.config = config
        self.ray = RayAttention(config.width) if config.ray_module else None
        if self.ray is not None:
            self.accepts = frozenset({"views", "rays"})
        self._proxy_terms: list[Tensor] = []
        w, before = config.width, config.blocks_before
        self.point_in = nn.Linear(3 * (2 * config.frequencies + 1) + 3 + 1, w)
        self.feature_in = nn.Linear(feature_channels, w * (before + 1))
        self.before = nn.ModuleList(Block(w) for _ in range(before))
        self.pooled = nn.Linear(w * (2 if config.pooling == "meanvar" else 1), w)
        self.after = nn.ModuleList(Block(w) for _ in range(config.blocks_after))
        self.sigma = nn.Linear(w, 1)
        self.rgb = nn.Linear(w, 3)
        self.blend = nn.Linear(2 * w + 1, 1) if config.colour == "blend" else None

    def project_maps(self, maps: Tensor) -> Tensor:
        """The feature maps ``[V, C, h, w]`` through the first linear layer of the features
        (without its bias), once per scene: bilinear sampling is linear, so sampling these is
        sampling the features and then applying the layer, at a fraction of the cost."""
        return F.conv2d(maps, self.feature_in.weight[:, :, None, None])

    def views_of(self, positions: Tensor, directions: Tensor | None, cond: Conditioning | None
                 ) -> tuple[SceneFeatures, Projected, Tensor]:
        """The scene's views, the points projected into them, and the (projected) features there
        ``[V, n, C]``."""
        self.check(cond)
        if cond is None or cond.views is None:
            raise ValueError("a generalizable field renders from source views: give Conditioning(views=...)")
        views = cond.views
        proj = project_points(views.cameras, positions, directions)
        w, h = views.cameras.width, views.cameras.height
        return views, proj, sample_maps(views.maps[0], proj.uv, w, h)

    def trunk(self, positions: Tensor, directions: Tensor, cond: Conditioning | None):
        views, proj, sampled = self.views_of(positions, directions, cond)
        inside = proj.inside.to(positions.dtype)
        point = torch.cat([encode_frequencies(proj.local, self.config.frequencies), proj.directions,
                           inside[..., None]], -1)
        z = (sampled + self.feature_in.bias).chunk(len(self.before) + 1, -1)
        h = self.point_in(point) + z[0]
        for block, zk in zip(self.before, z[1:]):
            h = block(h + zk)
        g = self.pooled(F.relu(pool_views(h, inside, self.config.pooling)))
        for block in self.after:
            g = block(g)
        return views, proj, h, F.relu(g)

    def _sigma(self, raw: Tensor, positions: Tensor) -> Tensor:
        sigma = SIGMA_SCALE * F.softplus(raw[..., 0] - SIGMA_SHIFT)
        _, inside = self.normalize(positions)
        return sigma * inside

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        """The density of points on their own: with the ray module, its point-only proxy
        (:mod:`nerfgen.generalize.ray_module`), which occupancy passes and meshes read."""
        directions = torch.zeros_like(positions)
        directions[:, 2] = -1
        g = self.trunk(positions, directions, cond)[3]
        return self._sigma(self.sigma(g) if self.ray is None else self.ray.proxy(g), positions)

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        views, proj, h, g = self.trunk(positions, directions, cond)
        if self.ray is None:
            sigma = self._sigma(self.sigma(g), positions)
        else:
            sigma = self._sigma(self.sigma(self.ray(g, None if cond is None else cond.rays)), positions)
            if self.training and torch.is_grad_enabled():
                self._proxy_terms.append(proxy_loss(self._sigma(self.ray.proxy(g), positions), sigma))
        if self.blend is None:
            return FieldOutput(sigma, torch.sigmoid(self.rgb(g)))
        colours = sample_maps(views.images, proj.uv, views.cameras.width, views.cameras.height, "border")  # [V, n, 3]
        to_view = F.normalize(views.cameras.c2w[:, None, :, 3] - positions[None], dim=-1)  # [V, n, 3]
        agree = (to_view * -directions[None]).sum(-1, keepdim=True)  # cosine between the rays
        logits = self.blend(torch.cat([h, g.expand(h.shape[0], -1, -1), agree], -1))[..., 0]
        logits = logits - 1e4 * (~proj.inside).to(logits.dtype)
        weights = torch.softmax(logits, 0)
        return FieldOutput(sigma, (weights[..., None] * colours).sum(0))

    def regularizers(self) -> dict[str, Tensor]:
        """With the ray module, the proxy density's distance from the ray module's over the
        training renders since the last call (each render's term waits here until collected)."""
        if not self._proxy_terms:
            return {}
        terms, self._proxy_terms = self._proxy_terms, []
        return {"density_proxy": torch.stack(terms).mean()}


class PixelNeRF(nn.Module):
    """Encoder + field + sampler: a generalizable model that renders any scene from its source views.

    Args:
        config: the model's settings.
        aabb: ``[6]`` the scene box samples are taken in.
    """

    def __init__(self, config: PixelNeRFConfig, aabb: Tensor) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.encoder)
        self.field = PixelField(aabb, config.field, self.encoder.out_channels + 3)
        self.sampler = StratifiedSampler(self.field.aabb, config.sampler)

    @property
    def device(self) -> torch.device:
        return self.field.aabb.device

    def sampler_for(self, features: SceneFeatures) -> StratifiedSampler | SkipEmptySampler:
        """Training samples the whole box; rendering skips the scene's empty cells, read once per
        scene and kept with its features (``extra["occupied"]``)."""
        skip = self.config.skip
        if self.training or skip.resolution == 0:
            return self.sampler
        occupied = features.extra.get("occupied")
        if occupied is None:
            step = float((self.field.aabb[3:] - self.field.aabb[:3]).norm()) / self.sampler.config.n_samples
            occupied = scene_occupancy(self.field, Conditioning(views=features), skip.resolution, skip.threshold, step)
            features.extra["occupied"] = occupied
        return SkipEmptySampler(self.sampler, occupied, whole_rays=self.field.ray is not None)

    def encode(self, sources: SourceViews) -> SceneFeatures:
        """The scene's features, once per scene: the encoder on each source view, its levels
        upsampled to the first's resolution (half the image's) and concatenated with the colours
        there (pixelNeRF), then through the field's first feature layer
        (:meth:`PixelField.project_maps`)."""
        sources = sources.to(self.device)
        images = sources.images.permute(0, 3, 1, 2).contiguous()
        levels = self.encoder(images)
        size = levels[0].shape[-2:]
        levels = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                  for m in levels]
        colours = F.interpolate(images, size=size, mode="area")
        maps = self.field.project_maps(torch.cat([*levels, colours], 1))
        return SceneFeatures(sources.cameras, images, [maps])


__all__ = ["COLOUR", "Encoder", "EncoderConfig", "POOLING", "PixelField", "PixelFieldConfig", "PixelNeRF",
           "PixelNeRFConfig", "encode_frequencies", "pool_views"]
