"""Image encoders for FID / KID features, an offline one shipped as code, and probes to check them.

* :class:`Encoder`: the interface :func:`nerfgen.gan.metrics.features` uses: ``name``, ``dim``,
  ``comparable`` (True only for the standard FID Inception, whose numbers can be set beside
  published ones) and ``encoder(images [B, 3, H, W] in [0, 1]) -> [B, dim]``.
* :class:`OfflineEncoder` (``"nerfgen-randconv-v1"``): a fixed random-weight conv net whose weights
  come from a seeded ``torch.Generator``, so every install has the same network without a download.
  Random embeddings are a known stand-in for trained ones when ranking generators (Naeem et al.
  2020, "Reliable Fidelity and Diversity Metrics for Generative Models"), but its numbers are only
  comparable with other numbers from the same encoder, never with published FID / KID.
* :func:`load_encoder`: ``None`` / ``"offline"`` or the path of an FID Inception weight file
  (:mod:`nerfgen.gan.inception`).
* :func:`synthetic_shapes` and :func:`degrade`: a synthetic image distribution and the
  degradations (:data:`DEGRADATIONS`) an encoder must tell apart from it.

>>> enc = load_encoder("offline")
>>> enc(torch.rand(2, 3, 32, 32)).shape == (2, enc.dim)
True
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Encoder(nn.Module):
    """Feature extractor for :mod:`nerfgen.gan.metrics`; subclasses implement :meth:`forward`."""

    name: str = "encoder"
    """Identifies the network (and its weights) in reports; features of different names never mix."""
    comparable: bool = False
    """True only for the standard FID Inception-v3: only then are FID / KID comparable with papers."""
    dim: int = 0
    """Feature dimension D."""

    def forward(self, images: Tensor) -> Tensor:  # [B, 3, H, W] in [0, 1] -> [B, dim]
        raise NotImplementedError


def check_images(images: Tensor, who: str) -> None:
    """Raises unless ``images`` is a float ``[B, 3, H, W]`` tensor."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        got = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{who}: expected float images [B, 3, H, W] in [0, 1], got {got}")


class OfflineEncoder(Encoder):
    """Fixed random conv features: 4 stages of 3x3 conv + ReLU + 2x2 max pool (3->32->64->128->256).

    Images are resized to 64 x 64 (bilinear, antialiased when shrinking) and mapped to [-1, 1]. The
    features are the spatial mean and standard deviation of the ReLU activations of the last two
    stages (128 channels at 16 x 16 and 256 at 8 x 8): ``dim = 2 * (128 + 256) = 768``.

    Weights: ``torch.randn`` from ``torch.Generator().manual_seed(SEED)``, stage by stage, scaled by
    :math:`\\sqrt{2 / \\mathrm{fan\\_in}}` (He init: activations stay O(1) through depth), no biases.
    They are buffers, not parameters, and never trained. :meth:`checksum` fingerprints them; a torch
    release that changed its CPU normal sampler would change it, and the name must then change too.
    Max pooling (not average) keeps the encoder sensitive to blur: sharp edges give larger peaks.
    """

    name = "nerfgen-randconv-v1"
    comparable = False
    SEED = 20151205
    SIZE = 64
    CHANNELS = (3, 32, 64, 128, 256)
    FEATURE_STAGES = 2
    dim = 2 * sum(CHANNELS[-FEATURE_STAGES:])

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(self.SEED)
        for i, (cin, cout) in enumerate(zip(self.CHANNELS[:-1], self.CHANNELS[1:])):
            weight = torch.randn(cout, cin, 3, 3, generator=gen, dtype=torch.float32) * math.sqrt(2.0 / (cin * 9))
            self.register_buffer(f"weight{i}", weight)  # [cout, cin, 3, 3]

    def weights(self) -> list[Tensor]:
        """The conv weights ``[C_out, C_in, 3, 3]``, stage by stage."""
        return [getattr(self, f"weight{i}") for i in range(len(self.CHANNELS) - 1)]

    def checksum(self) -> str:
        """First 16 hex digits of the SHA-256 of the weights as little-endian float32 bytes."""
        digest = hashlib.sha256()
        for w in self.weights():
            digest.update(w.detach().cpu().contiguous().numpy().astype("<f4").tobytes())
        return digest.hexdigest()[:16]

    def forward(self, images: Tensor) -> Tensor:
        """``[B, 768]`` features of ``images [B, 3, H, W]`` in [0, 1] (any H, W)."""
        check_images(images, "OfflineEncoder")
        x = images.float()
        if x.shape[-2:] != (self.SIZE, self.SIZE):
            shrink = x.shape[-1] > self.SIZE or x.shape[-2] > self.SIZE
            x = F.interpolate(x, size=(self.SIZE, self.SIZE), mode="bilinear", align_corners=False, antialias=shrink)
        x = 2.0 * x - 1.0
        feats = []
        weights = self.weights()
        for i, w in enumerate(weights):
            x = F.relu(F.conv2d(x, w, padding=1))  # [B, C_i, S / 2^i, S / 2^i]
            if i >= len(weights) - self.FEATURE_STAGES:
                feats += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
            x = F.max_pool2d(x, 2)
        return torch.cat(feats, dim=1)


INCEPTION_FILES = ("pytorch-fid's pt_inception-2015-12-05-6726825d.pth",
                   "torch-fidelity's weights-inception-2015-12-05-6726825d.pth")


def load_encoder(name_or_path: str | Path | None = None) -> Encoder:
    """The encoder called ``name_or_path``, in eval mode on the CPU.

    Args:
        name_or_path: ``None``, ``"offline"`` or ``"nerfgen-randconv-v1"`` for :class:`OfflineEncoder`;
            or the path of an FID Inception-v3 weight file (one of :data:`INCEPTION_FILES`, never
            downloaded by nerfgen) for :class:`nerfgen.gan.inception.FIDInceptionV3`.
    """
    if name_or_path is None or name_or_path in ("offline", OfflineEncoder.name):
        return OfflineEncoder().eval()
    path = Path(name_or_path)
    if path.is_file():
        from nerfgen.gan.inception import load_inception

        return load_inception(path)
    options = (f"expected None or 'offline' (the {OfflineEncoder.name} encoder), or the path of an FID Inception "
               f"weight file ({' or '.join(INCEPTION_FILES)})")
    if path.suffix in (".pth", ".pt", ".pkl", ".bin") or len(path.parts) > 1:
        raise FileNotFoundError(f"{path}: Inception weight file not found ({options})")
    raise ValueError(f"unknown encoder {str(name_or_path)!r}: {options}")


# --- probes: a synthetic image distribution and the degradations an encoder must detect ---

DEGRADATIONS = ("blur", "colour", "noise", "shuffle")
"""Kinds :func:`degrade` applies: Gaussian blur (sigma = size / 64 px), colour shift (+0.05 red,
-0.05 blue), Gaussian noise (sigma 0.05), and 4 x 4 patches shuffled within each image."""


def synthetic_shapes(n: int, size: int = 64, generator: torch.Generator | None = None) -> Tensor:
    """``[n, 3, size, size]`` images in [0, 1]: 1 to 4 discs or squares of random colour, centre and
    radius (0.1 to 0.25 of ``size``) on a grey (0.5) background."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # [size, size]
    images = torch.full((n, 3, size, size), 0.5)
    count = torch.randint(1, 5, (n,), generator=gen)
    for k in range(4):
        centre = torch.rand(n, 2, generator=gen) * size
        radius = (0.1 + 0.15 * torch.rand(n, generator=gen)) * size
        colour = torch.rand(n, 3, generator=gen)
        square = torch.rand(n, generator=gen) < 0.5
        dx = xx - centre[:, 0, None, None]  # [n, size, size]
        dy = yy - centre[:, 1, None, None]
        r = radius[:, None, None]
        disc = dx ** 2 + dy ** 2 <= r ** 2
        box = (dx.abs() <= 0.886 * r) & (dy.abs() <= 0.886 * r)  # same area as the disc
        mask = torch.where(square[:, None, None], box, disc) & (k < count)[:, None, None]
        images = torch.where(mask[:, None], colour[:, :, None, None], images)
    return images


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """``images [B, C, H, W]`` blurred by a separable Gaussian of ``sigma`` px (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    x = F.pad(images, (radius,) * 4, mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def shuffle_patches(images: Tensor, grid: int, generator: torch.Generator) -> Tensor:
    """``images [B, C, H, W]`` with their ``grid x grid`` patches permuted, independently per image."""
    b, c, h, w = images.shape
    if h % grid or w % grid:
        raise ValueError(f"shuffle_patches: image size {h}x{w} is not divisible by the grid {grid}")
    ph, pw = h // grid, w // grid
    patches = images.reshape(b, c, grid, ph, grid, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, ph, pw)
    order = torch.argsort(torch.rand(b, grid * grid, generator=generator), dim=1)
    patches = patches[torch.arange(b)[:, None], order]
    return patches.reshape(b, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def degrade(images: Tensor, kind: str, generator: torch.Generator | None = None) -> Tensor:
    """``images [B, 3, H, W]`` in [0, 1] degraded by ``kind`` (one of :data:`DEGRADATIONS`)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if kind == "blur":
        return gaussian_blur(images, images.shape[-1] / 64)
    if kind == "colour":
        return (images + torch.tensor([0.05, 0.0, -0.05])[None, :, None, None]).clamp(0, 1)
    if kind == "noise":
        return (images + 0.05 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    if kind == "shuffle":
        return shuffle_patches(images, 4, gen)
    raise ValueError(f"degrade: unknown kind {kind!r}, expected one of {DEGRADATIONS}")
