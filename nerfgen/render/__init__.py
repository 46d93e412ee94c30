"""Sampling and rendering: samplers place samples on rays, the renderer composites them, a
:class:`RadianceModel` holds a field with its sampler."""

from nerfgen.render.background import BACKGROUNDS, Background, background_color, training_background
from nerfgen.render.composition import ComposedField, SlotChannels, compose, mixing_weights
from nerfgen.render.contraction import CONTRACTIONS, Contraction, contract, contract_to_unit
from nerfgen.render.losses import distortion_loss, interlevel_loss, outer_weights
from nerfgen.render.model import ImageOutput, ModelSpec, RadianceModel, build_sampler
from nerfgen.render.occupancy import OccGridConfig, OccupancyGrid
from nerfgen.render.proposal import ProposalConfig, ProposalDensity, ProposalSampler
from nerfgen.render.renderer import RenderOutput, render_rays, render_rays_chunked
from nerfgen.render.sampler import Sampler, StratifiedConfig, StratifiedSampler
from nerfgen.render.time_occupancy import TimeOccupancyGrid

__all__ = ["BACKGROUNDS", "CONTRACTIONS", "Background", "ComposedField", "Contraction", "ImageOutput", "ModelSpec", "OccGridConfig",
           "OccupancyGrid", "ProposalConfig", "ProposalDensity", "ProposalSampler", "RadianceModel", "RenderOutput", "SlotChannels",
           "Sampler", "StratifiedConfig", "StratifiedSampler", "TimeOccupancyGrid", "background_color", "build_sampler", "compose", "contract", "mixing_weights",
           "contract_to_unit", "distortion_loss", "interlevel_loss", "outer_weights", "render_rays",
           "render_rays_chunked", "training_background"]
