"""What only ground truth allows: do a GIRAFFE run's controls do what they say?

* ``position``: each object's rendered position (the centroid of what removing it changes in
  the final, neural-rendered image) against the projection of its commanded translation, in
  pixels; with a baseline (the projection of another scene's object: what an uncontrolled render
  would score).
* ``move``: moving object 0 along x changes the pixels near it (inside the union of its masks
  before and after, dilated) and leaves the rest within a tolerance: the mean change outside over
  the mean change inside; and the rendered centroid follows the projected displacement.
* ``camera``: after raising the camera, the objects are still where their translations project.

On an embedded set the same position figure of the ground-truth renders (labels.json + the
objects' masks) is the floor of what a perfect generator would score.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from nerfgen.cameras import Cameras, fov_cameras, project
from nerfgen.gan.generator import GiraffeGenerator
from nerfgen.gan.priors import SceneCodes
from nerfgen.gan.run import GanRun

MASK_THRESHOLD = 0.5
"""Opacity above which a pixel belongs to an object."""
MIN_PIXELS = 2.0
"""Objects covering less (summed opacity) are not scored (hidden or out of view)."""
MIN_CHANGE = 1e-3
"""Objects whose removal changes the image by less (summed mean absolute RGB) are not scored
(they do not show)."""
MOVE = 0.5
"""World units object 0 moves along x in the ``move`` figure."""
DILATE = 2
"""Pixels the masks grow by before "outside" is measured (shadows, antialiasing)."""


def centroids(opacity: Tensor) -> tuple[Tensor, Tensor]:
    """``opacity [K, H, W]`` -> weighted centroids ``[K, 2]`` (x, y in pixel units, centres at
    +0.5) and their mass ``[K]``."""
    k, h, w = opacity.shape
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    mass = opacity.flatten(1).sum(1)
    cx = (opacity.sum(1) * xs).sum(1) / mass.clamp(min=1e-9)
    cy = (opacity.sum(2) * ys).sum(1) / mass.clamp(min=1e-9)
    return torch.stack([cx, cy], -1), mass


def projections(cameras: Cameras, index: int, points: Tensor) -> Tensor:
    """``[K, 2]`` pixel positions of world ``points [K, 3]`` in camera ``index``."""
    px, py, _ = project(cameras, index, points.float())
    return torch.stack([px, py], -1)


def object_pixels(run: GanRun, codes: SceneCodes, cameras: Cameras) -> Tensor:
    """``[B, K, H, W]`` how much each object changes the final image: the mean absolute RGB
    difference between the scene and the scene without that object (zero for absent slots)."""
    full = run.images(codes, cameras)
    out = torch.zeros(len(codes), codes.slots, *full.shape[2:])
    for k in range(codes.slots):
        without = codes.clone()
        without.present[:, k] = False
        out[:, k] = (full - run.images(without, cameras)).abs().mean(1) * codes.present[:, k, None, None]
    return out


def _position_errors(run: GanRun, codes: SceneCodes, cameras: Cameras) -> tuple[list[float], list[float]]:
    """Per shown object: its rendered position's distance to its projected translation, and to
    another scene's object's (the baseline), in pixels."""
    errors, baseline = [], []
    other = torch.roll(codes.translation, 1, 0)
    pixels = object_pixels(run, codes, cameras)
    for b in range(len(codes)):
        found, mass = centroids(pixels[b])
        target, wrong = projections(cameras, b, codes.translation[b]), projections(cameras, b, other[b])
        for k in range(codes.slots):
            if codes.present[b, k] and mass[k] >= MIN_CHANGE:
                errors.append(float((found[k] - target[k]).norm()))
                baseline.append(float((found[k] - wrong[k]).norm()))
    return errors, baseline


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _dilate(mask: Tensor, pixels: int) -> Tensor:
    return F.max_pool2d(mask[None, None].float(), 2 * pixels + 1, 1, pixels)[0, 0] > 0


@torch.no_grad()
def control_figures(run: GanRun, scenes: int = 16, seed: int = 7) -> dict:
    """The ``position``, ``move`` and ``camera`` figures (module docstring) of a GIRAFFE run on
    ``scenes`` scenes of its prior."""
    if not isinstance(run.generator, GiraffeGenerator):
        raise ValueError("control figures need a GIRAFFE run (objects with poses); this is a GRAF run")
    codes = run.codes(scenes, seed)
    cameras = run.cameras(codes)
    errors, baseline = _position_errors(run, codes, cameras)
    figures = {"position_error_px": _mean(errors), "position_baseline_px": _mean(baseline),
               "objects_shown": len(errors), "objects": int(codes.present.sum())}

    moved = codes.clone()
    lo, hi = run.config.objects.translation[0], run.config.objects.translation[2]
    x = codes.translation[:, 0, 0]
    moved.translation[:, 0, 0] = torch.where(x + MOVE <= hi, x + MOVE, x - MOVE).clamp(lo, hi)
    before, after = run.images(codes), run.images(moved)
    ratios, follow = [], []
    for b in range(scenes):
        masks = []
        for c in (codes, moved):
            masks.append(run.generator.object_opacity(c, cameras, b)[0])
        if masks[0].sum() < MIN_PIXELS or masks[1].sum() < MIN_PIXELS:
            continue
        near = _dilate((masks[0] > MASK_THRESHOLD) | (masks[1] > MASK_THRESHOLD), DILATE)
        change = (after[b] - before[b]).abs().mean(0)
        if near.all() or not near.any():
            continue
        ratios.append(float(change[~near].mean() / change[near].mean().clamp(min=1e-6)))
        shift = centroids(masks[1][None])[0][0] - centroids(masks[0][None])[0][0]
        wanted = projections(cameras, b, moved.translation[b, :1]) - projections(cameras, b, codes.translation[b, :1])
        follow.append(float(F.cosine_similarity(shift[None], wanted, dim=-1)))
    figures.update({"move_outside_over_inside": _mean(ratios), "move_direction_cosine": _mean(follow),
                    "moved_objects": len(ratios)})

    raised = codes.clone()
    raised.views.elevation[:] = raised.views.elevation + 10.0
    errors, baseline = _position_errors(run, raised, run.cameras(raised))
    figures.update({"camera_raised_position_error_px": _mean(errors), "camera_raised_baseline_px": _mean(baseline)})
    return figures


def ground_truth_position_error(folder, count: int = 32) -> dict:
    """The ``position`` figure of an embedded set's own images (its floor): each object's mask
    centroid against the projection of its labelled translation."""
    from nerfgen.scenes.gan_sets import object_masks
    from nerfgen.scenes.image_sets import read_labels

    labels = read_labels(folder)
    size, errors = int(labels["size"]), []
    for entry in labels["images"][:count]:
        c2w = torch.tensor(entry["c2w"], dtype=torch.float32)[None, :3]
        cameras = fov_cameras(c2w, torch.tensor([float(entry["fov_deg"])]), size, size)
        masks = torch.from_numpy(object_masks(entry, size)).float()
        found, mass = centroids(masks)
        target = projections(cameras, 0, torch.tensor([o["translation"] for o in entry["objects"]]))
        errors += [float((found[k] - target[k]).norm()) for k in range(len(masks)) if mass[k] >= MIN_PIXELS]
    return {"ground_truth_position_error_px": _mean(errors), "ground_truth_objects": len(errors)}
