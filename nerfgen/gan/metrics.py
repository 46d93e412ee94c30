"""Sample-quality metrics for generated images: KID and FID on encoder features.

Both compare two sets of feature vectors (one row per image, as :func:`features` returns them):

* :func:`kid`, the Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"):
  the unbiased estimate of the squared maximum mean discrepancy under the cubic polynomial kernel
  :math:`k(x, y) = (x \\cdot y / D + 1)^3`, averaged over random subsets. Unbiased, so it is
  close to 0 (and may be slightly negative) for two samples of one distribution at any sample size.
* :func:`fid`, the Fréchet Inception Distance (Heusel et al. 2017): the Fréchet distance between
  Gaussians fitted to the two sets, :math:`\\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{tr}(\\Sigma_1 + \\Sigma_2
  - 2 (\\Sigma_1 \\Sigma_2)^{1/2})`. Biased upward at small sample sizes; compare FIDs only at the
  same number of images.

Numbers are comparable with published ones only when the features come from the standard FID
Inception network (an encoder whose ``comparable`` is True, see :mod:`nerfgen.gan.encoders`).

>>> g = torch.Generator().manual_seed(1)
>>> a, b = torch.randn(500, 8, generator=g), torch.randn(500, 8, generator=g)
>>> same, shifted = kid(a, b, subset_size=250)[0], kid(a, b + 1.0, subset_size=250)[0]
>>> abs(same) < 0.05 < 1.0 < shifted
True
>>> fid(a, a + 3.0) > 70  # the means differ by 3 in each of 8 dimensions: 8 * 9 = 72
True
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch
from torch import Tensor


def _check_features(real: Tensor, fake: Tensor, fn: str, least: int) -> tuple[Tensor, Tensor]:
    """Both feature sets as float64 ``[N, D]`` / ``[M, D]``; raises on any mismatch."""
    for label, x in (("real", real), ("fake", fake)):
        if not isinstance(x, Tensor) or x.dim() != 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"nerfgen.gan.metrics.{fn}: expected {label} features as a 2-D tensor [N, D], got {got}")
        if x.shape[0] < least:
            raise ValueError(f"nerfgen.gan.metrics.{fn}: needs at least {least} {label} feature rows, got {x.shape[0]}")
        if not torch.isfinite(x).all():
            raise ValueError(f"nerfgen.gan.metrics.{fn}: {label} features contain NaN or infinite values")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"nerfgen.gan.metrics.{fn}: real and fake features differ in dimension "
                         f"({real.shape[1]} vs {fake.shape[1]}); were they made by the same encoder?")
    return real.detach().cpu().double(), fake.detach().cpu().double()


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """``[N, M]`` cubic polynomial kernel :math:`(x_i \\cdot y_j / D + 1)^3` of ``x [N, D]``, ``y [M, D]``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(k_xx: Tensor, k_yy: Tensor, k_xy: Tensor) -> Tensor:
    """Unbiased squared MMD from kernel matrices ``k_xx [m, m]``, ``k_yy [n, n]``, ``k_xy [m, n]``:

    .. math::
        \\frac{\\sum_{i \\ne j} k(x_i, x_j)}{m (m - 1)} + \\frac{\\sum_{i \\ne j} k(y_i, y_j)}{n (n - 1)}
        - \\frac{2 \\sum_{i, j} k(x_i, y_j)}{m n}

    (for ``m == n`` this is the estimator of Bińkowski et al. and torch-fidelity's ``"unbiased"``).
    """
    m, n = k_xx.shape[0], k_yy.shape[0]
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2.0 * k_xy.sum() / (m * n)


def kid(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    """Kernel Inception Distance between ``real [N, D]`` and ``fake [M, D]`` features, in float64.

    Each of ``subsets`` rounds draws ``min(subset_size, N)`` real and ``min(subset_size, M)`` fake rows
    without replacement (as torch-fidelity and the paper do) and takes :func:`mmd2_unbiased` under
    :func:`polynomial_kernel`. With at least ``subset_size`` rows on both sides this is exactly the
    standard estimator; with fewer, a side uses all its rows (still unbiased), and when both do there is
    a single estimate (std 0).

    Args:
        real: ``[N, D]`` features of real images (N >= 2).
        fake: ``[M, D]`` features of generated images (M >= 2).
        subsets: number of random subsets averaged.
        subset_size: rows per subset and side (the paper and torch-fidelity use 1000).
        generator: draws the subsets; ``None`` uses a fresh generator seeded with 0, so the result
            is deterministic either way.

    Returns:
        ``(mean, std)`` of the per-subset estimates (std with ``ddof=0``, as torch-fidelity).
    """
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"nerfgen.gan.metrics.kid: expected subsets >= 1 and subset_size >= 2, "
                         f"got subsets={subsets}, subset_size={subset_size}")
    x, y = _check_features(real, fake, "kid", least=2)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n_x, n_y = x.shape[0], y.shape[0]
    m, n = min(subset_size, n_x), min(subset_size, n_y)
    if m == n_x and n == n_y:  # every subset would be the full sets: one estimate, std 0
        return float(mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))), 0.0
    # Kernels of all rows at once when that costs less than one kernel per subset.
    full = (n_x + n_y) ** 2 <= subsets * (m + n) ** 2
    if full:
        k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    values = torch.empty(subsets, dtype=torch.float64)
    for s in range(subsets):
        i = torch.randperm(n_x, generator=gen)[:m]
        j = torch.randperm(n_y, generator=gen)[:n]
        if full:
            values[s] = mmd2_unbiased(k_xx[i][:, i], k_yy[j][:, j], k_xy[i][:, j])
        else:
            xs, ys = x[i], y[j]
            values[s] = mmd2_unbiased(polynomial_kernel(xs, xs), polynomial_kernel(ys, ys), polynomial_kernel(xs, ys))
    return float(values.mean()), float(values.std(unbiased=False))


def gaussian_stats(feats: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (``ddof=1``) of ``feats [N, D]``, float64 numpy."""
    a = feats.detach().cpu().double().numpy()
    return a.mean(axis=0), np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(``mu1 [D]``, ``sigma1 [D, D]``) and N(``mu2``, ``sigma2``).

    :math:`(\\Sigma_1 \\Sigma_2)^{1/2}` comes from ``scipy.linalg.sqrtm``; as in pytorch-fid, a
    non-finite result is retried with ``eps * I`` added to both covariances, and an imaginary part
    left by round-off is dropped (an error when its diagonal exceeds 1e-3: the covariances are then
    not positive semi-definite).
    """
    try:
        from scipy import linalg
    except ImportError as exc:
        raise ImportError("nerfgen.gan.metrics.fid needs scipy (scipy.linalg.sqrtm): pip install scipy") from exc
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products (fewer images than dimensions) are expected; checked below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3:
            raise ValueError(f"nerfgen.gan.metrics.fid: sqrtm(sigma1 @ sigma2) has an imaginary part of {imag:.3g} "
                             "on its diagonal (expected ~0): are the covariances positive semi-definite?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(real: Tensor, fake: Tensor) -> float:
    """Fréchet Inception Distance between ``real [N, D]`` and ``fake [M, D]`` features (N, M >= 2), in float64.

    See :func:`frechet_distance`. With fewer images than dimensions the covariances are singular;
    the result is still defined but strongly biased, so report the image count with it.
    """
    x, y = _check_features(real, fake, "fid", least=2)
    return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))


@torch.no_grad()
def features(encoder, images: Tensor, batch: int = 256) -> Tensor:
    """``[N, encoder.dim]`` float32 CPU features of ``images [N, 3, H, W]``, ``batch`` at a time.

    Args:
        encoder: an :class:`nerfgen.gan.encoders.Encoder` (takes float ``[B, 3, H, W]`` in [0, 1]).
        images: uint8 in [0, 255] or float in [0, 1]; batches move to the encoder's device.
        batch: images per encoder call.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"nerfgen.gan.metrics.features: expected images [N, 3, H, W], got {got} "
                         "(channels-last images need .permute(0, 3, 1, 2))")
    if batch < 1:
        raise ValueError(f"nerfgen.gan.metrics.features: expected batch >= 1, got {batch}")
    if images.dtype == torch.uint8:
        scale = 1.0 / 255.0
    elif images.is_floating_point():
        scale = 1.0
        lo, hi = (float(images.min()), float(images.max())) if images.numel() else (0.0, 0.0)
        if not (lo >= -1e-3 and hi <= 1 + 1e-3):
            raise ValueError(f"nerfgen.gan.metrics.features: expected float images in [0, 1], got values in "
                             f"[{lo:.3g}, {hi:.3g}] (images in [-1, 1] need (x + 1) / 2 first)")
    else:
        raise ValueError(f"nerfgen.gan.metrics.features: expected uint8 or float images, got {images.dtype}")
    tensors = itertools.chain(encoder.parameters(), encoder.buffers()) if isinstance(encoder, torch.nn.Module) else ()
    first = next(iter(tensors), None)
    device = first.device if first is not None else torch.device("cpu")
    out = []
    for start in range(0, images.shape[0], batch):
        chunk = images[start:start + batch].to(device=device, dtype=torch.float32) * scale
        out.append(encoder(chunk.clamp(0.0, 1.0)).float().cpu())
    if not out:
        return torch.empty(0, encoder.dim)
    return torch.cat(out)
