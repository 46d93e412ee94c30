"""Lens models of :class:`~nerfgen.cameras.base.Cameras`, on normalised image coordinates (y down):
OpenCV's radial-tangential model ``(k1, k2, p1, p2)`` (:func:`distort`, inverted by Newton's method in
:func:`undistort`) and OpenCV's fisheye (equidistant) model ``(k1, k2, k3, k4)``
(:func:`distort_fisheye`, :func:`undistort_fisheye`), and the camera-space ray directions through
distorted coordinates of either kind."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["distort", "undistort", "distort_fisheye", "undistort_fisheye", "fisheye_polynomial",
           "camera_directions"]


def distort(x: Tensor, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    r"""OpenCV radial-tangential distortion of normalised image coordinates.

    With :math:`r^2 = x^2 + y^2` and :math:`d = 1 + k_1 r^2 + k_2 r^4`,

    .. math::
        x_d = d\,x + 2 p_1 x y + p_2 (r^2 + 2 x^2), \qquad
        y_d = d\,y + p_1 (r^2 + 2 y^2) + 2 p_2 x y.

    Args:
        x: Undistorted normalised x, ``(u - cx) / fx``. ``[n]``.
        y: Undistorted normalised y (down), ``(v - cy) / fy``. ``[n]``.
        params: ``(k1, k2, p1, p2)`` per point. ``[n, 4]`` (or ``[4]``).

    Returns:
        ``(x_d, y_d)``, each ``[n]``.

    >>> distort(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.1, 0.0, 0.0, 0.0]))
    (tensor([0.]), tensor([0.]))
    """
    k1, k2, p1, p2 = params.unbind(-1)
    r2 = x * x + y * y
    d = 1.0 + r2 * (k1 + r2 * k2)
    xd = d * x + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = d * y + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def _residual_and_jacobian(
    x: Tensor, y: Tensor, xd: Tensor, yd: Tensor, params: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Residual ``distort(x, y) - (xd, yd)`` and its 2x2 Jacobian in ``(x, y)``."""
    k1, k2, p1, p2 = params.unbind(-1)
    r2 = x * x + y * y
    d = 1.0 + r2 * (k1 + r2 * k2)
    d_r = k1 + 2.0 * k2 * r2  # dd / d(r2)
    d_x, d_y = 2.0 * x * d_r, 2.0 * y * d_r
    fx = d * x + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd
    fy = d * y + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y - yd
    fx_x = d + d_x * x + 2.0 * p1 * y + 6.0 * p2 * x
    fx_y = d_y * x + 2.0 * p1 * x + 2.0 * p2 * y
    fy_x = d_x * y + 2.0 * p2 * y + 2.0 * p1 * x
    fy_y = d + d_y * y + 2.0 * p2 * x + 6.0 * p1 * y
    return fx, fy, fx_x, fx_y, fy_x, fy_y


def undistort(
    xd: Tensor, yd: Tensor, params: Tensor, iterations: int = 10, eps: float = 1e-12
) -> tuple[Tensor, Tensor]:
    """Inverts :func:`distort` with Newton iterations (as nerfstudio does).

    Starts from the distorted point and takes ``iterations`` Newton steps on
    the 2x2 system; steps where the Jacobian is singular are skipped.
    Vectorised over points; differentiable through the iterations.

    Args:
        xd: Distorted normalised x. ``[n]``.
        yd: Distorted normalised y (down). ``[n]``.
        params: ``(k1, k2, p1, p2)`` per point. ``[n, 4]`` (or ``[4]``).
        iterations: Number of Newton steps.
        eps: Determinant magnitude below which a step is skipped.

    Returns:
        Undistorted ``(x, y)``, each ``[n]``.
    """
    x, y = xd, yd
    for _ in range(iterations):
        fx, fy, fx_x, fx_y, fy_x, fy_y = _residual_and_jacobian(x, y, xd, yd, params)
        det = fx_x * fy_y - fx_y * fy_x
        ok = det.abs() > eps
        safe_det = torch.where(ok, det, torch.ones_like(det))
        step_x = torch.where(ok, (fx * fy_y - fy * fx_y) / safe_det, torch.zeros_like(det))
        step_y = torch.where(ok, (fy * fx_x - fx * fy_x) / safe_det, torch.zeros_like(det))
        x, y = x - step_x, y - step_y
    return x, y


def fisheye_polynomial(theta: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    """``theta_d(theta)`` of the fisheye model and its derivative in ``theta``."""
    k1, k2, k3, k4 = params.unbind(-1)
    t2 = theta * theta
    poly = 1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
    slope = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
    return theta * poly, slope


def distort_fisheye(x: Tensor, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    r"""OpenCV fisheye (equidistant) distortion of normalised image coordinates.

    With :math:`r = \sqrt{x^2 + y^2}` and :math:`\theta = \arctan r` (the angle to the optical axis),

    .. math::
        \theta_d = \theta (1 + k_1 \theta^2 + k_2 \theta^4 + k_3 \theta^6 + k_4 \theta^8), \qquad
        (x_d, y_d) = \frac{\theta_d}{r} (x, y).

    Args:
        x: Undistorted normalised x, ``(u - cx) / fx`` of a pinhole image. ``[n]``.
        y: Undistorted normalised y (down). ``[n]``.
        params: ``(k1, k2, k3, k4)`` per point. ``[n, 4]`` (or ``[4]``).

    Returns:
        ``(x_d, y_d)``, each ``[n]``.

    >>> distort_fisheye(torch.tensor([1.0]), torch.tensor([0.0]), torch.zeros(4))  # theta_d = pi / 4
    (tensor([0.7854]), tensor([0.]))
    """
    r = torch.sqrt(x * x + y * y)
    theta_d, _ = fisheye_polynomial(torch.atan(r), params)
    scale = torch.where(r > 0, theta_d / torch.where(r > 0, r, torch.ones_like(r)), torch.ones_like(r))
    return scale * x, scale * y


def _fisheye_theta(theta_d: Tensor, params: Tensor, iterations: int = 20, eps: float = 1e-12) -> Tensor:
    """Solves ``theta (1 + k1 theta^2 + ...) = theta_d`` for ``theta`` in ``[0, pi]`` by Newton's method."""
    theta = theta_d
    for _ in range(iterations):
        value, slope = fisheye_polynomial(theta, params)
        ok = slope.abs() > eps
        step = torch.where(ok, (value - theta_d) / torch.where(ok, slope, torch.ones_like(slope)), 0.0 * slope)
        theta = (theta - step).clamp(0.0, math.pi)
    return theta


def undistort_fisheye(
    xd: Tensor, yd: Tensor, params: Tensor, iterations: int = 20, eps: float = 1e-12
) -> tuple[Tensor, Tensor]:
    """Inverts :func:`distort_fisheye`: Newton steps on the angle ``theta`` (1-D, float64-accurate).

    Valid for rays less than 90 degrees off the optical axis (pinhole coordinates exist);
    :func:`pixel_rays` handles wider fisheye angles itself.

    Args:
        xd: Distorted normalised x. ``[n]``.
        yd: Distorted normalised y (down). ``[n]``.
        params: ``(k1, k2, k3, k4)`` per point. ``[n, 4]`` (or ``[4]``).
        iterations: Number of Newton steps.
        eps: Derivative magnitude below which a step is skipped.

    Returns:
        Undistorted ``(x, y)``, each ``[n]``.
    """
    rd = torch.sqrt(xd * xd + yd * yd)
    theta = _fisheye_theta(rd, params, iterations, eps)
    scale = torch.where(rd > 0, torch.tan(theta) / torch.where(rd > 0, rd, torch.ones_like(rd)), torch.ones_like(rd))
    return scale * xd, scale * yd


def _fisheye_directions(xd: Tensor, yd: Tensor, params: Tensor) -> Tensor:
    """OpenGL camera-space unit directions of distorted fisheye coordinates (any angle up to 180 degrees)."""
    rd = torch.sqrt(xd * xd + yd * yd)
    theta = _fisheye_theta(rd, params)
    scale = torch.where(rd > 0, torch.sin(theta) / torch.where(rd > 0, rd, torch.ones_like(rd)), torch.ones_like(rd))
    return torch.stack([scale * xd, -scale * yd, -torch.cos(theta)], dim=-1)


def camera_directions(x: Tensor, y: Tensor, params: Tensor, fish: Tensor) -> Tensor:
    """Camera-space directions (unnormalised) of rays, ``fish`` ones through the fisheye model."""
    dirs = x.new_empty(x.shape[0], 3)
    dirs[fish] = _fisheye_directions(x[fish], y[fish], params[fish])
    pin = ~fish
    xp, yp = x[pin], y[pin]
    if bool((params[pin] != 0).any()):
        xp, yp = undistort(xp, yp, params[pin])
    dirs[pin] = torch.stack([xp, -yp, -torch.ones_like(xp)], dim=-1)
    return dirs
