"""Text-to-3D generation: score distillation of a diffusion prior into a radiance field."""

from nerfgen.generate.config import CameraConfig, GenerateConfig, SceneConfig, ShadingConfig
from nerfgen.generate.task import GenerationTask

__all__ = ["CameraConfig", "GenerateConfig", "GenerationTask", "SceneConfig", "ShadingConfig"]
