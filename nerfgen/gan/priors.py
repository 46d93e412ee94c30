"""What one generated scene is made of (:class:`SceneCodes`) and the priors it is drawn from.

Every part is an input of the generator, not hidden noise: sample a batch, then change one
object's translation, rotation, scale, shape or appearance code, or the camera, and render again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from nerfgen.cameras import Cameras, Views, view_cameras
from nerfgen.gan.config import CameraPrior, ObjectPrior


@dataclass
class SceneCodes:
    """A batch of ``B`` scenes of ``K`` object slots.

    Attributes:
        shape: ``[B, K, Ds]`` each object's shape code.
        appearance: ``[B, K, Da]`` each object's appearance code.
        translation: ``[B, K, 3]`` object centres in the world.
        rotation: ``[B, K]`` rotation about +z, degrees.
        scale: ``[B, K]`` half side of each object's cube in the world.
        present: ``[B, K]`` bool, which slots hold an object.
        background_shape: ``[B, Ds]`` the background's shape code (GIRAFFE).
        background_appearance: ``[B, Da]`` the background's appearance code (GIRAFFE).
        views: ``[B]`` the cameras' elevation, azimuth (degrees) and distance.
    """

    shape: Tensor
    appearance: Tensor
    translation: Tensor
    rotation: Tensor
    scale: Tensor
    present: Tensor
    background_shape: Tensor
    background_appearance: Tensor
    views: Views

    def __len__(self) -> int:
        return self.shape.shape[0]

    @property
    def slots(self) -> int:
        return self.shape.shape[1]

    def _map(self, fn) -> SceneCodes:
        """``fn`` applied to every tensor (the views' too)."""
        parts = {f.name: fn(getattr(self, f.name)) for f in fields(self) if f.name != "views"}
        v = self.views
        return SceneCodes(**parts, views=Views(fn(v.elevation), fn(v.azimuth), fn(v.distance)))

    def __getitem__(self, index) -> SceneCodes:
        """Scenes ``index`` (an int keeps the batch dimension)."""
        index = [index] if isinstance(index, int) else index
        return self._map(lambda t: t[index])

    def to(self, device: torch.device | str) -> SceneCodes:
        return self._map(lambda t: t.to(device))

    def clone(self) -> SceneCodes:
        return self._map(Tensor.clone)

    def with_(self, **parts) -> SceneCodes:
        """A copy with some parts replaced."""
        return replace(self, **parts)

    def world_to_object(self) -> Tensor:
        r"""``[B, K, 3, 4]`` affine maps into each object's cube: :math:`x_o = R_z(-\theta)(x - t) / s`."""
        theta = torch.deg2rad(self.rotation)
        c, s = theta.cos(), theta.sin()
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        rot_t = torch.stack([torch.stack([c, s, zero], -1), torch.stack([-s, c, zero], -1),
                             torch.stack([zero, zero, one], -1)], -2)  # R^T  [B, K, 3, 3]
        a = rot_t / self.scale[..., None, None]
        b = -(a @ self.translation[..., None])[..., 0]
        return torch.cat([a, b[..., None]], -1)


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator, shape=()) -> Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, *shape, generator=generator)


def sample_views(prior: CameraPrior, n: int, generator: torch.Generator) -> Views:
    """``n`` camera views from the prior (uniform angles and distance)."""
    return Views(_uniform(n, prior.elevation, generator), _uniform(n, prior.azimuth, generator) % 360.0,
                 _uniform(n, prior.distance, generator))


def prior_cameras(prior: CameraPrior, views: Views, side: int) -> Cameras:
    """Square pinhole cameras of ``side`` pixels at ``views``, looking at the origin."""
    return view_cameras(views.to("cpu"), torch.full((len(views),), prior.fov), side)


MODES_SEED = 20261208
"""Seed of the appearance modes' centres: fixed, so a run's prior is its config alone."""


def mode_centres(modes: int, dim: int) -> Tensor:
    """``[modes, dim]`` the centres of :func:`appearance_codes`' modes: standard normal draws."""
    return torch.randn(modes, dim, generator=torch.Generator().manual_seed(MODES_SEED))


def appearance_codes(shape: tuple[int, ...], dim: int, generator: torch.Generator, modes: int = 0,
                     spread: float = 1.0) -> Tensor:
    """``[*shape, dim]`` appearance codes: standard normal (``modes`` 0), or from an equal mixture of
    ``modes`` normals of standard deviation ``spread`` about :func:`mode_centres` (a set whose objects
    come in a few colours: a continuous code must cross between colours somewhere, and the codes near
    those crossings give the in-between colours no real object has)."""
    if not modes:
        return torch.randn(*shape, dim, generator=generator)
    pick = torch.randint(modes, shape, generator=generator)
    return mode_centres(modes, dim)[pick] + spread * torch.randn(*shape, dim, generator=generator)


def sample_codes(n: int, shape_latent: int, appearance_latent: int, objects: ObjectPrior, camera: CameraPrior,
                 generator: torch.Generator, slots: int | None = None, modes: int = 0,
                 spread: float = 1.0) -> SceneCodes:
    """``n`` scenes from the priors: standard normal codes (the objects' appearance codes from
    ``modes`` modes of ``spread``, see :func:`appearance_codes`), uniform transforms, a uniform object
    count in ``objects.count`` (slots beyond it absent), cameras from ``camera``.

    Args:
        slots: object slots (default ``objects.count[1]``; GRAF has one at the origin).
    """
    k = slots or objects.count[1]
    count = torch.randint(objects.count[0], objects.count[1] + 1, (n,), generator=generator)
    present = torch.arange(k)[None] < count[:, None]
    lo, hi = torch.tensor(objects.translation[:2]), torch.tensor(objects.translation[2:])
    scale = _uniform(n, objects.scale, generator, (k,))
    xy = lo + (hi - lo) * torch.rand(n, k, 2, generator=generator)
    z = scale if objects.ground else torch.zeros_like(scale)
    return SceneCodes(
        shape=torch.randn(n, k, shape_latent, generator=generator),
        appearance=appearance_codes((n, k), appearance_latent, generator, modes, spread),
        translation=torch.cat([xy, z[..., None]], -1), rotation=_uniform(n, objects.rotation, generator, (k,)),
        scale=scale, present=present, background_shape=torch.randn(n, shape_latent, generator=generator),
        background_appearance=torch.randn(n, appearance_latent, generator=generator),
        views=sample_views(camera, n, generator))


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between codes ``a`` and ``b`` (last dimension), ``t`` in [0, 1]."""
    na, nb = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((na * nb).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


__all__ = ["SceneCodes", "appearance_codes", "mode_centres", "prior_cameras", "sample_codes", "sample_views", "slerp"]
