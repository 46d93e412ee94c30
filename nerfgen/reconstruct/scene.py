"""How a capture is modelled: the model spec, box and cascades that a config and a dataset give."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from nerfgen.cameras import Cameras, pixel_rays
from nerfgen.cameras.ndc import NDCConfig, ndc_config_for, ndc_rays
from nerfgen.data import Dataset
from nerfgen.data.llff import recenter
from nerfgen.reconstruct.config import TrainConfig
from nerfgen.render import ModelSpec

__all__ = ["forward_ndc", "model_setup", "ndc_box"]

BOX_PADDING = 0.05
"""Relative padding of the NDC box around what the training cameras see."""
NEAR_FRACTION = 0.75
"""The NDC near plane sits at this fraction of the nearest scene depth (NeRF's ``bd_factor``)."""


def forward_ndc(dataset: Dataset) -> NDCConfig:
    """The NDC map of a forward-facing capture, in the frame of its average camera: the near plane
    at 3/4 of the nearest depth the format stores (LLFF bounds) or of the nearest SfM points."""
    c2w = dataset.cameras.c2w.double().numpy()
    frame = np.linalg.inv(recenter(c2w))[:3]
    if dataset.bounds is not None:
        near = float(dataset.bounds[:, 0].min()) * NEAR_FRACTION
    elif dataset.points is not None and len(dataset.points.xyz):
        depth = -(dataset.points.xyz @ frame[:, :3].T + frame[:, 3])[:, 2]
        near = float(np.percentile(depth[depth > 0], 1)) * NEAR_FRACTION if (depth > 0).any() else 1.0
    else:
        near = float(np.linalg.norm(c2w[:, :, 3] - c2w[:, :, 3].mean(0), axis=1).max()) or 1.0
        warnings.warn(f"{dataset.source}: no depth bounds or SfM points to place the NDC near plane; "
                      f"using the cameras' spread ({near:.3g})", stacklevel=3)
    return ndc_config_for(dataset.cameras, near, torch.from_numpy(frame).float())


def ndc_box(cameras: Cameras, config: NDCConfig) -> Tensor:
    """``[6]`` the NDC box a forward-facing scene needs: ``z'`` from the near plane (-1) to
    infinity (1), and sideways whatever the training cameras' frustums cover beyond the scene's
    nearest depth (``1 / NEAR_FRACTION`` of the near plane), padded."""
    w, h, n = cameras.width, cameras.height, len(cameras)
    px = torch.tensor([0.0, w, 0.0, w]).repeat(n)
    py = torch.tensor([0.0, 0.0, h, h]).repeat(n)
    rays = ndc_rays(pixel_rays(cameras, torch.arange(n).repeat_interleave(4), px, py), config)
    z_scene = 1.0 - 2.0 * NEAR_FRACTION  # NDC z' of depth near / NEAR_FRACTION
    corners = []
    for z in (z_scene, 1.0):
        t = (z - rays.origins[:, 2]) / rays.directions[:, 2].clamp(min=1e-6)
        corners.append(rays.origins + t[:, None] * rays.directions)
    xy = torch.cat(corners)[:, :2]
    lo, hi = xy.min(0).values, xy.max(0).values
    pad = (hi - lo) * BOX_PADDING
    lo, hi = lo - pad, hi + pad
    return torch.tensor([float(lo[0]), float(lo[1]), -1.0, float(hi[0]), float(hi[1]), 1.0])


def model_setup(config: TrainConfig, dataset: Dataset) -> tuple[ModelSpec, Tensor, int]:
    """The model spec (NDC map filled in for ``forward_facing``, the march step from the training
    views' pixel footprint where ``grid.pixel_step`` asks), box and cascades of a run."""
    spec = config.model_spec()
    if config.forward_facing and not spec.ndc.enabled:
        spec.ndc = forward_ndc(dataset)
    if spec.ndc.enabled:
        return spec, ndc_box(dataset.cameras, spec.ndc), 1
    box = dataset.aabb
    footprint = dataset.cameras.footprint((box[:3] + box[3:]) / 2)
    spec.grid = spec.grid.for_footprint(footprint, float((box[3:] - box[:3]).norm()))
    return spec, dataset.aabb, dataset.cascades
