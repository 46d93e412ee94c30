"""Typed configuration of text-to-3D generation; ``configs/generate_*.yaml`` map onto it one to one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from nerfgen.engine.config import EngineConfig
from nerfgen.render import ModelSpec, OccGridConfig, StratifiedConfig


@dataclass
class CameraConfig:
    """Random training cameras on a sphere around the object, looking at its centre (+z up;
    see :class:`nerfgen.cameras.Views` for the angles)."""

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
class SceneOptions:
    """Scenes of several objects (``nerfgen generate --scene``): each object's field is rendered
    alone, from cameras around its own centre, against its own phrase, and the composed scene
    against the whole prompt (CompoNeRF, Set-the-Scene); single-object runs do not read these."""

    max_seconds: float | None = None
    """The time budget of a scene run, in place of ``max_seconds`` (a scene scores several renders
    a step); None keeps ``max_seconds``. A ``--max-seconds`` given for the run wins."""
    refine_max_seconds: float | None = None
    """The time budget of a scene's refinement (``--refine``), in place of ``refine.max_seconds``;
    None keeps ``refine.max_seconds``."""
    batch: int = 2
    """Views of the whole scene rendered and scored per step (the refinement's too)."""
    object_batch: int = 2
    """Views of each object alone per step (the refinement's too)."""
    lambda_scene: float = 1.0
    """Weight of the scene's score distillation loss."""
    lambda_objects: float = 1.0
    """Weight of each object's score distillation loss."""
    radius: float = 1.0
    """A layout solved from a prompt is scaled to fit a sphere of this radius, as the prior's
    objects fit the camera's (each object's inscribed sphere inside it)."""
    box: float = 1.6
    """Half side of the scene's cube, where rays are marched: objects moved beyond it are cut."""
    grid_resolution: int = 64
    """Cells per side of the scene's occupancy grid (derived from the objects' grids)."""
    settle_every: int = 100
    """Steps between settlings of the objects onto what holds them (0: only at the end); see
    :mod:`nerfgen.generate.settle`."""
    settle_density: float = 10.0
    """Density above which an object's grid point counts as part of it when settling."""


@dataclass
class RefineConfig:
    """The refinement stage (Magic3D's second stage; ``nerfgen generate --refine``): after the
    coarse steps the density field is replaced by a signed-distance field (:class:`nerfgen.fields.SDFField`)
    fitted to the coarse field's contoured surface and colour, then refined by score distillation at
    a higher render resolution while the density's Laplace scale :math:`\\beta` shrinks, so the
    object ends solid with edges about a pixel wide (:mod:`nerfgen.generate.refine`; a scene's
    objects each in its layout: :mod:`nerfgen.generate.scene_refine`)."""

    enabled: bool = False
    """Run the refinement after the coarse steps."""
    steps: int = 300
    """Refinement steps (on top of ``max_steps``)."""
    max_seconds: float = 0.0
    """Time budget of the refinement (on top of ``max_seconds``; the refinement ends when its own
    steps or seconds are spent); 0: ``steps`` alone."""
    resolution: int = 64
    """Side of the refinement's training renders (downsampled, anti-aliased, to the prior's)."""
    batch: int = 2
    """Views rendered and scored per refinement step (a scene's: ``scene.batch`` and ``scene.object_batch``)."""
    lr: float = 5e-3
    """Adam learning rate of the signed-distance field."""
    beta: tuple[float, float] = (0.02, 0.004)
    """The density's Laplace scale (world units), annealed geometrically from the first to the
    second over the refinement (0.004: about a quarter of a pixel at 128 px on the orbit)."""
    t_max: tuple[float, float] = (0.6, 0.3)
    """Largest diffusion timestep drawn, annealed over the refinement (lower than the coarse
    stage's: the shape is there, details are refined)."""
    lambda_eikonal: float = 0.1
    """Weight of the Eikonal loss :math:`(|\\nabla d| - 1)^2` at random points of the box."""
    eikonal_points: int = 4096
    """Random points per step of the Eikonal loss."""
    render_step_size: float = 0.004
    """Marching step of the refined field (fine enough for the final ``beta``)."""
    grid_resolution: int = 64
    """Cells per side of the refined field's occupancy grid (finer than the coarse one's: fewer
    samples before the surface)."""
    init_steps: int = 300
    """Steps fitting the signed-distance field to the coarse surface before refining."""
    init_resolution: int = 64
    """Grid points along the box of the coarse density contoured to start from."""
    field_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Options of the SDF field's config (``nerfgen.fields.SDFFieldConfig``)."""


@dataclass
class GenerateConfig(EngineConfig):
    """Everything that decides a generation run (the prompt and output are given apart): the
    engine's keys (``max_steps``, ``max_seconds``, seed, device; a checkpoint every
    ``checkpoint_every`` steps, a preview sheet every ``eval_every``), the generated model's (field,
    sampler: :meth:`model_spec`) and these."""

    unused_keys: ClassVar[dict[str, str]] = {
        "contraction": "generation runs keep the object inside its box; 'contraction' applies to reconstruction only",
        "proposal": "generation runs march an occupancy grid; 'proposal' applies to reconstruction only",
        "ndc": "generation runs orbit the object; 'ndc' (forward-facing captures) applies to reconstruction only",
    }
    """Keys of a reconstruction's model (:class:`ModelSpec`) that generation has no use for (earlier
    versions accepted and stored them)."""

    max_steps: int = 1500
    """Optimisation steps."""
    checkpoint_every: int = 100
    """Steps between checkpoints (``--resume`` continues from the last)."""
    eval_every: int = 100
    """Steps between preview sheets ``previews/step_*.png`` (0: only at the end)."""
    field: Literal["ngp"] = "ngp"
    """The generated field: a hash grid that starts from a density blob."""
    field_options: dict[str, Any] = dataclasses.field(default_factory=lambda: {
        "log2_table_size": 16, "max_resolution": 512, "n_levels": 12,
    })
    """Options of the ngp field's config (``nerfgen.fields.NGPFieldConfig``); the blob is added."""
    sampler: Literal["occupancy", "stratified"] = "occupancy"
    """How rays are sampled: the occupancy grid (``grid``), or ``stratified`` (``stratified``;
    single-object runs only: a scene marches one grid per object)."""
    grid: OccGridConfig = dataclasses.field(default_factory=OccGridConfig)
    """Occupancy grid and ray marching (one cascade over the box)."""
    stratified: StratifiedConfig = dataclasses.field(default_factory=StratifiedConfig)
    """Samples per ray and near/far (``sampler: stratified``)."""
    prior: Literal["builtin", "stable-diffusion", "deepfloyd-if"] = "builtin"
    """Registered prior (``nerfgen.prior.PRIORS``)."""
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
    t_min: float = 0.02
    """Smallest diffusion timestep drawn (fraction of the schedule)."""
    t_max: tuple[float, float] = (0.98, 0.5)
    """Largest timestep drawn, annealed linearly from the first value to the second over the run."""
    lr: float = 1e-2
    """Adam learning rate of the field."""
    background_lr: float = 1e-3
    """Adam learning rate of the background network."""
    background: Literal["mlp", "white", "black", "random"] = "white"
    """Background behind the object: mlp (a network of the view direction) | white | black | random."""
    box: float = 1.0
    """Half side of the cube the object lives in, centred at the origin."""
    blob_density: float = 5.0
    """Initial density blob at the centre (``nerfgen.fields.NGPFieldConfig.blob_density``)."""
    blob_radius: float = 0.5
    """Radius where the blob's density bias crosses zero."""
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
    lambda_entropy_final: float | None = None
    """The entropy's weight at the end of the run: it goes linearly from ``lambda_entropy`` at the
    start to this (opacity binarisation annealed over the run); None keeps ``lambda_entropy``."""
    lambda_normal_smooth: float = 0.0
    """Weight of the normal smoothness: surface normals a random ``normal_smooth_jitter`` apart agree."""
    normal_smooth_jitter: float = 0.02
    """Standard deviation (world units) of the step between the two points compared for normal smoothness."""
    scene: SceneOptions = dataclasses.field(default_factory=SceneOptions)
    """Scenes of several objects (``--scene``)."""
    refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    """The refinement stage into a solid signed-distance surface (``--refine``)."""
    preview_resolution: int = 96
    """Side of each view in the preview image."""
    orbit_frames: int = 60
    """Frames of the orbit video written at the end (0: none)."""
    orbit_resolution: int = 128
    """Side of the orbit video's frames."""
    mesh_resolution: int = 128
    """Grid points along the box of the ``mesh.ply`` exported at the end (0: no mesh)."""

    def validate(self, source: str) -> None:
        EngineConfig.validate(self, source)
        self.model_spec().validate(source)
        cam, shade = self.camera, self.shading
        checks = [
            (0 <= self.t_min < min(self.t_max) and max(self.t_max) <= 1, "need 0 <= t_min < t_max <= 1"),
            (cam.batch >= 1 and cam.resolution >= 8, "camera.batch >= 1 and camera.resolution >= 8"),
            (cam.distance[0] > self.box * 3**0.5, "camera.distance must keep cameras outside the box"),
            (-90 < cam.elevation[0] <= cam.elevation[1] < 90, "camera.elevation must lie in (-90, 90), low <= high"),
            (0 < cam.fov[0] <= cam.fov[1] < 180, "camera.fov must lie in (0, 180), low <= high"),
            (shade.lambertian + shade.textureless <= 1, "shading.lambertian + shading.textureless must be <= 1"),
            (self.scene.batch >= 0 and self.scene.object_batch >= 0 and self.scene.batch + self.scene.object_batch > 0,
             "scene.batch and scene.object_batch must be >= 0, not both 0"),
            (0 < self.scene.radius <= self.scene.box, "need 0 < scene.radius <= scene.box"),
            (self.scene.grid_resolution >= 8, "scene.grid_resolution must be >= 8"),
            (self.scene.refine_max_seconds is None or self.scene.refine_max_seconds >= 0,
             "scene.refine_max_seconds must be >= 0 (or null)"),
            (self.normal_smooth_jitter > 0, "normal_smooth_jitter must be > 0"),
            (self.refine.steps >= 1 and self.refine.resolution >= 8 and self.refine.batch >= 1,
             "refine.steps and refine.batch must be >= 1, refine.resolution >= 8"),
            (0 < self.refine.beta[1] <= self.refine.beta[0] and self.refine.render_step_size > 0,
             "refine.beta must be positive, annealed downwards; refine.render_step_size > 0"),
            (0 <= self.t_min < min(self.refine.t_max) and max(self.refine.t_max) <= 1,
             "need 0 <= t_min < refine.t_max <= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{source}: {message}")

    def model_spec(self) -> ModelSpec:
        """The generated field: ngp with the density blob, one cascade over the box."""
        options = {**self.field_options, "blob_density": self.blob_density, "blob_radius": self.blob_radius}
        return ModelSpec(self.field, options, self.sampler, self.grid, self.stratified)


@dataclass
class SceneConfig(GenerateConfig):
    """A generation config for a scene of several objects (``nerfgen generate --scene``): the same
    keys (``scene`` holds what is particular to scenes), with the sampler fixed to the occupancy
    grid, as the scene is composed from the objects' grids."""

    def validate(self, source: str) -> None:
        super().validate(source)
        if self.sampler != "occupancy":
            raise ValueError(f"{source}: sampler: scene runs march one occupancy grid per object; "
                             f"{self.sampler!r} applies to single-object generation only")
