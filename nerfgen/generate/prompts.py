"""View-dependent prompts for text-only priors: the suffix each camera angle gets (DreamFusion).

Angles follow :class:`nerfgen.cameras.Views` (+z up, azimuth 0 on +x sees the object's front).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nerfgen.cameras import Views

VIEW_SUFFIXES = ("front view", "side view", "back view", "overhead view")
"""DreamFusion's view-dependent prompt suffixes, indexed by :func:`view_suffix_index`."""
FRONT_HALF_ANGLE = 45.0
"""Azimuths within this many degrees of 0 are the front; within it of 180, the back."""
OVERHEAD_ELEVATION = 60.0
"""Elevations at or above this many degrees are overhead views."""


def view_suffix_index(views: Views) -> Tensor:
    """``[n]`` index into :data:`VIEW_SUFFIXES`: overhead above :data:`OVERHEAD_ELEVATION`, else
    front / back within :data:`FRONT_HALF_ANGLE` of azimuth 0 / 180, else side.

    >>> view_suffix_index(Views(torch.tensor([0.0, 0, 0, 70]), torch.tensor([10.0, 90, -170, 0]), torch.ones(4)))
    tensor([0, 1, 2, 3])
    """
    azimuth = (views.azimuth + 180.0) % 360.0 - 180.0
    side = torch.ones_like(azimuth, dtype=torch.long)
    index = torch.where(azimuth.abs() <= FRONT_HALF_ANGLE, 0, torch.where(azimuth.abs() >= 180 - FRONT_HALF_ANGLE, 2, side))
    return torch.where(views.elevation >= OVERHEAD_ELEVATION, 3, index)
