r"""A small UNet that predicts the noise in a pixel-space image, given the timestep, a sentence
embedding of the caption and the camera's viewing angles.

The three conditions are embedded and summed into one vector :math:`e` that modulates every
residual block (FiLM: ``GroupNorm(h) * (1 + scale(e)) + shift(e)``, as in ADM), so the caption
and the camera act on every resolution. The camera enters as Fourier features of the azimuth,
the sine and cosine of the elevation and the normalised distance (MVDream conditions on the
camera the same way, through the timestep embedding).

>>> net = UNet(UNetConfig(resolution=16, channels=16, multipliers=(1, 2), attention_levels=()))
>>> eps = net(torch.zeros(2, 3, 16, 16), torch.tensor([0, 999]), torch.zeros(2, 384), torch.zeros(2, 3))
>>> tuple(eps.shape)
(2, 3, 16, 16)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class UNetConfig:
    """Architecture of :class:`UNet` (stored beside the weights as JSON)."""

    resolution: int = 32
    """Image side in pixels (a multiple of ``2 ** (len(multipliers) - 1)``)."""
    channels: int = 32
    """Feature channels at full resolution."""
    multipliers: tuple[int, ...] = (1, 2, 4)
    """Channel multiplier per resolution level (each level halves the image side)."""
    blocks_per_level: int = 1
    """Residual blocks per level on the way down (one more on the way up)."""
    attention_levels: tuple[int, ...] = (2,)
    """Levels (0 = full resolution) with a self-attention block after each residual block."""
    text_dim: int = 384
    """Width of the caption embedding (all-MiniLM-L6-v2: 384)."""
    embed_dim: int = 256
    """Width of the summed timestep + caption + camera embedding."""
    azimuth_frequencies: int = 4
    """Fourier frequencies of the azimuth (1..n cycles per turn)."""
    groups: int = 16
    """GroupNorm groups (divides every channel count)."""
    distance_center: float = 3.3
    """Camera distance mapped to 0 in the camera features."""
    distance_scale: float = 0.3
    """Camera distance spread mapped to 1 in the camera features."""

    def __post_init__(self) -> None:
        self.multipliers = tuple(int(m) for m in self.multipliers)
        self.attention_levels = tuple(int(a) for a in self.attention_levels)
        if self.resolution % (2 ** (len(self.multipliers) - 1)):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2**{len(self.multipliers) - 1}")
        if any((self.channels * m) % self.groups for m in self.multipliers):
            raise ValueError(f"groups {self.groups} must divide every level's channels")


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[N, dim]`` of (integer or real) timesteps ``t [N]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def camera_features(cameras: Tensor, azimuth_frequencies: int, center: float = 3.3, scale: float = 0.3) -> Tensor:
    """Features ``[N, 2 n + 3]`` of ``cameras [N, 3]`` = (elevation deg, azimuth deg, distance).

    Fourier features of the azimuth at 1..n cycles per turn (periodic: 0 and 360 degrees agree),
    sine and cosine of the elevation, and ``(distance - center) / scale``.
    """
    elevation, azimuth = torch.deg2rad(cameras[:, 0]), torch.deg2rad(cameras[:, 1])
    k = torch.arange(1, azimuth_frequencies + 1, device=cameras.device, dtype=torch.float32)
    az = azimuth[:, None] * k[None]  # [N, n]
    return torch.cat([torch.sin(az), torch.cos(az), torch.sin(elevation)[:, None], torch.cos(elevation)[:, None],
                      ((cameras[:, 2] - center) / scale)[:, None]], dim=-1)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm/SiLU, FiLM-modulated by the embedding, and a skip."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # x [N, C, H, W], emb [N, E]
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual."""

    def __init__(self, channels: int, groups: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # x [N, C, H, W]
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # [N, heads, HW, C / heads]
        return x + self.out(a.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """Noise predictor ``eps(x_t, t, text, camera)`` for ``[N, 3, R, R]`` images.

    Args:
        config: Architecture.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        e = c.embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(c.channels, e), nn.SiLU(), nn.Linear(e, e))
        self.text_mlp = nn.Sequential(nn.Linear(c.text_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.camera_mlp = nn.Sequential(nn.Linear(2 * c.azimuth_frequencies + 3, e), nn.SiLU(), nn.Linear(e, e))
        self.stem = nn.Conv2d(3, c.channels, 3, padding=1)
        widths = [c.channels * m for m in c.multipliers]
        self.down, skips, ch = nn.ModuleList(), [c.channels], c.channels
        for level, width in enumerate(widths):
            for _ in range(c.blocks_per_level):
                self.down.append(self._block(ch, width, level))
                ch = width
                skips.append(ch)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.middle = nn.ModuleList([ResBlock(ch, ch, e, c.groups), Attention(ch, c.groups), ResBlock(ch, ch, e, c.groups)])
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for i in range(c.blocks_per_level + 1):
                self.up.append(self._block(ch + skips.pop(), width, level))
                ch = width
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.head = nn.Sequential(nn.GroupNorm(c.groups, ch), nn.SiLU(), nn.Conv2d(ch, 3, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def _block(self, c_in: int, c_out: int, level: int) -> nn.Module:
        res = ResBlock(c_in, c_out, self.config.embed_dim, self.config.groups)
        if level not in self.config.attention_levels:
            return res
        return nn.ModuleList([res, Attention(c_out, self.config.groups)])

    @staticmethod
    def _run(block: nn.Module, h: Tensor, emb: Tensor) -> Tensor:
        if isinstance(block, nn.ModuleList):
            for sub in block:
                h = sub(h, emb)
            return h
        return block(h, emb)

    def forward(self, x: Tensor, t: Tensor, text: Tensor, cameras: Tensor) -> Tensor:
        """Predicted noise ``[N, 3, R, R]``.

        Args:
            x: noisy images ``[N, 3, R, R]`` (pixels in [-1, 1] plus noise).
            t: timesteps ``[N]``.
            text: caption embeddings ``[N, text_dim]`` (zeros: no caption).
            cameras: ``[N, 3]`` elevation (deg), azimuth (deg), distance.
        """
        c = self.config
        emb = (self.time_mlp(timestep_embedding(t, c.channels))
               + self.text_mlp(text.float())
               + self.camera_mlp(camera_features(cameras.float(), c.azimuth_frequencies, c.distance_center, c.distance_scale)))
        emb = F.silu(emb)
        h = self.stem(x)
        hs = [h]
        for block in self.down:
            h = block(h) if isinstance(block, nn.Conv2d) else self._run(block, h, emb)
            hs.append(h)
        for block in self.middle:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, nn.Upsample):
                h = block(h)
            else:
                h = self._run(block, torch.cat([h, hs.pop()], dim=1), emb)
        return self.head(h)
