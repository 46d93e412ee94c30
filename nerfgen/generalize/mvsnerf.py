r"""MVSNeRF (Chen et al., ICCV 2021) in nerfgen: a plane-sweep cost volume from three source views,
regularised by a 3D CNN into a neural encoding volume, read by an MLP renderer; the public
pretrained weights load into it (:func:`load_mvsnerf_checkpoint`).

The network, as the paper and its ``v0`` weights define it:

* **2D features**: :math:`F_i = \mathrm{CNN}(I_i)`, 32 channels at 1/4 of the image's resolution
  (images normalised by ImageNet's mean and deviation; conv + batch norm + leaky ReLU 0.01).
* **Cost volume**: reference view 0; for depth planes :math:`d_j` from near to far and each
  reference cell, the point at depth :math:`d_j` is warped into every view, whose features and
  colours are read there (bilinear, zero outside); the volume holds the reference colours, the two
  warped source colours and the variance :math:`\mathrm{Var}_i(F_i) = \overline{F^2} - \bar F^2`
  over the views that see the point (41 channels), padded by ``pad`` cells on every side.
* **Encoding volume**: a 3D U-Net (three stride-2 levels, skip sums) -> 8 channels.
* **Renderer**: at a point :math:`x` with volume coordinates :math:`\nu(x)` (reference pixel over
  image size, depth normalised by near/far, the padding accounted for), the 8 volume features
  :math:`f = V(\nu)`, and each view's colour and in-image flag :math:`(c_i, m_i)`:
  :math:`h_0 = \gamma(\nu)`, :math:`h_{k+1} = \mathrm{relu}(W_k h_k \odot (B f'))` with
  :math:`f' = (f, c_i, m_i)`, the encoding re-entering after layer 4; :math:`\alpha = \mathrm{relu}(w_\alpha h)`,
  colour :math:`\sigma(W_c\, \mathrm{relu}(W_v (W_f h, d_{ref})))`.
* **Compositing**: :math:`w_j = (1 - e^{-\alpha_j}) \prod_{k<j} e^{-\alpha_k}`: the network's
  :math:`\alpha` is the optical depth of one sample. nerfgen's renderer composites
  :math:`1 - e^{-\sigma \delta}`, so the field returns :math:`\sigma = \alpha / \delta` with
  :math:`\delta` the spacing of the scene's uniform samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfgen.fields import Conditioning, FieldOutput, RadianceField
from nerfgen.generalize.projection import world_to_camera
from nerfgen.generalize.sources import SceneFeatures, SourceViews
from nerfgen.render import StratifiedConfig, StratifiedSampler

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LEAK = 0.01
"""Slope of the leaky ReLU after every batch norm (InPlaceABN's default)."""
VIEWS = 3
"""The network's cost volume holds exactly three views' colours."""
FAR_BOX = 1e4
"""Half side of the sampler's box: samples are bounded by near and far only."""


@dataclass
class MVSNeRFConfig:
    """How MVSNeRF's network is run (the weights fix its sizes)."""

    n_samples: int = 128
    """Uniform samples per ray between near and far."""
    depth_planes: int = 128
    """Planes of the cost volume between near and far."""
    pad: int = 24
    """Cells of padding around the cost volume, at feature resolution."""
    source_width: int = 0
    """Width the source views are resized to, a multiple of 32 (0: their own width, rounded down)."""
    source_height: int = 0
    """Height likewise."""
    norm: Literal["batch", "running"] = "batch"
    """Batch norms use the statistics of the views at hand (``batch``, how the reference
    renders) or the stored running statistics."""
    near: float = 0.0
    """Nearest depth of the volume and the samples (0: from the capture's bounds, 0.8 of the
    nearest, or the scene box)."""
    far: float = 0.0
    """Farthest depth likewise (0: 1.2 of the farthest bound)."""
    pe_frequencies: int = 10
    """Frequencies of the encoding of the volume coordinates."""

    def validate(self, source: str) -> None:
        checks = [(self.n_samples >= 2 and self.depth_planes % 8 == 0 and self.depth_planes >= 8,
                   "n_samples >= 2 and depth_planes a positive multiple of 8"),
                  (self.pad >= 0 and self.pad % 8 == 0, "pad a multiple of 8 >= 0"),
                  (self.source_width % 32 == 0 and self.source_height % 32 == 0, "source sizes multiples of 32"),
                  (self.far == 0 or self.far > self.near >= 0, "0 <= near < far (or both 0)")]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"{source}: expected {what}")


class Norm(nn.modules.batchnorm._BatchNorm):
    """Batch norm that normalises by the statistics of the batch at hand (``batch_stats``, as the
    reference renders) or by the stored running ones, and never updates the stored ones."""

    def __init__(self, channels: int, batch_stats: bool) -> None:
        super().__init__(channels)
        self.batch_stats = batch_stats

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() not in (4, 5):
            raise ValueError(f"Norm: expected a 4D or 5D input, got {x.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, None if self.batch_stats else self.running_mean,
                            None if self.batch_stats else self.running_var, self.weight, self.bias, self.batch_stats,
                            0.0, self.eps)


class ConvNormAct(nn.Module):
    """Convolution (no bias) -> batch norm -> leaky ReLU, 2D or 3D (names ``conv``, ``bn``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, pad: int = 1, dims: int = 2,
                 batch_stats: bool = True) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv, self.bn = conv(cin, cout, kernel, stride, pad, bias=False), Norm(cout, batch_stats)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), LEAK)


class UpNormAct(nn.Sequential):
    """Transposed 3D convolution (doubles each side) -> batch norm; leaky ReLU (names ``0``, ``1``)."""

    def __init__(self, cin: int, cout: int, batch_stats: bool) -> None:
        super().__init__(nn.ConvTranspose3d(cin, cout, 3, 2, 1, output_padding=1, bias=False), Norm(cout, batch_stats))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(super().forward(x), LEAK)


class FeatureNet(nn.Module):
    """Images ``[V, 3, H, W]`` -> features ``[V, 32, H/4, W/4]``."""

    def __init__(self, batch_stats: bool = True) -> None:
        super().__init__()
        b = batch_stats
        self.conv0 = nn.Sequential(ConvNormAct(3, 8, batch_stats=b), ConvNormAct(8, 8, batch_stats=b))
        self.conv1 = nn.Sequential(ConvNormAct(8, 16, 5, 2, 2, batch_stats=b), ConvNormAct(16, 16, batch_stats=b),
                                   ConvNormAct(16, 16, batch_stats=b))
        self.conv2 = nn.Sequential(ConvNormAct(16, 32, 5, 2, 2, batch_stats=b), ConvNormAct(32, 32, batch_stats=b),
                                   ConvNormAct(32, 32, batch_stats=b))
        self.toplayer = nn.Conv2d(32, 32, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.toplayer(self.conv2(self.conv1(self.conv0(x))))


class CostRegNet(nn.Module):
    """The 3D U-Net: ``[1, 41, D, h, w]`` -> ``[1, 8, D, h, w]`` (every side a multiple of 8)."""

    def __init__(self, cin: int = 32 + 3 * VIEWS, batch_stats: bool = True) -> None:
        super().__init__()
        b = {"dims": 3, "batch_stats": batch_stats}
        self.conv0 = ConvNormAct(cin, 8, **b)
        self.conv1, self.conv2 = ConvNormAct(8, 16, stride=2, **b), ConvNormAct(16, 16, **b)
        self.conv3, self.conv4 = ConvNormAct(16, 32, stride=2, **b), ConvNormAct(32, 32, **b)
        self.conv5, self.conv6 = ConvNormAct(32, 64, stride=2, **b), ConvNormAct(64, 64, **b)
        self.conv7, self.conv9, self.conv11 = (UpNormAct(64, 32, batch_stats), UpNormAct(32, 16, batch_stats),
                                               UpNormAct(16, 8, batch_stats))

    def forward(self, x: Tensor) -> Tensor:
        level0 = self.conv0(x)
        level1 = self.conv2(self.conv1(level0))
        level2 = self.conv4(self.conv3(level1))
        x = level2 + self.conv7(self.conv6(self.conv5(level2)))
        x = level1 + self.conv9(x)
        return level0 + self.conv11(x)


class RendererMLP(nn.Module):
    """MVSNeRF's ``v0`` renderer: encoded point ``[n, 63]``, features ``[n, 20]``, reference-frame
    direction ``[n, 3]`` -> colour ``[n, 3]`` and per-sample optical depth ``[n]``."""

    def __init__(self, depth: int = 6, width: int = 128, point: int = 63, features: int = 8 + 4 * VIEWS,
                 skip: int = 4) -> None:
        super().__init__()
        self.skip = skip
        self.pts_linears = nn.ModuleList([nn.Linear(point, width)] + [
            nn.Linear(width + (point if i == skip else 0), width) for i in range(depth - 1)])
        self.pts_bias = nn.Linear(features, width)
        self.views_linears = nn.ModuleList([nn.Linear(width + 3, width // 2)])
        self.feature_linear = nn.Linear(width, width)
        self.alpha_linear = nn.Linear(width, 1)
        self.rgb_linear = nn.Linear(width // 2, 3)

    def forward(self, point: Tensor, features: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
        bias = self.pts_bias(features)
        h = point
        for i, layer in enumerate(self.pts_linears):
            h = F.relu(layer(h) * bias)
            if i == self.skip:
                h = torch.cat([point, h], -1)
        alpha = F.relu(self.alpha_linear(h))[..., 0]
        h = F.relu(self.views_linears[0](torch.cat([self.feature_linear(h), direction], -1)))
        return torch.sigmoid(self.rgb_linear(h)), alpha


def embed(x: Tensor, n: int) -> Tensor:
    r""":math:`(x, \sin 2^k x, \cos 2^k x)_{k<n}`, frequency-major: ``[m, 3]`` -> ``[m, 3 (2n + 1)]``."""
    freqs = 2.0 ** torch.arange(n, device=x.device, dtype=x.dtype)
    scaled = (x[:, None, :] * freqs[:, None]).reshape(x.shape[0], -1)
    return torch.cat([x, torch.sin(scaled), torch.cos(scaled)], -1)


def pixel_matrices(cameras, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """Per view ``K [V, 3, 3]`` in MVSNeRF's pixel convention (pixel ``j`` at coordinate ``j``, so
    nerfgen's principal point less half a pixel), divided by ``scale`` (the feature stride), and
    the world -> camera rotation ``[V, 3, 3]`` and translation ``[V, 3]`` (OpenCV axes)."""
    k = torch.zeros(len(cameras), 3, 3, dtype=cameras.c2w.dtype, device=cameras.device)
    k[:, 0, 0], k[:, 1, 1] = cameras.fx / scale, cameras.fy / scale
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = (cameras.cx - 0.5) / scale, (cameras.cy - 0.5) / scale, 1.0
    rotation, translation = world_to_camera(cameras.c2w)
    return k, rotation, translation


def to_pixels(points: Tensor, k: Tensor, rotation: Tensor, translation: Tensor) -> tuple[Tensor, Tensor]:
    """World ``points [n, 3]`` -> pixel coordinates ``[n, 2]`` and depth ``[n]`` of one camera."""
    local = points @ rotation.T + translation
    pix = local @ k.T
    return pix[:, :2] / pix[:, 2:], local[:, 2]


def grid_of(xy: Tensor, width: int, height: int) -> Tensor:
    """Pixel coordinates (MVSNeRF's convention) -> ``grid_sample`` coordinates with corners aligned."""
    return torch.stack([xy[..., 0] / ((width - 1) / 2) - 1, xy[..., 1] / ((height - 1) / 2) - 1], -1)


def plane_sweep(features: Tensor, images: Tensor, cameras, depths: Tensor, pad: int, chunk: int = 16) -> Tensor:
    """MVSNeRF's cost volume ``[1, 9 + C, D, h + 2 pad, w + 2 pad]`` of ``features [V, C, h, w]``
    (and the views' colours ``images [V, 3, h, w]``), view 0 the reference, at ``depths [D]``
    (``chunk`` planes at a time, to bound the memory)."""
    v, c, h, w = features.shape
    k, rotation, translation = pixel_matrices(cameras, 4.0)
    ys, xs = torch.meshgrid(torch.arange(-pad, h + pad, dtype=depths.dtype, device=depths.device),
                            torch.arange(-pad, w + pad, dtype=depths.dtype, device=depths.device), indexing="ij")
    rays = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3) @ torch.linalg.inv(k[0]).T  # [P, 3]
    volume = features.new_zeros(1, 9 + c, depths.shape[0], h + 2 * pad, w + 2 * pad)
    volume[0, :3, :, pad:pad + h, pad:pad + w] = images[0, :, None]
    reference = F.pad(features[0], (pad, pad, pad, pad))[:, None]  # [C, 1, h', w']
    for start in range(0, depths.shape[0], chunk):
        planes = depths[start:start + chunk]
        d = planes.shape[0]
        world = (planes[:, None, None] * rays[None] - translation[0]) @ rotation[0]  # R^T (x - t): [d, P, 3]
        total, squares = reference.expand(c, d, -1, -1).clone(), (reference ** 2).expand(c, d, -1, -1).clone()
        count = torch.ones(d, h + 2 * pad, w + 2 * pad, dtype=depths.dtype, device=depths.device)
        for i in range(1, v):
            xy, _ = to_pixels(world.reshape(-1, 3), k[i], rotation[i], translation[i])
            grid = grid_of(xy, w, h).view(1, d, -1, 2)
            warped = F.grid_sample(torch.cat([features[i:i + 1], images[i:i + 1]], 1), grid, align_corners=True)
            warped = warped.view(c + 3, d, h + 2 * pad, w + 2 * pad)
            volume[0, 3 * i:3 * i + 3, start:start + d] = warped[c:]
            total += warped[:c]
            squares += warped[:c] ** 2
            count += (grid.abs() < 1).all(-1).view(d, h + 2 * pad, w + 2 * pad).to(count.dtype)
        volume[0, 9:, start:start + d] = squares / count - (total / count) ** 2
    return volume


class MVSField(RadianceField):
    """The renderer as a field: reads the scene's encoding volume and source colours."""

    accepts = frozenset({"views"})

    def __init__(self, config: MVSNeRFConfig) -> None:
        super().__init__(torch.tensor([-FAR_BOX] * 3 + [FAR_BOX] * 3))
        self.config = config
        self.nerf = RendererMLP(point=3 * (2 * config.pe_frequencies + 1))

    def query(self, positions: Tensor, directions: Tensor, views: SceneFeatures) -> tuple[Tensor, Tensor]:
        """Colour ``[n, 3]`` and per-sample optical depth ``[n]`` at ``positions``."""
        cams, pad = views.cameras, self.config.pad
        near, far = (float(v) for v in views.extra["near_far"])
        width, height = cams.width, cams.height
        k, rotation, translation = pixel_matrices(cams)
        xy, z = to_pixels(positions, k[0], rotation[0], translation[0])
        wf, hf = width / 4, height / 4
        nu = torch.stack([(xy[:, 0] / (width - 1) * wf + pad) / (wf + 2 * pad),
                          (xy[:, 1] / (height - 1) * hf + pad) / (hf + 2 * pad), (z - near) / (far - near)], -1)
        volume = views.extra["volume"]
        f = F.grid_sample(volume, (nu * 2 - 1).view(1, 1, 1, -1, 3), align_corners=True)[0, :, 0, 0].T  # [n, 8]
        parts = [f]
        for i in range(len(cams)):
            grid = grid_of(to_pixels(positions, k[i], rotation[i], translation[i])[0], width, height)
            colour = F.grid_sample(views.images[i:i + 1], grid.view(1, 1, -1, 2), padding_mode="border",
                                   align_corners=True)[0, :, 0].T
            parts += [colour, (grid.abs() < 1).all(-1, keepdim=True).to(colour.dtype)]
        direction = directions @ rotation[0].T
        return self.nerf(embed(nu, self.config.pe_frequencies), torch.cat(parts, -1), direction)

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        self.check(cond)
        if cond is None or cond.views is None:
            raise ValueError("MVSNeRF renders from source views: give Conditioning(views=...)")
        rgb, alpha = self.query(positions, directions, cond.views)
        near, far = (float(v) for v in cond.views.extra["near_far"])
        return FieldOutput(alpha * (self.config.n_samples / (far - near)), rgb)

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        directions = torch.zeros_like(positions)
        directions[:, 2] = -1
        return self.forward(positions, directions, cond).sigma


class MVSNeRF(nn.Module):
    """MVSNeRF's network: ``encode`` builds the scene's encoding volume from three source views
    (once), ``field`` renders any point, ``sampler_for`` samples the scene's depth range."""

    def __init__(self, config: MVSNeRFConfig) -> None:
        super().__init__()
        self.config = config
        batch = config.norm == "batch"
        self.feature = FeatureNet(batch)
        self.cost_reg_2 = CostRegNet(batch_stats=batch)
        self.field = MVSField(config)

    @property
    def device(self) -> torch.device:
        return self.field.aabb.device

    def depth_range(self, sources: SourceViews) -> tuple[float, float]:
        """Near and far of the scene: the config's, else from the capture's bounds (0.8 of the
        nearest, 1.2 of the farthest), else the cameras' distances to the origin -/+ 1.5."""
        cfg = self.config
        if cfg.far > 0:
            return cfg.near, cfg.far
        if sources.bounds is not None:
            return float(sources.bounds[:, 0].min()) * 0.8, float(sources.bounds[:, 1].max()) * 1.2
        distance = sources.cameras.c2w[:, :, 3].norm(dim=-1)
        return max(0.05, float(distance.min()) - 1.5), float(distance.max()) + 1.5

    def focus_depth(self, sources: SourceViews) -> float:
        near, far = self.depth_range(sources)
        return 1.0 / (0.25 / near + 0.75 / far)

    def sampler_for(self, features: SceneFeatures) -> StratifiedSampler:
        near, far = (float(v) for v in features.extra["near_far"])
        return StratifiedSampler(self.field.aabb, StratifiedConfig(self.config.n_samples, near, far))

    def encode(self, sources: SourceViews) -> SceneFeatures:
        """The scene's encoding volume from exactly three source views (view 0 the reference)."""
        if len(sources) != VIEWS:
            raise ValueError(f"{sources.source or sources.names[0]}: MVSNeRF renders from exactly {VIEWS} source "
                             f"views, got {len(sources)}")
        cfg = self.config
        w = cfg.source_width or max(32, sources.width // 32 * 32)
        h = cfg.source_height or max(32, sources.height // 32 * 32)
        near, far = self.depth_range(sources)
        sources = sources.resized(w, h).to(self.device)
        images = sources.images.permute(0, 3, 1, 2).contiguous()
        mean, std = images.new_tensor(IMAGENET_MEAN)[:, None, None], images.new_tensor(IMAGENET_STD)[:, None, None]
        features = self.feature((images - mean) / std)
        small = F.interpolate((images - mean) / std, size=features.shape[-2:], mode="bilinear", align_corners=False)
        depths = torch.linspace(near, far, cfg.depth_planes, device=self.device, dtype=images.dtype)
        volume = self.cost_reg_2(plane_sweep(features, small, sources.cameras, depths, cfg.pad))
        return SceneFeatures(sources.cameras, images, [], {"volume": volume, "near_far": torch.tensor([near, far])})


CHECKPOINT_PARTS = {"network_mvs_state_dict": "", "network_fn_state_dict": "field."}
"""Where each part of MVSNeRF's checkpoint goes: its keys, prefixed so, are this module's."""


def load_mvsnerf_checkpoint(model: MVSNeRF, path: str | Path) -> None:
    """Load MVSNeRF's published checkpoint (``torch.load(..., weights_only=True)``, no pickled
    code) into ``model``: every tensor must match one of the network's by name and shape, else
    one ValueError naming the file and what does not match."""
    from nerfgen.files import load_state

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MVSNeRF checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise ValueError(f"{path}: not a checkpoint torch loads without pickled code ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    missing = [k for k in CHECKPOINT_PARTS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise ValueError(f"{path}: not an MVSNeRF checkpoint (no {', '.join(missing)})")
    tensors = {prefix + k: v for part, prefix in CHECKPOINT_PARTS.items() for k, v in checkpoint[part].items()}
    own = model.state_dict()
    tensors.update({k: v for k, v in own.items() if k == "field.aabb"})
    load_state(model, tensors, path, "MVSNeRF's network (v0: 6 x 128 renderer, 8-channel encoding volume)")


__all__ = ["CostRegNet", "FeatureNet", "MVSField", "MVSNeRF", "MVSNeRFConfig", "RendererMLP", "embed",
           "load_mvsnerf_checkpoint", "pixel_matrices", "plane_sweep"]
