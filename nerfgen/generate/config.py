"""Typed configuration of text-to-3D generation; ``configs/generate_*.yaml`` map onto it one to one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerfgen.engine.config import build_dataclass, read_options
from nerfgen.render import OccGridConfig


@dataclass
class CameraConfig:
    """Random training cameras on a sphere around the object, looking at its centre (+z up;
    see :class:`nerfgen.prior.Views` for the angles)."""

    distance: tuple[float, float] = (3.0, 3.8)
    """Camera distance from the centre, drawn uniformly in this range."""
    elevation: tuple[float, float] = (-10.0, 60.0)
    """Elevation in degrees, drawn uniformly (by area on the sphere) in this range."""
    fov: tuple[float, float] = (40.0, 50.0)
    """Field of view in degrees, drawn uniformly in this range."""
    resolution: int = 64
    """Side of the rendered training images in pixels (resized to the prior's resolution)."""
    batch: int = 1
    """Views rendered and scored per step."""


@dataclass
class ShadingConfig:
    """How renders are shaded before the prior sees them (DreamFusion): albedo only first, then
    a random mix of albedo, diffuse (lambertian) and textureless (white diffuse) shading."""

    albedo_fraction: float = 0.2
    """Fraction of the run that renders albedo only (geometry first gets a rough shape)."""
    lambertian: float = 0.5
    """After that, probability of lambertian shading with a random point light."""
    textureless: float = 0.25
    """Probability of textureless shading (white albedo, lambertian light): shape must read alone.
    The rest of the probability renders albedo."""
    ambient: float = 0.3
    """Ambient share of the light in lambertian and textureless shading."""
    light_jitter: float = 0.6
    """The light comes from the camera's direction plus Gaussian noise of this scale."""


@dataclass
class GenerateConfig:
    """Everything that decides a generation run (the prompt and output are given apart)."""

    prior: str = "builtin"
    """Registered prior (``nerfgen.prior.PRIORS``): builtin | stable-diffusion | deepfloyd-if."""
    model: str | None = None
    """Prior weights: a local folder, a Hugging Face repo id in the local cache, or None (default)."""
    guidance: float = 7.5
    """Classifier-free guidance scale (DreamFusion uses 100 with Stable Diffusion)."""
    negative_prompt: str = ""
    """Prompt to steer away from (the unconditional branch of guidance)."""
    clip_guidance: float | None = None
    """Built-in prior only: scale of its noisy image-text model's guidance (:mod:`nerfgen.prior.guide`);
    None keeps the scale stored with the weights, 0 turns it off."""
    view_prompts: bool = True
    """Append "front / side / back / overhead view" to the prompt by camera angle (text-only
    priors; camera-conditioned priors see the angles instead)."""
    steps: int = 1500
    """Optimisation steps."""
    max_seconds: float = 0.0
    """Stop after this much time (0: no limit); the schedules follow the nearer budget."""
    t_min: float = 0.02
    """Smallest diffusion timestep drawn (fraction of the schedule)."""
    t_max: tuple[float, float] = (0.98, 0.5)
    """Largest timestep drawn, annealed linearly from the first value to the second over the run."""
    lr: float = 1e-2
    """Adam learning rate of the field."""
    background_lr: float = 1e-3
    """Adam learning rate of the background network."""
    background: str = "white"
    """Background behind the object: mlp (a network of the view direction) | white | black | random."""
    box: float = 1.0
    """Half side of the cube the object lives in, centred at the origin."""
    blob_density: float = 5.0
    """Initial density blob at the centre (``nerfgen.fields.NGPFieldConfig.blob_density``)."""
    blob_radius: float = 0.5
    """Radius where the blob's density bias crosses zero."""
    field_options: dict[str, Any] = dataclasses.field(default_factory=lambda: {
        "log2_table_size": 16, "max_resolution": 512, "n_levels": 12,
    })
    """Options of the ngp field's config (``nerfgen.fields.NGPFieldConfig``); the blob is added."""
    grid: OccGridConfig = dataclasses.field(default_factory=OccGridConfig)
    """Occupancy grid and ray marching (one cascade over the box)."""
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    """Random training cameras."""
    shading: ShadingConfig = dataclasses.field(default_factory=ShadingConfig)
    """Shading of training renders."""
    normal_eps: float = 0.01
    """Half step (world units) of the central differences that give surface normals."""
    lambda_orientation: float = 1e-2
    """Weight of the orientation loss (normals facing away from the camera, DreamFusion)."""
    lambda_opacity: float = 0.0
    """Weight of the opacity sparsity loss :math:`\\mathrm{mean}\\sqrt{o^2 + 0.01}` (fewer floaters)."""
    lambda_entropy: float = 0.0
    """Weight of the binary entropy of the opacity (crisp silhouettes)."""
    preview_every: int = 100
    """Steps between preview images (0: only at the end)."""
    preview_resolution: int = 96
    """Side of each view in the preview image."""
    orbit_frames: int = 60
    """Frames of the orbit video written at the end (0: none)."""
    orbit_resolution: int = 128
    """Side of the orbit video's frames."""
    mesh_resolution: int = 128
    """Grid points along the box of the ``mesh.ply`` exported at the end (0: no mesh)."""
    seed: int = 0
    """Seed of every random choice; a run is repeatable for a seed."""
    threads: int = 0
    """CPU threads for torch (0: all cores)."""
    device: str = "auto"
    """cpu | cuda | auto (cuda when available)."""


def config_from_dict(values: dict[str, Any], source: str = "config") -> GenerateConfig:
    """A :class:`GenerateConfig` from a (possibly partial, nested) dict."""
    config = build_dataclass(GenerateConfig, values, source)
    _validate(config, source)
    return config


def _validate(config: GenerateConfig, source: str) -> None:
    cam, shade = config.camera, config.shading
    checks = [
        (config.background in ("mlp", "white", "black", "random"), "background must be mlp, white, black or random"),
        (config.steps > 0 or config.max_seconds > 0, "steps or max_seconds must be positive"),
        (0 <= config.t_min < min(config.t_max) and max(config.t_max) <= 1, "need 0 <= t_min < t_max <= 1"),
        (cam.batch >= 1 and cam.resolution >= 8, "camera.batch >= 1 and camera.resolution >= 8"),
        (cam.distance[0] > config.box * 3**0.5, "camera.distance must keep cameras outside the box"),
        (-90 < cam.elevation[0] <= cam.elevation[1] < 90, "camera.elevation must lie in (-90, 90), low <= high"),
        (0 < cam.fov[0] <= cam.fov[1] < 180, "camera.fov must lie in (0, 180), low <= high"),
        (shade.lambertian + shade.textureless <= 1, "shading.lambertian + shading.textureless must be <= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{source}: {message}")


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> GenerateConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply non-None ``overrides``."""
    values = read_options(path) if path is not None else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_from_dict(values, str(path) if path is not None else "defaults")


def config_to_dict(config: GenerateConfig) -> dict[str, Any]:
    """Plain dict of a config (JSON/YAML ready)."""
    return dataclasses.asdict(config)
