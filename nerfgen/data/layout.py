"""What shape of scene a capture is: an object in a box, a forward-facing view, or an unbounded one.

``nerfgen train`` models the three differently (a box and an occupancy grid; NDC rays; scene
contraction and a proposal sampler), so it asks :func:`scene_layout` unless a config is given. The
cameras' geometry decides (how far their viewing directions spread, where they converge); the
format only informs (the scene box it gives, SfM points without one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nerfgen.cameras import Cameras

__all__ = ["FORWARD_CONE_DEGREES", "Layout", "scene_layout"]

FORWARD_CONE_DEGREES = 40.0
"""Cameras whose viewing directions all lie within this angle of their mean count as forward-facing."""


@dataclass
class Layout:
    """A capture's layout and why: ``kind`` is ``"object"``, ``"forward"`` or ``"unbounded"``."""

    kind: str
    reason: str


def _view_spread(cameras: Cameras) -> float:
    """Largest angle (degrees) between a camera's viewing direction and the mean one."""
    forward = -cameras.c2w[:, :, 2].double()  # cameras look down -z
    forward = forward / forward.norm(dim=-1, keepdim=True)
    mean = forward.mean(0)
    if float(mean.norm()) < 1e-6:
        return 180.0
    cos = (forward @ (mean / mean.norm())).clamp(-1, 1)
    return math.degrees(float(torch.acos(cos).max()))


def _focus(cameras: Cameras) -> tuple[torch.Tensor, float] | None:
    """The point the cameras look at: the least-squares nearest point to their optical axes, and
    its median depth in front of them; None when the axes do not meet in front of every camera
    (parallel, or passing it by more than a quarter of that depth)."""
    c2w = cameras.c2w.double()
    forward = -c2w[:, :, 2] / c2w[:, :, 2].norm(dim=-1, keepdim=True)  # [n, 3]
    centres = c2w[:, :, 3]
    across = torch.eye(3, dtype=torch.float64) - forward[:, :, None] * forward[:, None, :]  # [n, 3, 3]
    system = across.sum(0)
    if float(torch.linalg.eigvalsh(system)[0]) < 1e-6 * len(centres):
        return None
    point = torch.linalg.solve(system, (across @ centres[:, :, None]).sum(0))[:, 0]
    depth = ((point - centres) * forward).sum(-1)  # [n]
    miss = (point - centres - depth[:, None] * forward).norm(dim=-1)
    median = float(depth.median())
    if not bool((depth > 0).all()) or float(miss.median()) > 0.25 * median:
        return None
    return point, median


def _inside(points: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    box = aabb.double()
    return ((points >= box[:3]) & (points <= box[3:])).all(-1)


def scene_layout(dataset) -> Layout:
    """The layout of ``dataset`` (a :class:`~nerfgen.data.Dataset`), decided from its cameras.

    Forward-facing when every camera looks within :data:`FORWARD_CONE_DEGREES` of the mean
    direction, unless the format gives a scene box (``dataset.layout == "object"``) and the
    cameras, all outside it, converge on a point inside it. Cameras looking around are an object
    in the format's box, or unbounded when the capture has SfM points and no box (COLMAP). The
    format (LLFF says forward-facing) only informs: a 58-degree spread of cameras converging on an
    object is an object whatever file it came in.
    """
    cameras = dataset.cameras
    spread, focus = _view_spread(cameras), _focus(cameras)
    at = "" if focus is None else f", converging {focus[1]:.3g} in front of them"
    if spread > FORWARD_CONE_DEGREES:
        around = (f"cameras look around (up to {spread:.0f} deg from their mean viewing direction, "
                  f"> {FORWARD_CONE_DEGREES:.0f}{at})")
        if dataset.points is not None and dataset.layout != "object":
            return Layout("unbounded", f"{around} and the capture has SfM points but no scene box")
        if dataset.layout == "forward":
            return Layout("object", f"{around}: an object, not forward-facing as the {dataset.format or 'capture'} "
                                    "format would have it")
        return Layout("object", f"{around} inside the capture's scene box")
    cone = f"every camera looks within {spread:.0f} deg of the mean direction (<= {FORWARD_CONE_DEGREES:.0f})"
    box = dataset.aabb
    if (focus is not None and dataset.layout == "object" and bool(_inside(focus[0], box))
            and not bool(_inside(cameras.c2w[:, :, 3].double(), box).any())):
        return Layout("object", f"{cone}, but from outside the capture's scene box{at}, at a point inside it")
    return Layout("forward", cone)
