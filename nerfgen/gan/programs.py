"""GIRAFFE's render programs: videos in which one input of the scene changes and nothing else.

Each program takes ``scenes`` scenes of a run (seeded) and yields frames of them side by side,
frame ``i`` of ``n`` changing one thing by the fraction ``t = i / (n - 1)``:

* ``rotate-object``: object 0 turns a full circle about +z.
* ``move-object``: object 0 slides along x across the prior's translation range (GIRAFFE).
* ``camera-elevation``: the camera rises from below to above the prior's elevation range.
* ``rotate-camera``: the camera circles the scene (azimuth 0-360).
* ``interpolate-shape`` / ``interpolate-appearance``: object 0's code slerps to another scene's.
* ``add-objects``: objects appear one by one in slots beyond those trained (GIRAFFE), up to
  ``objects.count[1] + 2``, placed by the prior.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from nerfgen.gan.priors import SceneCodes, slerp
from nerfgen.gan.run import GanRun, to_uint8

PROGRAMS = ("rotate-object", "move-object", "camera-elevation", "rotate-camera", "interpolate-shape",
            "interpolate-appearance", "add-objects")
OBJECT_PROGRAMS = ("move-object", "add-objects")
"""Programs only a GIRAFFE run (objects with poses) can play."""
EXTRA_SLOTS = 2
"""``add-objects`` goes this many objects beyond the training count."""


def _sheet(images: torch.Tensor) -> np.ndarray:
    """``[B, 3, S, S]`` -> one ``[S, B * S, 3]`` uint8 frame."""
    return np.concatenate(list(to_uint8(images)), axis=1)


def program_codes(run: GanRun, program: str, scenes: int, frames: int, seed: int) -> Iterator[SceneCodes]:
    """The scene codes of every frame of ``program``."""
    if program not in PROGRAMS:
        raise ValueError(f"unknown program {program!r}; expected one of {', '.join(PROGRAMS)}")
    if run.config.model == "graf" and program in OBJECT_PROGRAMS:
        raise ValueError(f"{program}: a GRAF run has one object at the origin; its programs are "
                         f"{', '.join(p for p in PROGRAMS if p not in OBJECT_PROGRAMS)}")
    cfg = run.config
    extra = EXTRA_SLOTS if program == "add-objects" else 0
    base = run.codes(scenes, seed, slots=run.slots + extra)
    other = run.codes(scenes, seed + 1, slots=run.slots + extra)
    if program == "add-objects":
        base.present[:] = False
    for i in range(frames):
        t = i / max(frames - 1, 1)
        codes = base.clone()
        if program == "rotate-object":
            codes.rotation[:, 0] += 360.0 * t
        elif program == "move-object":
            lo, hi = cfg.objects.translation[0], cfg.objects.translation[2]
            codes.translation[:, 0, 0] = lo + (hi - lo) * t
        elif program == "camera-elevation":
            lo, hi = cfg.camera.elevation
            codes.views.elevation[:] = lo - 10 + (hi - lo + 20) * t
        elif program == "rotate-camera":
            codes.views.azimuth[:] = (codes.views.azimuth + 360.0 * t) % 360.0
        elif program == "interpolate-shape":
            codes.shape[:, 0] = slerp(base.shape[:, 0], other.shape[:, 0], t)
        elif program == "interpolate-appearance":
            codes.appearance[:, 0] = slerp(base.appearance[:, 0], other.appearance[:, 0], t)
        else:  # add-objects: object k appears at frame k * frames / slots
            codes.present[:, : 1 + int(t * (codes.slots - 1) + 1e-6)] = True
        yield codes


def program_frames(run: GanRun, program: str, scenes: int = 4, frames: int = 32, seed: int = 0) -> Iterator[np.ndarray]:
    """``[S, scenes * S, 3]`` uint8 frames of ``program`` (see the module docstring)."""
    for codes in program_codes(run, program, scenes, frames, seed):
        yield _sheet(run.images(codes))


def render_program(run: GanRun, program: str, output, scenes: int = 4, frames: int = 32, seed: int = 0,
                   fps: float = 12) -> int:
    """Write ``program`` as a video (``.mp4`` or ``.gif``); returns the frames written."""
    from nerfgen.video import write_video

    return write_video(program_frames(run, program, scenes, frames, seed), output, fps)
