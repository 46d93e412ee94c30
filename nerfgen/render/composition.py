r"""Several fields as one scene: GIRAFFE's composition operator (Niemeyer & Geiger 2021), the
pure function :func:`compose` beside the volume renderer, and :class:`ComposedField`, which
evaluates fields in slots and composes them.

Densities add and colours (or features) mix in proportion to density:

.. math::
    \sigma = \sum_k \sigma_k, \qquad c = \frac{\sum_k \sigma_k c_k}{\sigma}

Slot ``k`` is evaluated with its own latent code and pose, ``cond.slot(k)``; ``cond.present``
leaves out the slots a scene does not fill (a scene of 1 to 3 objects in 3 slots).
:class:`SlotChannels` renders the composed scene and, in the same pass, each slot's share of it
(its mask and its colour as seen in the scene, occluded by the others).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField


def mixing_weights(sigmas: Tensor, present: Tensor | None = None, eps: float = 1e-10) -> tuple[Tensor, Tensor]:
    r"""The composed density ``[n]`` and each slot's share :math:`\sigma_k / \sigma` ``[n, K]``
    of ``sigmas [n, K]`` (absent slots have none; where :math:`\sigma = 0` the present ones share equally)."""
    if present is not None:
        sigmas = sigmas * present.to(sigmas.dtype)
    sigma = sigmas.sum(-1)
    share = (sigmas + eps) / (sigma[:, None] + eps * sigmas.shape[-1])
    return sigma, share if present is None else share * present.to(share.dtype)


def compose(outputs: Sequence[FieldOutput], present: Tensor | None = None, eps: float = 1e-10) -> FieldOutput:
    r"""Composite the answers of K fields at the same ``n`` points.

    Args:
        outputs: K outputs of ``n`` points, all colour or all features of one width.
        present: ``[n | 1, K]`` bool; absent slots contribute nothing.
        eps: guards :math:`c` where :math:`\sigma = 0` (there :math:`c` is the plain mean).

    Returns:
        The composed :class:`FieldOutput`.

    >>> a = FieldOutput(torch.tensor([1.0]), torch.tensor([[1.0, 0, 0]]))
    >>> b = FieldOutput(torch.tensor([3.0]), torch.tensor([[0.0, 0, 1]]))
    >>> out = compose([a, b])
    >>> out.sigma.tolist(), out.rgb.tolist()
    ([4.0], [[0.25, 0.0, 0.75]])
    """
    sigma, mix = mixing_weights(torch.stack([o.sigma for o in outputs], -1), present, eps)  # [n], [n, K]
    values = torch.stack([o.channels for o in outputs], -2)  # [n, K, C]
    mixed = (mix[..., None] * values).sum(-2)
    if outputs[0].rgb is not None:
        return FieldOutput(sigma, rgb=mixed)
    return FieldOutput(sigma, features=mixed)


class ComposedField(RadianceField):
    """Fields in slots, composed into one scene (:func:`compose`).

    Args:
        fields: the field of each slot; pass one module several times to share it between slots
            (GIRAFFE's one object generator for every object).
        aabb: the scene's box (default: the box around every field's own box).
        bounded: per slot, whether the field is empty outside its own box (in its frame, after
            ``cond.transform``): such a slot is evaluated only at the points inside its box and
            present, the rest get zero density (an object a tenth of the scene costs a tenth).
            Default: every slot is evaluated everywhere.
        occupied: per bounded slot, a test ``local points [m, 3] -> [m]`` bool of where it may hold
            anything (its own occupancy grid), or None; it is evaluated only there too, so what a
            slot adds to the scene does not depend on where the others are.
        world_density: divide each slot's density by its scale (``|det A|^(1/3)`` of its
            transform), so that an object scaled down keeps its opacity: density is per unit of
            length, and lengths in the object's frame are ``1 / scale`` of the world's. GIRAFFE
            does not (its fields learn the scene's units); a field made alone in its own frame
            (text-to-scene) must.

    Conditioning: ``latent [n | 1, K, D]`` and ``transform [n | 1, K, 3, 4]`` (slot ``k`` gets
    ``[:, k]``), ``present [n | 1, K]``.
    """

    accepts = frozenset({"latent", "transform", "present"})

    def __init__(self, fields: Sequence[RadianceField], aabb: Tensor | None = None,
                 bounded: Sequence[bool] | None = None, world_density: bool = False,
                 occupied: Sequence[Callable[[Tensor], Tensor] | None] | None = None) -> None:
        if not fields:
            raise ValueError("ComposedField needs at least one field")
        channels = {f.out_channels for f in fields}
        if len(channels) != 1:
            raise ValueError(f"ComposedField: every field must output as many channels, got {sorted(channels)}")
        bounded = [False] * len(fields) if bounded is None else list(bounded)
        if len(bounded) != len(fields):
            raise ValueError(f"ComposedField: {len(fields)} fields but {len(bounded)} bounded flags")
        if aabb is None:
            boxes = torch.stack([f.aabb for f in fields])
            aabb = torch.cat([boxes[:, :3].amin(0), boxes[:, 3:].amax(0)])
        super().__init__(aabb)
        self.slots = nn.ModuleList(fields)
        occupied = [None] * len(fields) if occupied is None else list(occupied)
        if len(occupied) != len(fields) or any(o is not None and not b for o, b in zip(occupied, bounded)):
            raise ValueError("ComposedField: one occupancy test per slot, and only for bounded slots")
        self.bounded, self.world_density, self.occupied = bounded, world_density, occupied
        self.out_channels = channels.pop()

    def _active(self, k: int, positions: Tensor, cond: Conditioning) -> Tensor | None:
        """Indices ``[m]`` of the points slot ``k`` must be evaluated at, or None for all."""
        present = None if cond.present is None else cond.present[:, k].expand(positions.shape[0])
        if not self.bounded[k]:
            return None if present is None else torch.nonzero(present)[:, 0]
        field = self.slots[k]
        local, _ = field.local(positions, None, cond.slot(k))
        inside = ((local >= field.aabb[:3]) & (local <= field.aabb[3:])).all(-1)
        if self.occupied[k] is not None:
            inside &= self.occupied[k](local)
        return torch.nonzero(inside if present is None else inside & present)[:, 0]

    def _slot(self, k: int, positions: Tensor, directions: Tensor | None, cond: Conditioning) -> FieldOutput:
        """Slot ``k``'s answer at every point (zero density where it was not evaluated)."""
        field, slot_cond = self.slots[k], cond.slot(k)
        index = self._active(k, positions, cond)
        if index is None:
            out = FieldOutput(field.density(positions, slot_cond)) if directions is None else field(
                positions, directions, slot_cond)
            return self._world(out, slot_cond)
        n, sub_cond = positions.shape[0], slot_cond.take(index)
        sigma = positions.new_zeros(n)
        if directions is None:
            sigma = sigma.index_put((index,), field.density(positions[index], sub_cond))
            return self._world(FieldOutput(sigma), slot_cond)
        out = field(positions[index], directions[index], sub_cond)
        values = positions.new_zeros(n, self.out_channels).index_put((index,), out.channels)
        sigma = sigma.index_put((index,), out.sigma)
        out = FieldOutput(sigma, rgb=values) if out.rgb is not None else FieldOutput(sigma, features=values)
        return self._world(out, slot_cond)

    def _world(self, out: FieldOutput, cond: Conditioning) -> FieldOutput:
        """``out`` with its density in world units (:attr:`world_density`)."""
        if not self.world_density or cond.transform is None:
            return out
        per_length = torch.linalg.det(cond.transform[..., :3]).abs().pow(1 / 3)  # [n | 1] = 1 / scale
        return FieldOutput(out.sigma * per_length, out.rgb, out.features)

    def parts(self, positions: Tensor, directions: Tensor | None, cond: Conditioning | None = None
              ) -> list[FieldOutput]:
        """Every slot's answer at ``positions`` (density only without ``directions``), absent
        slots included (:func:`compose` or :func:`mixing_weights` leave them out)."""
        self.check(cond)
        cond = cond or Conditioning()
        return [self._slot(k, positions, directions, cond) for k in range(len(self.slots))]

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        sigmas = torch.stack([o.sigma for o in self.parts(positions, None, cond)], -1)
        return mixing_weights(sigmas, None if cond is None else cond.present)[0]

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        return compose(self.parts(positions, directions, cond), None if cond is None else cond.present)


class SlotChannels(RadianceField):
    """A composed radiance field whose features are the scene's colour followed by, for each of
    its K slots, its share of the density and its share times its colour: ``3 + 4K`` channels.

    Volume-rendered (over a background of ``[rgb, 0, ..., 0]``), they are the scene image and, in
    the same pass, each slot's mask (the part of the pixel's opacity it gives) and its colour as
    seen in the scene (premultiplied by that mask): :meth:`split` takes them apart.

    Args:
        composed: a :class:`ComposedField` of radiance fields.
    """

    accepts = ComposedField.accepts

    def __init__(self, composed: ComposedField) -> None:
        super().__init__(composed.aabb)
        if composed.out_channels != 3:
            raise ValueError(f"SlotChannels needs radiance fields (3 channels), got {composed.out_channels}")
        self.composed = composed
        self.out_channels = 3 + 4 * len(composed.slots)

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        return self.composed.density(positions, cond)

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None) -> FieldOutput:
        parts = self.composed.parts(positions, directions, cond)
        sigma, share = mixing_weights(torch.stack([o.sigma for o in parts], -1), None if cond is None else cond.present)
        rgbs = torch.stack([o.rgb for o in parts], 1)  # [n, K, 3]
        rgb = (share[..., None] * rgbs).sum(1)
        return FieldOutput(sigma, features=torch.cat([rgb, share, (share[..., None] * rgbs).flatten(1)], -1))

    def background(self, rgb: Tensor) -> Tensor:
        """``[3 + 4K]``: the scene's background colour ``rgb [3]``, and nothing of any slot."""
        return torch.cat([rgb, rgb.new_zeros(self.out_channels - 3)])

    @staticmethod
    def split(channels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rendered ``[..., 3 + 4K]`` -> scene ``rgb [..., 3]``, slot masks ``[..., K]`` and slot
        colours ``[..., K, 3]`` (premultiplied by their masks)."""
        k = (channels.shape[-1] - 3) // 4
        return channels[..., :3], channels[..., 3:3 + k], channels[..., 3 + k:].unflatten(-1, (k, 3))
