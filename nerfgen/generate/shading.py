r"""Shading of rendered pixels and the geometry regularisers of text-to-3D (DreamFusion).

Shading is deferred: the renderer composites albedo (over black, i.e. premultiplied by opacity)
and depth per ray; the normal of a pixel is the density gradient at its expected surface point
(:func:`surface_normals`: six density queries a ray instead of six a sample, 5-7x cheaper on a
CPU), and the pixel is lit as

.. math::
    c = \rho \big(a + (1 - a)\max(0, \hat n \cdot \ell)\big) + (1 - o)\, c_{bg},

with :math:`\rho` the albedo (white for textureless), :math:`a` the ambient share and
:math:`\ell` the direction towards the light.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from nerfgen.render.normals import density_normals

SHADING_MODES = ("albedo", "lambertian", "textureless")
"""Ways to shade a render; see :func:`shade`."""


def surface_normals(density_fn: Callable[[Tensor], Tensor], origins: Tensor, directions: Tensor, depth: Tensor,
                    eps: float) -> Tensor:
    """``[n, 3]`` unit outward density normals at each ray's expected surface point
    ``origin + depth * direction`` (zero where the density is flat, e.g. rays that hit nothing);
    differentiable in the field and, through ``depth``, in the rendering weights.

    Args:
        density_fn: ``positions [m, 3] -> sigma [m]``.
        origins: ``[n, 3]``.
        directions: ``[n, 3]`` unit.
        depth: ``[n]`` expected ray distance.
        eps: half the central-difference step (world units).
    """
    return density_normals(density_fn, origins + directions * depth[:, None], eps)


def shade(albedo: Tensor, opacity: Tensor, normals: Tensor | None, light: Tensor | None, mode: str,
          ambient: float) -> Tensor:
    """Foreground colour (premultiplied by opacity) of each pixel.

    Args:
        albedo: ``[n, 3]`` composited colour over black.
        opacity: ``[n]`` accumulated opacity.
        normals: ``[n, 3]`` density normals (any length; not needed for ``albedo``).
        light: ``[n, 3]`` unit directions towards the light (not needed for ``albedo``).
        mode: one of :data:`SHADING_MODES`.
        ambient: share of ambient light in [0, 1].

    Returns:
        ``[n, 3]``; add ``(1 - opacity) * background`` for the image.
    """
    if mode == "albedo":
        return albedo
    if mode not in SHADING_MODES:
        raise ValueError(f"unknown shading mode {mode!r}; choose one of {SHADING_MODES}")
    unit = normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    light_amount = ambient + (1 - ambient) * (unit * light).sum(-1, keepdim=True).clamp(min=0)
    base = albedo if mode == "lambertian" else opacity[:, None].expand(-1, 3)
    return base * light_amount


def orientation_loss(normals: Tensor, directions: Tensor, opacity: Tensor) -> Tensor:
    r"""Mean :math:`o \max(0, n \cdot d)^2` over rays: penalises visible surfaces whose normals
    face away from the camera (DreamFusion's orientation loss, at each ray's surface point rather
    than at every sample; the opacity :math:`o` is a weight, not optimised through this term).

    Args:
        normals: ``[n, 3]`` unit surface normals.
        directions: ``[n, 3]`` unit ray directions (from the camera into the scene).
        opacity: ``[n]`` accumulated opacity.
    """
    return (opacity.detach() * (normals * directions).sum(-1).clamp(min=0).pow(2)).mean()


def normal_smoothness(normals: Tensor, jittered: Tensor, opacity: Tensor) -> Tensor:
    r"""Mean :math:`o \|n - n'\|^2` over rays: the surface normal at each ray's surface point and
    the one a small random step away should agree (threestudio / Magic3D's normal smoothness; the
    opacity :math:`o` is a weight, not optimised through this term).

    Args:
        normals: ``[n, 3]`` unit surface normals.
        jittered: ``[n, 3]`` unit normals at the jittered points.
        opacity: ``[n]`` accumulated opacity.
    """
    return (opacity.detach() * (normals - jittered).pow(2).sum(-1)).mean()


def opacity_sparsity(opacity: Tensor) -> Tensor:
    r""":math:`\mathrm{mean}\sqrt{o^2 + 0.01}`: a smooth L1 pull of every pixel towards empty."""
    return (opacity.pow(2) + 0.01).sqrt().mean()


def opacity_entropy(opacity: Tensor) -> Tensor:
    r"""Mean binary entropy :math:`-o\log o - (1-o)\log(1-o)`: pushes pixels to empty or opaque."""
    o = opacity.clamp(1e-5, 1 - 1e-5)
    return (-(o * o.log()) - (1 - o) * (1 - o).log()).mean()
