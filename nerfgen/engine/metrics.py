"""Image quality metrics: PSNR and SSIM (Wang et al. 2004, the NeRF papers' settings)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor) -> float:
    r""":math:`-10 \log_{10} \mathrm{MSE}` of images in ``[0, 1]`` (any matching shapes)."""
    mse = torch.mean((pred.float() - target.float()) ** 2).clamp(min=1e-10)
    return float(-10.0 * torch.log10(mse))


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean structural similarity of two ``[H, W, C]`` images in ``[0, 1]``.

    Gaussian window (11, sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, valid region only; equals
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``.
    """
    x = pred.float().permute(2, 0, 1)[:, None]  # [C, 1, H, W]
    y = target.float().permute(2, 0, 1)[:, None]
    coords = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    kx, ky = g.view(1, 1, 1, window), g.view(1, 1, window, 1)

    def blur(img: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(img, kx), ky)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(s.mean())
