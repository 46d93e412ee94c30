"""A trained scene: field + occupancy grid, saved as a run directory and loaded back.

This is the public API the renderer, evaluator and viewer use: :func:`load_model` a run, then
:meth:`RadianceModel.render_camera` any camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from nerfgen.cameras import Cameras, image_rays
from nerfgen.engine.checkpoint import CONFIG_FILE, MODEL_FILE, read_json, read_tensors
from nerfgen.engine.config import TrainConfig, config_from_dict
from nerfgen.fields import build_field
from nerfgen.render import OccGridEstimator, RenderOutput, render_rays, render_rays_chunked


@dataclass
class ImageOutput:
    """One rendered image: ``rgb [H, W, 3]``, ``depth [H, W]``, ``opacity [H, W]`` and, when
    asked for, ``normals [H, W, 3]`` (world space, weight-averaged)."""

    rgb: Tensor
    depth: Tensor
    opacity: Tensor
    normals: Tensor | None = None


class RadianceModel(nn.Module):
    """A radiance field with the occupancy grid that samples it.

    Args:
        config: the training config (field name and options, grid settings).
        aabb: ``[6]`` finest-cascade box of the scene.
        cascades: occupancy-grid cascades (``1 + log2(aabb_scale)``).
    """

    def __init__(self, config: TrainConfig, aabb: Tensor, cascades: int = 1) -> None:
        super().__init__()
        self.estimator = OccGridEstimator(aabb, cascades, config.grid)
        options = dict(config.field_options)
        if config.field == "ngp":  # finer hash grid where the box grows with the cascades
            options["max_resolution"] = options.get("max_resolution", 2048) * 2 ** (cascades - 1)
        self.field = build_field(config.field, self.estimator.outer_aabb, options)

    def render_rays(
        self, origins: Tensor, directions: Tensor, background: Tensor, stratified: bool = False
    ) -> RenderOutput:
        """Render a batch of rays (differentiable); see :func:`nerfgen.render.render_rays`."""
        return render_rays(self.field, self.estimator, origins, directions, background, stratified)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters and grid live."""
        return self.estimator.aabbs.device

    @torch.no_grad()
    def render_camera(
        self, cameras: Cameras, index: int, background: Tensor, chunk: int = 1 << 14, normals: bool = False
    ) -> ImageOutput:
        """Render every pixel of camera ``index`` (pixel centres), without gradients.

        Cameras and background may live anywhere: the rays are made on the model's device, the
        image comes back on the CPU (for metrics, files and the viewer).
        """
        rays = image_rays(cameras.to(self.device), index)
        out = render_rays_chunked(self.field, self.estimator, rays.origins, rays.directions,
                                  background.to(self.device), chunk, normals)
        h, w = cameras.height, cameras.width
        normal_map = out.normals.view(h, w, 3).cpu() if normals else None
        return ImageOutput(out.rgb.view(h, w, 3).cpu(), out.depth.view(h, w).cpu(), out.opacity.view(h, w).cpu(),
                           normal_map)


@dataclass
class LoadedRun:
    """A run directory read back: the model, its config and the scene facts stored with it."""

    model: RadianceModel
    config: TrainConfig
    meta: dict


def load_model(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """Load ``run_dir`` (``config.json`` + ``model.safetensors``) written by training."""
    run_dir = Path(run_dir)
    saved = read_json(run_dir / CONFIG_FILE)
    try:
        config = config_from_dict(saved["train"], str(run_dir / CONFIG_FILE))
        meta = saved["scene"]
        model = RadianceModel(config, torch.tensor(meta["aabb"]), int(meta["cascades"]))
    except KeyError as exc:
        raise ValueError(f"{run_dir / CONFIG_FILE}: missing key {exc}; not a nerfgen run directory") from exc
    tensors = read_tensors(run_dir / MODEL_FILE)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"{run_dir / MODEL_FILE}: does not match the config (missing {missing}, unexpected {unexpected})")
    return LoadedRun(model.to(device).eval(), config, meta)
