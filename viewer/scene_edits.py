"""Edits of a generated scene (scene 0 of a :class:`~nerfgen.gan.priors.SceneCodes`), as the
objects panel makes them: move, turn or scale an object, draw new codes, add and remove objects.

Each edit returns an edited copy and leaves its input alone, so that the viewer can put the copy
in place with one assignment (``run.scene = ...``) while a render that began earlier keeps the
codes it started with.

>>> codes = posed(run.scene, 0, x=0.5, rotation=90.0)              # doctest: +SKIP
>>> codes = resampled(codes, 0, "shape", torch.Generator())          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nerfgen import appearance_codes

if TYPE_CHECKING:
    from nerfgen import SceneCodes

PARTS = ("shape", "appearance")
"""The codes of an object that can be drawn again."""


def _check_slot(codes: SceneCodes, k: int) -> None:
    if not 0 <= k < codes.slots:
        raise ValueError(f"object slot {k} does not exist; the scene has slots 0 to {codes.slots - 1}")


def posed(codes: SceneCodes, k: int, *, x: float | None = None, y: float | None = None, z: float | None = None,
          rotation: float | None = None, scale: float | None = None, ground: bool = True) -> SceneCodes:
    """A copy with object ``k`` of scene 0 moved to ``x``, ``y``, ``z`` (world units), turned to
    ``rotation`` (degrees about +z) or scaled to ``scale`` (half side of its cube); the parts not
    given stay. On the ground (``ground``, the object prior's) its centre height is its scale,
    whatever ``z`` says."""
    _check_slot(codes, k)
    if scale is not None and not scale > 0:
        raise ValueError(f"an object's scale must be positive, got {scale}")
    out = codes.clone()
    t = out.translation[0, k]  # [3]
    for axis, value in enumerate((x, y, z)):
        if value is not None:
            t[axis] = float(value)
    if rotation is not None:
        out.rotation[0, k] = float(rotation)
    if scale is not None:
        out.scale[0, k] = float(scale)
    if ground:
        t[2] = out.scale[0, k]
    return out


def resampled(codes: SceneCodes, k: int, part: str, generator: torch.Generator, modes: int = 0,
              spread: float = 1.0) -> SceneCodes:
    """A copy with object ``k``'s ``part`` code (``"shape"`` or ``"appearance"``) of scene 0 drawn
    again from the run's prior (standard normal; an appearance code from ``modes`` modes of ``spread``,
    the run's ``appearance_modes`` and ``appearance_spread``); every other code stays."""
    _check_slot(codes, k)
    if part not in PARTS:
        raise ValueError(f"unknown code {part!r}; expected one of {PARTS}")
    out = codes.clone()
    target = getattr(out, part)  # [B, K, D]
    target[0, k] = appearance_codes((), target.shape[-1], generator, modes, spread) if part == "appearance" \
        else torch.randn(target.shape[-1], generator=generator)
    return out


def new_background(codes: SceneCodes, generator: torch.Generator) -> SceneCodes:
    """A copy with scene 0's background shape and appearance codes drawn again (GIRAFFE)."""
    out = codes.clone()
    out.background_shape[0] = torch.randn(out.background_shape.shape[-1], generator=generator)
    out.background_appearance[0] = torch.randn(out.background_appearance.shape[-1], generator=generator)
    return out


def with_object(codes: SceneCodes, new: SceneCodes) -> tuple[SceneCodes, int]:
    """``codes`` with object 0 of scene 0 of ``new`` added: in the first empty slot, or in a new
    slot at the end (the scene then has more slots than the generator was trained with, which
    GIRAFFE renders all the same). Returns the scene and the slot it went in."""
    empty = (~codes.present[0]).nonzero()
    out = codes.clone()
    if len(empty):
        k = int(empty[0])
    else:
        k = codes.slots
        grow = {name: torch.cat([getattr(out, name), getattr(out, name)[:, -1:]], 1)
                for name in ("shape", "appearance", "translation", "rotation", "scale", "present")}
        out = out.with_(**grow)
    for name in ("shape", "appearance", "translation", "rotation", "scale"):
        getattr(out, name)[0, k] = getattr(new, name)[0, 0]
    out.present[0, k] = True
    return out, k


def without_object(codes: SceneCodes, k: int) -> SceneCodes:
    """A copy with object ``k`` of scene 0 taken out (its slot stays, empty)."""
    _check_slot(codes, k)
    out = codes.clone()
    out.present[0, k] = False
    return out


def present_slots(codes: SceneCodes) -> list[int]:
    """The slots of scene 0 that hold an object."""
    return [int(k) for k in codes.present[0].nonzero()[:, 0]]
