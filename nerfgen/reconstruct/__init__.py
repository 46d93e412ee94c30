"""Reconstruction: a radiance field from posed images (``nerfgen train``, ``nerfgen eval``)."""

from nerfgen.reconstruct.config import TrainConfig
from nerfgen.reconstruct.task import ReconstructionTask, composite, shown_on

__all__ = ["ReconstructionTask", "TrainConfig", "composite", "shown_on"]
