"""Pose refinement during reconstruction: a learned per-camera correction of the given poses
(nerfstudio / nerfacto's camera optimiser, after BARF).

Each training camera ``i`` owns a tangent vector :math:`\\xi_i = (v_i, \\omega_i) \\in \\mathbb{R}^6`,
zero at the start. Its exponential map is a rigid correction :math:`\\Delta_i = [R_i \\mid t_i]`
composed on the right of the camera-to-world pose, so it acts in camera space:

.. math::
    \\mathrm{c2w}_i' = \\mathrm{c2w}_i \\begin{bmatrix} R_i & t_i \\\\ 0 & 1 \\end{bmatrix}.

``"SO3xR3"`` takes :math:`R_i = \\exp([\\omega_i]_\\times)`, :math:`t_i = v_i`; ``"SE3"`` the full
twist exponential, :math:`t_i = V(\\omega_i) v_i`. ``"off"`` owns no parameters and changes nothing.

The math is pure functions (:func:`so3_exp`, :func:`se3_exp`, :func:`compose`); the parameters
live in a small module (:class:`CameraOptimizer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn

from nerfgen.cameras import Cameras, Rays, pixel_rays
from nerfgen.engine import Schedule

__all__ = ["CameraOptConfig", "CameraOptimizer", "camera_optimizer", "compose", "se3_exp", "skew", "so3_exp",
           "so3xr3_exp"]

Mode = Literal["off", "SO3xR3", "SE3"]
MODES = ("off", "SO3xR3", "SE3")

_SMALL = 0.25
"""Below this squared angle (0.5 rad) the coefficients come from their Taylor series: exact to
float64 rounding there (8 terms), and free of the cancellations of ``1 - cos`` and ``x - sin x``."""
_TERMS = 8


@dataclass
class CameraOptConfig:
    """How training refines the camera poses (nerfacto's defaults)."""

    mode: Mode = "off"
    """off | SO3xR3 (rotation exponential and a free translation) | SE3 (rigid twist exponential)."""
    lr: float = 1e-3
    """Peak Adam learning rate of the pose corrections."""
    weight_decay: float = 1e-2
    """Adam's L2 pull of the corrections towards the given poses (0 turns it off)."""
    lr_warmup_steps: int = 0
    """Linear warm-up of the learning rate from 1%, in steps."""
    lr_decay: float = 0.33
    """Factor applied to the learning rate at 50%, 75% and 90% of the run."""

    def validate(self, source: str) -> None:
        """Raise ``ValueError`` naming ``source`` for settings that cannot work."""
        if self.mode not in MODES:
            raise ValueError(f"{source}: camera_opt.mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.lr > 0 or self.weight_decay < 0 or self.lr_warmup_steps < 0 or not 0 < self.lr_decay <= 1:
            raise ValueError(f"{source}: camera_opt: need lr > 0, weight_decay >= 0, lr_warmup_steps >= 0 "
                             f"and 0 < lr_decay <= 1")


def skew(w: Tensor) -> Tensor:
    """``w [..., 3]`` -> the cross-product matrix ``[w]_x [..., 3, 3]`` (``[w]_x u = w x u``)."""
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*w.shape[:-1], 3, 3)


def _series(t2: Tensor, first: int) -> Tensor:
    r""":math:`\sum_k (-t^2)^k / (2k + \mathrm{first})!`, the small-angle expansion of the coefficients."""
    out = torch.zeros_like(t2)
    for k in reversed(range(_TERMS)):  # Horner in -t2
        out = out * -t2 + 1.0 / math.factorial(2 * k + first)
    return out


def _coefficients(w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""``a = sin t / t``, ``b = (1 - cos t) / t^2``, ``c = (t - sin t) / t^3`` of ``t = |w|``, each
    ``[...]``; smooth (and with finite gradients) at ``w = 0``, since only ``t^2`` is differentiated there."""
    t2 = (w * w).sum(-1)
    small = t2 < _SMALL
    t2s = torch.where(small, torch.ones_like(t2), t2)  # the closed forms never see small angles
    t = t2s.sqrt()
    sin, half = torch.sin(t), torch.sin(0.5 * t)
    a = torch.where(small, _series(t2, 1), sin / t)
    b = torch.where(small, _series(t2, 2), 2.0 * half * half / t2s)
    c = torch.where(small, _series(t2, 3), (t - sin) / (t2s * t))
    return a, b, c


def so3_exp(w: Tensor) -> Tensor:
    r"""Rodrigues' formula, :math:`\exp([w]_\times) = I + a [w]_\times + b [w]_\times^2`.

    Args:
        w: Axis-angle vectors (axis times angle in radians). ``[..., 3]``.

    Returns:
        Rotation matrices. ``[..., 3, 3]``.

    >>> so3_exp(torch.tensor([0.0, 0.0, math.pi / 2])).round(decimals=6) + 0.0
    tensor([[ 0., -1.,  0.],
            [ 1.,  0.,  0.],
            [ 0.,  0.,  1.]])
    """
    a, b, _ = _coefficients(w)
    k = skew(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(k)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def se3_exp(xi: Tensor) -> Tensor:
    r"""Exponential of a twist :math:`\xi = (v, \omega)`: :math:`[\exp([\omega]_\times) \mid V v]` with
    :math:`V = I + b [\omega]_\times + c [\omega]_\times^2` (the matrix exponential of
    :math:`\begin{bmatrix}[\omega]_\times & v \\ 0 & 0\end{bmatrix}`).

    Args:
        xi: Twists, translation part first. ``[..., 6]``.

    Returns:
        Rigid transforms ``[R | t]``. ``[..., 3, 4]``.
    """
    v, w = xi[..., :3], xi[..., 3:]
    a, b, c = _coefficients(w)
    k = skew(w)
    k2 = k @ k
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device).expand_as(k)
    rot = eye + a[..., None, None] * k + b[..., None, None] * k2
    vmat = eye + b[..., None, None] * k + c[..., None, None] * k2
    return torch.cat([rot, vmat @ v[..., None]], -1)


def so3xr3_exp(xi: Tensor) -> Tensor:
    """``xi [..., 6]`` (translation, axis-angle) -> ``[exp([w]_x) | v] [..., 3, 4]``: rotation and
    translation corrected independently (nerfstudio's default)."""
    return torch.cat([so3_exp(xi[..., 3:]), xi[..., :3, None]], -1)


def compose(c2w: Tensor, delta: Tensor) -> Tensor:
    r"""``c2w [..., 3, 4]`` followed by ``delta [..., 3, 4]`` in camera space: :math:`[R R_\Delta \mid R t_\Delta + t]`."""
    rot = c2w[..., :3] @ delta[..., :3]
    trans = (c2w[..., :3] @ delta[..., 3:])[..., 0] + c2w[..., 3]
    return torch.cat([rot, trans[..., None]], -1)


class CameraOptimizer(nn.Module):
    """Learned pose corrections of ``n_cameras`` training cameras.

    Args:
        n_cameras: Number of training cameras (images), indexed like the dataset's frames.
        mode: ``"off"`` (no parameters, an identity), ``"SO3xR3"`` or ``"SE3"``.

    Attributes:
        pose_adjustment: ``[n_cameras, 6]`` tangent vectors, translation then axis-angle; zero at
            construction, so the corrected poses are exactly the given ones. Absent when off.

    >>> opt = CameraOptimizer(2, "SE3")
    >>> c2w = torch.eye(3, 4).expand(2, 3, 4)
    >>> bool((opt.apply(c2w, torch.tensor([0, 1])) == c2w).all())
    True
    """

    def __init__(self, n_cameras: int, mode: Mode = "SO3xR3") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"CameraOptimizer: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if isinstance(n_cameras, bool) or not isinstance(n_cameras, int) or n_cameras < 1:
            raise ValueError(f"CameraOptimizer: n_cameras must be a positive int, got {n_cameras!r}")
        self.n_cameras, self.mode = n_cameras, mode
        if mode != "off":
            self.pose_adjustment = nn.Parameter(torch.zeros(n_cameras, 6))

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def correction(self, cam_idx: Tensor) -> Tensor:
        """``cam_idx [m]`` long -> the corrections ``[m, 3, 4]`` of those cameras (differentiable)."""
        if cam_idx.dtype not in (torch.int32, torch.int64) or cam_idx.ndim != 1:
            raise ValueError(f"CameraOptimizer: cam_idx must be a 1-d integer tensor, got {cam_idx.dtype} "
                             f"{list(cam_idx.shape)}")
        if not self.enabled:
            return torch.eye(3, 4, device=cam_idx.device).expand(cam_idx.shape[0], 3, 4)
        xi = self.pose_adjustment[cam_idx.to(self.pose_adjustment.device)]
        return se3_exp(xi) if self.mode == "SE3" else so3xr3_exp(xi)

    def apply(self, c2w: Tensor, cam_idx: Tensor) -> Tensor:
        """Corrected poses: ``c2w [m, 3, 4]`` of cameras ``cam_idx [m]`` -> ``[m, 3, 4]`` in
        ``c2w``'s dtype; ``c2w`` itself when off."""
        if c2w.ndim != 3 or tuple(c2w.shape[1:]) != (3, 4) or cam_idx.shape != c2w.shape[:1]:
            raise ValueError(f"CameraOptimizer.apply: expected c2w [m, 3, 4] and cam_idx [m], got "
                             f"{list(c2w.shape)} and {list(cam_idx.shape)}")
        if not self.enabled:
            return c2w
        return compose(c2w, self.correction(cam_idx).to(c2w.dtype))

    def corrected(self, cameras: Cameras) -> Cameras:
        """``cameras`` (all ``n_cameras`` of them, in order) with corrected poses; differentiable in
        :attr:`pose_adjustment`."""
        if len(cameras) != self.n_cameras:
            raise ValueError(f"CameraOptimizer holds {self.n_cameras} cameras, got a set of {len(cameras)}")
        if not self.enabled:
            return cameras
        index = torch.arange(self.n_cameras, device=cameras.device)
        return replace(cameras, c2w=self.apply(cameras.c2w, index))

    def rays(self, cameras: Cameras, cam_idx: Tensor, px: Tensor, py: Tensor) -> Rays:
        """:func:`nerfgen.cameras.pixel_rays` through the corrected poses (the training batch's rays)."""
        return pixel_rays(self.corrected(cameras), cam_idx, px, py)


def camera_optimizer(module: CameraOptimizer, config: CameraOptConfig) -> tuple[torch.optim.Adam, Schedule]:
    """Adam over ``module``'s corrections (``config.lr``, ``config.weight_decay``) and its schedule, for a
    task's :meth:`~nerfgen.engine.Task.optimizers`. Raises when the module is off (nothing to optimise)."""
    if not module.enabled:
        raise ValueError("camera_optimizer: the camera optimiser is off; it has no parameters")
    adam = torch.optim.Adam([module.pose_adjustment], lr=config.lr, weight_decay=config.weight_decay, eps=1e-15)
    return adam, Schedule(config.lr_warmup_steps, config.lr_decay)
