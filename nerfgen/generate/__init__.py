"""Text-to-3D generation: score distillation of a diffusion prior into a radiance field."""

from nerfgen.generate.config import CameraConfig, GenerateConfig, ShadingConfig, load_config
from nerfgen.generate.trainer import GenerateSummary, GenerationRun

__all__ = ["CameraConfig", "GenerateConfig", "GenerateSummary", "GenerationRun", "ShadingConfig", "load_config"]
