"""Objects that rest where the layout says, by their actual shapes: a layout places boxes, but a
generated object seldom fills its box, so "a cube on a sphere" would float above it. Settling
moves each object of an "on" (or "under") relation down onto what holds it, and the objects on the
ground onto one floor, by the extents of their density (:meth:`SceneModel.extents`).
"""

from __future__ import annotations

import math

from torch import Tensor

from nerfgen.generate.layout import Layout

FULL_BOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
"""The extent assumed for an object with no density yet: its whole box."""


def supports(layout: Layout) -> dict[int, int]:
    """``{top: base}``: which object rests on which ("A on B" and "B under A")."""
    held = {}
    for r in layout.relations:
        if r.kind == "on":
            held[r.subject] = r.object
        elif r.kind == "under":
            held[r.object] = r.subject
    return held


def _rotate(x: float, y: float, degrees: float) -> tuple[float, float]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return c * x - s * y, s * x + c * y


def settled(layout: Layout, extents: list[Tensor | None]) -> Layout:
    """``layout`` with the objects of its relations resting on each other and on one floor.

    Objects in no relation stay where they are. Every object in a relation that rests on none is
    on the ground: its lowest point moves to the lowest of theirs. An object on another sits with
    its lowest point on the other's highest, centred over it. Last, the scene moves up or down so
    that its height is centred where it was.

    Args:
        layout: the layout.
        extents: per object, ``[2, 3]`` low and high corners of its density in its own frame, or
            None (its whole box is assumed).
    """
    boxes = [FULL_BOX if e is None else (tuple(e[0].tolist()), tuple(e[1].tolist())) for e in extents]
    held = supports(layout)
    related = {i for r in layout.relations for i in (r.subject, r.object)}
    centres = [list(o.center) for o in layout.objects]
    sizes = [o.size for o in layout.objects]

    def bottom(k: int) -> float:
        return centres[k][2] + sizes[k] * boxes[k][0][2]

    def top(k: int) -> float:
        return centres[k][2] + sizes[k] * boxes[k][1][2]

    def middle(k: int) -> tuple[float, float]:
        """World x, y of the middle of object k's extent."""
        lo, hi = boxes[k]
        dx, dy = _rotate(sizes[k] * (lo[0] + hi[0]) / 2, sizes[k] * (lo[1] + hi[1]) / 2, layout.objects[k].rotation)
        return centres[k][0] + dx, centres[k][1] + dy

    before = [bottom(k) for k in range(len(centres))] + [top(k) for k in range(len(centres))]
    ground = sorted(related - set(held))
    if ground:
        floor = min(bottom(k) for k in ground)
        for k in ground:
            centres[k][2] += floor - bottom(k)
    for k in _bottom_up(held):
        base = held[k]
        centres[k][2] += top(base) - bottom(k)
        (bx, by), (kx, ky) = middle(base), middle(k)
        centres[k][0] += bx - kx
        centres[k][1] += by - ky
    after = [bottom(k) for k in range(len(centres))] + [top(k) for k in range(len(centres))]
    shift = (min(before) + max(before)) / 2 - (min(after) + max(after)) / 2
    out = layout
    for k, c in enumerate(centres):
        out = out.edited(k, center=(c[0], c[1], c[2] + shift))
    return out


def _bottom_up(held: dict[int, int]) -> list[int]:
    """The objects that rest on others, each after the one it rests on."""
    depth = {}

    def level(k: int) -> int:
        if k not in held:
            return 0
        if k not in depth:
            depth[k] = level(held[k]) + 1
        return depth[k]

    return sorted(held, key=level)
