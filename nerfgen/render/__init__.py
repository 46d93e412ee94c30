"""Sampling and rendering: samplers place samples on rays, the renderer composites them, a
:class:`RadianceModel` holds a field with its sampler."""

from nerfgen.render.background import BACKGROUNDS, Background, background_color, training_background
from nerfgen.render.model import ImageOutput, ModelSpec, RadianceModel, build_sampler
from nerfgen.render.occupancy import OccGridConfig, OccupancyGrid
from nerfgen.render.renderer import RenderOutput, render_rays, render_rays_chunked
from nerfgen.render.sampler import Sampler, StratifiedConfig, StratifiedSampler

__all__ = ["BACKGROUNDS", "Background", "ImageOutput", "ModelSpec", "OccGridConfig", "OccupancyGrid",
           "RadianceModel", "RenderOutput", "Sampler", "StratifiedConfig", "StratifiedSampler",
           "background_color", "build_sampler", "render_rays", "render_rays_chunked", "training_background"]
