"""What shape of scene a capture is: an object in a box, a forward-facing view, or an unbounded one.

``nerfgen train`` models the three differently (a box and an occupancy grid; NDC rays; scene
contraction and a proposal sampler), so it asks :func:`scene_layout` unless a config is given.
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


def scene_layout(dataset) -> Layout:
    """The layout of ``dataset`` (a :class:`~nerfgen.data.Dataset`): what its format declares,
    else forward-facing when every camera looks within :data:`FORWARD_CONE_DEGREES` of the mean
    direction, else an object when the format gives a scene box and unbounded when it does not
    (a COLMAP model: only SfM points)."""
    spread = _view_spread(dataset.cameras)
    if dataset.layout is not None:
        return Layout(dataset.layout, f"the capture's format is {dataset.layout} (views within {spread:.0f} deg)")
    if spread <= FORWARD_CONE_DEGREES:
        return Layout("forward", f"every camera looks within {spread:.0f} deg of the mean direction "
                                 f"(<= {FORWARD_CONE_DEGREES:.0f})")
    if dataset.points is not None:
        return Layout("unbounded", f"cameras look around ({spread:.0f} deg apart) and the capture has no scene box")
    return Layout("object", f"cameras look around ({spread:.0f} deg apart) inside the capture's scene box")
