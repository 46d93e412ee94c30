"""What every radiance field provides to the renderer: one call, conditioned or not.

``field(positions, directions, cond) -> FieldOutput(sigma, rgb | features)``. ``cond`` is a
:class:`Conditioning`: per-point latent codes (a GAN's shape and appearance codes), an object's
pose (world to object frame), which object slots exist (a composed scene) and the time of a dynamic
scene. Fields know nothing about cameras; the renderer hands them per-sample conditioning,
gathered from per-ray conditioning with :meth:`Conditioning.take`, and tells only the fields that
read along rays (IBRNet's ray module) which ray each sample lies on (:attr:`Conditioning.rays`).
A field that cannot use a part it is given refuses it (:meth:`RadianceField.check`), so a static
field never silently renders one instant of a dynamic scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class Conditioning:
    """What a field is conditioned on, per point (leading dimension ``n``) or shared by every
    point (leading dimension 1).

    Attributes:
        latent: ``[n | 1, D]`` latent codes (:class:`~nerfgen.fields.VanillaField` splits them into
            shape and appearance codes, as GRAF does); ``[n | 1, K, D]`` for a composed field's K slots.
        transform: ``[n | 1, 3, 4]`` world-to-object affine maps ``x_obj = A x + b`` (rotation,
            scale and translation of an object); ``[n | 1, K, 3, 4]`` for K slots.
        present: ``[n | 1, K]`` bool, which slots of a composed field hold an object.
        time: ``[n | 1]`` float in ``[0, 1]``, the instant a dynamic scene is seen at (the
            capture's first frame at 0, its last at 1); per ray, gathered per sample like latents.
        views: one scene's source views as a generalizable field sees them (their cameras and
            encoder features, computed once per scene: :class:`nerfgen.generalize.sources.SceneFeatures`),
            shared by every point.
        rays: ``[n]`` long, the ray each point lies on, non-decreasing (packed samples): given by
            the renderer to fields whose :attr:`RadianceField.accepts` lists ``rays``, never gathered.
    """

    latent: Tensor | None = None
    transform: Tensor | None = None
    present: Tensor | None = None
    time: Tensor | None = None
    views: Any = None
    rays: Tensor | None = None

    PARTS = ("latent", "transform", "present", "time", "views", "rays")
    """The parts a field may be given (what :meth:`RadianceField.check` looks at)."""

    def take(self, index: Tensor) -> Conditioning:
        """Rows ``index [m]`` of the per-point parts (per-ray conditioning -> per-sample); shared
        parts (leading dimension 1) stay shared; :attr:`rays` is dropped (it numbers the rays of one
        render)."""

        def pick(t: Tensor | None) -> Tensor | None:
            return t if t is None or t.shape[0] == 1 else t[index]

        return Conditioning(pick(self.latent), pick(self.transform), pick(self.present), pick(self.time), self.views)

    def slot(self, k: int) -> Conditioning:
        """The conditioning of slot ``k`` of a composed field (its latent and transform; the time
        is every slot's)."""
        return Conditioning(None if self.latent is None else self.latent[:, k],
                            None if self.transform is None else self.transform[:, k], time=self.time)

    def to(self, device: torch.device | str) -> Conditioning:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return Conditioning(move(self.latent), move(self.transform), move(self.present), move(self.time),
                            None if self.views is None else self.views.to(device), move(self.rays))



@dataclass
class FieldOutput:
    """A field's answer at ``n`` points: density and either colour or feature vectors.

    Attributes:
        sigma: ``[n]`` non-negative density (per world unit).
        rgb: ``[n, 3]`` colour in [0, 1] (radiance fields), or None.
        features: ``[n, C]`` feature vectors (feature fields, GIRAFFE), or None.
    """

    sigma: Tensor
    rgb: Tensor | None = None
    features: Tensor | None = None

    @property
    def channels(self) -> Tensor:
        """``[n, C]`` what the renderer composites: the colour, else the features."""
        return self.rgb if self.rgb is not None else self.features


class RadianceField(nn.Module):
    """A field over a box: ``field(positions, directions, cond=None) -> FieldOutput``.

    Subclasses implement :meth:`density` and :meth:`forward`, and list in :attr:`accepts` which
    parts of :class:`Conditioning` they use (anything else given is an error, never silently
    ignored). Points outside ``aabb`` have zero density.

    Args:
        aabb: ``[6]`` the box the field covers (``xmin, ymin, zmin, xmax, ymax, zmax``), in the
            field's own frame (the object frame when a transform is given).
    """

    accepts: frozenset[str] = frozenset({"transform"})
    """The :class:`Conditioning` parts this field understands."""
    out_channels: int = 3
    """Channels of :attr:`FieldOutput.channels`."""
    contraction: str = "none"
    """How points beyond ``aabb`` are seen: ``none`` (they are outside: zero density), ``linf`` or
    ``l2`` (mip-NeRF 360's scene contraction, :mod:`nerfgen.render.contraction`: ``aabb`` is the
    inner region and all of space is inside). Set by :class:`~nerfgen.render.RadianceModel`."""

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter-name prefix (the run's ``lr`` times the factor);
        parameters no prefix names take the run's ``lr``."""
        return {}

    def __init__(self, aabb: Tensor) -> None:
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone())

    def normalize(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``positions [n, 3]`` -> points in ``[0, 1]^3`` (clamped) and an inside mask ``[n]``.

        With a :attr:`contraction`, the points are contracted (``aabb`` maps to ``[1/4, 3/4]^3``)
        and every point is inside.
        """
        if self.contraction != "none":
            from nerfgen.render.contraction import contract_to_unit  # render imports fields, not at load

            unit = contract_to_unit(positions, self.aabb, self.contraction)
            return unit, torch.ones(positions.shape[:-1], dtype=torch.bool, device=positions.device)
        lo, hi = self.aabb[:3], self.aabb[3:]
        unit = (positions - lo) / (hi - lo)
        inside = ((unit >= 0) & (unit <= 1)).all(-1)
        return unit.clamp(0.0, 1.0), inside

    def check(self, cond: Conditioning | None) -> None:
        """Raise when ``cond`` carries something this field does not use."""
        if cond is None:
            return
        given = {name for name in Conditioning.PARTS if getattr(cond, name) is not None}
        if "time" in given - self.accepts:
            raise ValueError(f"{type(self).__name__} is a static field: it takes no time (a dynamic scene's "
                             f"instant); render a dynamic run to see a time")
        if given - self.accepts:
            raise ValueError(f"{type(self).__name__} takes no {', '.join(sorted(given - self.accepts))} "
                             f"conditioning (it accepts: {', '.join(sorted(self.accepts)) or 'none'})")

    def local(self, positions: Tensor, directions: Tensor | None, cond: Conditioning | None
              ) -> tuple[Tensor, Tensor | None]:
        """Points (and unit directions) in the field's frame: ``cond.transform`` applied when given."""
        self.check(cond)
        if cond is None or cond.transform is None:
            return positions, directions
        a, b = cond.transform[..., :3], cond.transform[..., 3]
        positions = (a @ positions[..., None])[..., 0] + b
        if directions is not None:
            directions = torch.nn.functional.normalize((a @ directions[..., None])[..., 0], dim=-1)
        return positions, directions

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``positions [n, 3]`` -> ``sigma [n]``."""
        raise NotImplementedError

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        """``positions [n, 3]``, unit ``directions [n, 3]`` -> :class:`FieldOutput` of ``n`` points."""
        raise NotImplementedError

    def regularizers(self) -> dict[str, Tensor]:
        """Loss terms on the field's own parameters, weighted, ready to add to a training loss
        (K-Planes' plane smoothness, say); none by default."""
        return {}
