"""Sampling and rendering: estimators place samples on rays, the renderer composites them."""

from nerfgen.render.occupancy import OccGridConfig, OccGridEstimator
from nerfgen.render.renderer import RenderOutput, render_rays, render_rays_chunked

__all__ = ["OccGridConfig", "OccGridEstimator", "RenderOutput", "render_rays", "render_rays_chunked"]
