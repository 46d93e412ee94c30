"""Depth supervision from structure-from-motion points (DS-NeRF, Deng et al. 2022).

Every SfM point seen in a training image is a sparse depth observation: the ray through the pixel
the point projects to should end at the point. :func:`sfm_depth_targets` turns a capture's
:class:`~nerfgen.data.transforms.SfMPoints` into such targets (camera, pixel, ray distance, weight),
:meth:`DepthTargets.sample` draws a batch, and :func:`depth_loss` scores the rendered rays:

* ``"ds"``, DS-NeRF's ray-distribution loss on the packed samples of each ray,
  :math:`L_r = -\\sum_i \\log(w_i + \\epsilon)\\, \\exp\\!\\big(-\\tfrac{(t_i - D_r)^2}{2\\sigma^2}\\big)\\, \\Delta t_i`,
  a cross-entropy (up to a constant, a KL divergence) between a Gaussian of width :math:`\\sigma`
  around the target distance :math:`D_r` and the ray's termination distribution :math:`w`;
* ``"l2"``, the squared error of the expected ray distance, :math:`L_r = (\\hat D_r - D_r)^2`.

Both are averaged over rays with the targets' weights, :math:`L = \\frac{1}{n}\\sum_r \\omega_r L_r`.
Distances are along unit ray directions (what the renderer's ``t`` measures), not z-depths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import Tensor

from nerfgen.cameras import Cameras, project
from nerfgen.ops import accumulate_along_rays
from nerfgen.render.renderer import RenderOutput

if TYPE_CHECKING:
    from nerfgen.data.transforms import SfMPoints

__all__ = ["DepthLossConfig", "DepthTargets", "depth_loss", "sfm_depth_targets"]

DepthMode = Literal["ds", "l2"]


@dataclass
class DepthLossConfig:
    """Depth supervision of reconstruction from SfM points (off unless ``weight > 0``)."""

    weight: float = 0.0
    """Factor of the depth loss added to the photometric loss; 0 turns depth supervision off."""
    mode: DepthMode = "ds"
    """ds (DS-NeRF's ray-distribution loss) | l2 (squared error of the expected ray distance)."""
    sigma: float = 0.05
    """Width (world units) of the Gaussian around each target distance (``ds`` only)."""
    rays: int = 256
    """Depth rays rendered per step, drawn from the targets."""

    def validate(self, source: str) -> None:
        """Raise ``ValueError`` naming ``source`` for settings that cannot work."""
        if self.weight < 0 or not self.sigma > 0 or self.rays < 1:
            raise ValueError(f"{source}: depth: need weight >= 0, sigma > 0 and rays >= 1, got weight={self.weight}, "
                             f"sigma={self.sigma}, rays={self.rays}")
        if self.mode not in ("ds", "l2"):
            raise ValueError(f"{source}: depth.mode: expected ds or l2, got {self.mode!r}")


@dataclass
class DepthTargets:
    """Sparse ray-distance observations.

    Attributes:
        cam_idx: Camera of each target, long. ``[k]``.
        px: Pixel x (right) the point projects to, continuous. ``[k]``.
        py: Pixel y (down), continuous. ``[k]``.
        t: Distance from the camera centre to the point along the unit ray through ``(px, py)``. ``[k]``.
        weight: Confidence of each target in (0, 1]. ``[k]``.
    """

    cam_idx: Tensor  # [k]
    px: Tensor  # [k]
    py: Tensor  # [k]
    t: Tensor  # [k]
    weight: Tensor  # [k]

    def __len__(self) -> int:
        return self.cam_idx.shape[0]

    def __getitem__(self, index: Tensor) -> DepthTargets:
        return DepthTargets(self.cam_idx[index], self.px[index], self.py[index], self.t[index], self.weight[index])

    def to(self, device: torch.device | str) -> DepthTargets:
        return DepthTargets(self.cam_idx.to(device), self.px.to(device), self.py.to(device), self.t.to(device),
                            self.weight.to(device))

    def sample(self, n: int, generator: torch.Generator | None = None) -> DepthTargets:
        """``n`` targets drawn uniformly with replacement (indices drawn on ``generator``'s device,
        the targets stay where they are)."""
        if len(self) == 0:
            raise ValueError("DepthTargets.sample: there are no depth targets (no SfM point is visible in front of "
                             "any camera); check len(targets) before sampling")
        device = generator.device if generator is not None else torch.device("cpu")
        index = torch.randint(0, len(self), (n,), generator=generator, device=device)
        return self[index.to(self.cam_idx.device)]


def reprojection_weights(error: np.ndarray | Tensor) -> Tensor:
    r"""DS-NeRF's confidence of SfM points from their reprojection errors :math:`e` (pixels):
    :math:`w = \exp(-(e / \bar e)^2)`, :math:`\bar e` the mean error of all points (``1`` where every
    error is zero). Points as accurate as the average get :math:`1/e`, exact ones 1.

    >>> [round(w, 6) for w in reprojection_weights(np.array([0.0, 1.0, 2.0])).tolist()]
    [1.0, 0.367879, 0.018316]
    """
    e = torch.as_tensor(np.asarray(error), dtype=torch.float64)
    if e.ndim != 1 or not bool(torch.isfinite(e).all()) or bool((e < 0).any()):
        raise ValueError("reprojection_weights: expected finite non-negative errors [p]")
    mean = float(e.mean()) if e.numel() else 0.0
    return torch.exp(-((e / mean) ** 2)) if mean > 0 else torch.ones_like(e)


def sfm_depth_targets(cameras: Cameras, points: SfMPoints, min_depth: float = 1e-3,
                      sizes: Tensor | None = None) -> DepthTargets:
    """The depth targets of the SfM points each training image sees.

    Each image's visible points are projected (:func:`nerfgen.cameras.project`, with its lens
    distortion); points at least ``min_depth`` in front of the camera whose projection falls inside
    the image are kept, with their pixel, their distance from the camera centre (the ray distance
    of the pixel's ray, which passes through the point) and :func:`reprojection_weights`.
    Images that see no point contribute nothing.

    Args:
        cameras: The training cameras, in the order of ``points.visible``.
        points: The capture's SfM points, in the same world frame as ``cameras``.
        min_depth: Smallest depth along the viewing axis kept (world units).
        sizes: Each image's ``(width, height)`` when they differ (``Dataset.sizes``). ``[n, 2]``;
            None: ``cameras.width x cameras.height`` for all.

    Returns:
        :class:`DepthTargets` on ``cameras``' device, in its dtype (``cam_idx`` long); possibly empty.
    """
    if len(points.visible) != len(cameras):
        raise ValueError(f"sfm_depth_targets: {len(points.visible)} visibility lists for {len(cameras)} cameras")
    xyz = torch.as_tensor(np.asarray(points.xyz), dtype=cameras.c2w.dtype, device=cameras.device)
    if xyz.ndim != 2 or xyz.shape[-1] != 3 or len(points.error) != xyz.shape[0]:
        raise ValueError(f"sfm_depth_targets: expected xyz [p, 3] and error [p], got {list(xyz.shape)} and "
                         f"{len(points.error)} errors")
    if sizes is None:
        sizes = torch.tensor([[cameras.width, cameras.height]] * len(cameras))
    if tuple(sizes.shape) != (len(cameras), 2):
        raise ValueError(f"sfm_depth_targets: sizes must be [{len(cameras)}, 2] (width, height), got "
                         f"{list(sizes.shape)}")
    confidence = reprojection_weights(points.error).to(xyz)
    parts: list[tuple[Tensor, ...]] = []
    for i, seen in enumerate(points.visible):
        idx = torch.as_tensor(np.asarray(seen, dtype=np.int64).reshape(-1), device=cameras.device)
        if idx.numel() == 0:
            continue
        if bool(((idx < 0) | (idx >= xyz.shape[0])).any()):
            raise ValueError(f"sfm_depth_targets: image {i} sees a point index outside [0, {xyz.shape[0]})")
        p = xyz[idx]
        px, py, z = project(cameras, i, p)
        width, height = (float(v) for v in sizes[i])
        keep = (z >= min_depth) & (px >= 0) & (px < width) & (py >= 0) & (py < height)
        keep &= torch.isfinite(px) & torch.isfinite(py)
        t = (p - cameras.c2w[i, :, 3]).norm(dim=-1)
        parts.append((torch.full_like(idx, i)[keep], px[keep], py[keep], t[keep], confidence[idx][keep]))
    if not parts:
        empty = xyz.new_zeros(0)
        return DepthTargets(torch.zeros(0, dtype=torch.long, device=cameras.device), empty, empty, empty, empty)
    return DepthTargets(*(torch.cat(column) for column in zip(*parts)))


def depth_loss(output: RenderOutput, target_t: Tensor, weight: Tensor, sigma: float | Tensor = 0.05,
               mode: DepthMode = "ds", eps: float = 1e-5) -> Tensor:
    r"""The depth loss of rendered rays (see the module docstring for the formulas).

    Args:
        output: :func:`~nerfgen.render.render_rays` of the targets' rays (with gradients; it must
            carry its packed ``weights`` and ``samples``).
        target_t: Target ray distance of each ray. ``[n_rays]``.
        weight: Confidence of each ray's target. ``[n_rays]``.
        sigma: Width of the target Gaussian, world units; a float or ``[n_rays]`` (``ds`` only).
        mode: ``"ds"`` or ``"l2"``.
        eps: Added to the weights inside the logarithm (``ds``).

    Returns:
        The scalar loss (0 for no rays). A ray without samples adds 0 in ``ds`` and the constant
        :math:`\omega_r D_r^2` in ``l2`` (its rendered distance is 0).
    """
    n = output.depth.shape[0]
    if target_t.shape != (n,) or weight.shape != (n,):
        raise ValueError(f"depth_loss: expected target_t and weight [{n}] (one per rendered ray), got "
                         f"{list(target_t.shape)} and {list(weight.shape)}")
    if mode == "l2":
        per_ray = (output.depth - target_t) ** 2
    elif mode == "ds":
        if output.weights is None or output.samples is None:
            raise ValueError("depth_loss: mode 'ds' needs the packed weights and samples of the render "
                             "(render_rays keeps them; render_rays_chunked does not)")
        s = output.samples
        ri = s.ray_indices
        mids, widths = (s.t_starts + s.t_ends) * 0.5, s.t_ends - s.t_starts
        sig = torch.as_tensor(sigma, dtype=mids.dtype, device=mids.device)
        sig = sig[ri] if sig.ndim == 1 else sig
        gauss = torch.exp(-((mids - target_t[ri]) ** 2) / (2.0 * sig * sig))
        per_sample = -torch.log(output.weights + eps) * gauss * widths
        per_ray = accumulate_along_rays(per_sample, None, ri, n)[:, 0]
    else:
        raise ValueError(f"depth_loss: mode must be 'ds' or 'l2', got {mode!r}")
    return (weight * per_ray).sum() / max(n, 1)
