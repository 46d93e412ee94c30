"""Typed configuration of GAN runs (GRAF and GIRAFFE); ``configs/graf.yaml`` and
``configs/giraffe.yaml`` map onto :class:`GanConfig` one to one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from nerfgen.engine.config import EngineConfig
from nerfgen.render import StratifiedConfig


@dataclass
class CameraPrior:
    """Where the generator's cameras are drawn from (GRAF/GIRAFFE's pose prior): on a sphere
    around the origin, looking at it, +z up (angles as :class:`nerfgen.cameras.Views`)."""

    fov: float = 30.0
    """Field of view across the image, degrees."""
    distance: tuple[float, float] = (4.0, 4.0)
    """Camera distance from the origin, uniform."""
    elevation: tuple[float, float] = (5.0, 50.0)
    """Elevation above the ground plane, degrees, uniform."""
    azimuth: tuple[float, float] = (0.0, 360.0)
    """Azimuth about +z, degrees, uniform (0 on +x)."""


@dataclass
class ObjectPrior:
    """GIRAFFE's object transforms: scale, rotation about +z, translation; every object's field
    lives in the cube ``[-1, 1]^3`` of its own frame, mapped to the world by these."""

    count: tuple[int, int] = (1, 3)
    """Objects per scene, uniform in this range; the generator has ``count[1]`` object slots."""
    scale: tuple[float, float] = (0.25, 0.4)
    """Half side of an object's cube in the world, uniform."""
    translation: tuple[float, float, float, float] = (-1.0, -1.0, 1.0, 1.0)
    """Region of the object centres on the ground: ``xmin, ymin, xmax, ymax``."""
    ground: bool = True
    """Objects rest on the plane z = 0 (centre height = scale); else z = 0."""
    rotation: tuple[float, float] = (0.0, 360.0)
    """Rotation about +z, degrees, uniform."""


@dataclass
class FieldSize:
    """A conditioned MLP field (:class:`nerfgen.fields.VanillaField`)."""

    depth: int = 4
    """Layers of the trunk."""
    width: int = 128
    """Width of the trunk."""
    position_frequencies: int = 6
    """Frequencies of the position encoding."""
    direction_frequencies: int = 2
    """Frequencies of the direction encoding."""
    view_dependent: bool = True
    """Whether colour (or features) may change with the view direction. False fits sets lit by a light
    fixed to the world (the embedded ones): a matte surface keeps its colour from every side, and a
    generator cannot fake a colour for each view."""


@dataclass
class PatchConfig:
    """GRAF's multi-scale patches: ``size x size`` rays spread over a square of side ``s`` times
    the image, ``s`` uniform in ``[s_min, max_scale]`` with ``s_min = max(min_scale,
    max_scale * exp(-anneal * step))``: whole (blurred) images first, finer patches later."""

    size: int = 16
    """Rays per patch side (the discriminator's input size)."""
    min_scale: float = 0.25
    """Smallest patch, as a fraction of the image side."""
    max_scale: float = 1.0
    """Largest patch (1: the whole image)."""
    anneal: float = 0.0025
    """Rate of the exponential decay of the smallest scale, per step."""


AUGMENTATIONS = ("translation", "cutout")
"""What :mod:`nerfgen.gan.augment` can do to the discriminator's inputs."""


@dataclass
class AugmentConfig:
    """Augmentation of the discriminator's inputs, real and generated alike (:mod:`nerfgen.gan.augment`:
    DiffAugment's translation and cutout, ADA's adaptive probability)."""

    policy: tuple[str, ...] = ()
    """Augmentations applied, in order: ``translation``, ``cutout`` (empty: none)."""
    probability: float = 1.0
    """Probability each is applied to an image (the starting value when it adapts)."""
    target: float = 0.0
    """ADA's target of :math:`E[\\mathrm{sign}(D(x))]` on real images (the paper's 0.6); 0: fixed."""
    adapt_images: int = 50000
    """Real images over which the probability may move by 1."""
    max_probability: float = 1.0
    """Most the adapting probability may reach."""


@dataclass
class GanConfig(EngineConfig):
    """Everything that decides a GAN run (the data folder and output are given apart): the
    engine's keys (``max_steps``, ``max_seconds``, seed, device, intervals) and these."""

    model: Literal["graf", "giraffe"] = "giraffe"
    """GRAF (one conditioned radiance field, patch discriminator) or GIRAFFE (object feature
    fields + background, composed, 2D neural renderer, discriminator at full size)."""
    max_steps: int = 100000
    checkpoint_every: int = 500
    eval_every: int = 500
    """Steps between KID on held-out images (offline encoder) and a sample sheet."""
    size: int = 64
    """Side of the images (training images are centre-cropped and resized to it)."""
    held_out: float = 0.1
    """Fraction of the images kept for evaluation (every k-th), never trained on."""
    batch: int = 16
    """Images (scenes) per step."""
    lr_generator: float = 5e-4
    """RMSprop learning rate of the generator (GRAF and GIRAFFE's)."""
    lr_discriminator: float = 1e-4
    """RMSprop learning rate of the discriminator."""
    lr_half_life: float = 0.0
    """Steps over which both learning rates halve (0: constant); counted in steps, not in the budget,
    so a run resumed with a longer budget goes on as it was."""
    r1: float = 10.0
    """R1 penalty weight gamma: ``gamma / 2 * E ||grad_x D(x)||^2`` on real images."""
    r1_every: int = 1
    """Steps between R1 penalties, each weighted by this many (StyleGAN2's lazy regularisation: the
    penalty's double backward is the discriminator step's dearest part)."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """RMSprop (GRAF's and GIRAFFE's) or Adam with betas (0, 0.99) (StyleGAN2's), for both networks."""
    ema: float = 0.999
    """Decay of the generator's exponential moving average (what samples and evaluation use)."""
    shape_latent: int = 64
    """Length of every shape code."""
    appearance_latent: int = 64
    """Length of every appearance code."""
    appearance_modes: int = 0
    """Objects' appearance codes from an equal mixture of this many normals (0: one standard normal;
    :func:`~nerfgen.gan.priors.appearance_codes`): for sets whose objects come in a few colours."""
    appearance_spread: float = 0.25
    """Standard deviation of each appearance mode (with ``appearance_modes``)."""
    field: FieldSize = dataclasses.field(default_factory=FieldSize)
    """The object field (GRAF: the one field)."""
    background_field: FieldSize = dataclasses.field(default_factory=lambda: FieldSize(2, 64, 4, 2))
    """GIRAFFE's background feature field."""
    aabb: tuple[float, float, float, float, float, float] = (-1.1, -1.1, -1.1, 1.1, 1.1, 1.1)
    """The box rays are sampled in (GRAF: the object's; GIRAFFE: the scene's, background included)."""
    sampler: StratifiedConfig = dataclasses.field(default_factory=lambda: StratifiedConfig(n_samples=24))
    """Stratified samples per ray (a new scene per code: nothing to cache)."""
    object_samples: int = 0
    """GIRAFFE: samples in each object's cube a ray crosses, beside the stratified ones
    (:class:`~nerfgen.render.box_sampler.ObjectBoxSampler`; 0: the stratified samples alone)."""
    background: Literal["white", "black"] = "white"
    """GRAF: the colour behind the field. GIRAFFE learns a background feature instead."""
    camera: CameraPrior = dataclasses.field(default_factory=CameraPrior)
    """The camera prior."""
    objects: ObjectPrior = dataclasses.field(default_factory=ObjectPrior)
    """GIRAFFE's object prior."""
    patch: PatchConfig = dataclasses.field(default_factory=PatchConfig)
    """GRAF's patch sampling."""
    features: int = 32
    """GIRAFFE: channels of the feature fields and the feature image."""
    upsample: int = 4
    """GIRAFFE: output side over feature-image side (a power of two)."""
    renderer_width: int = 128
    """GIRAFFE: channels of the neural renderer's first stage."""
    discriminator_width: int = 64
    """Channels of the discriminator's first layer (doubling per layer, at most 8x)."""
    minibatch_std: int = 0
    """Group size of the discriminator's minibatch standard deviation (0: none; see
    :class:`~nerfgen.gan.discriminator.Discriminator`)."""
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    """What the discriminator's inputs go through."""
    eval_samples: int = 500
    """Generated images KID is computed on at each evaluation."""

    @property
    def slots(self) -> int:
        """Object slots the generator is trained with (GRAF: its one field)."""
        return 1 if self.model == "graf" else self.objects.count[1]

    def validate(self, source: str) -> None:
        EngineConfig.validate(self, source)
        input_side = self.patch.size if self.model == "graf" else self.size
        checks = [
            (self.size >= 8 and self.batch >= 1, f"need size >= 8 and batch >= 1, got {self.size} and {self.batch}"),
            (self.upsample >= 1, f"upsample must be >= 1, got {self.upsample}"),
            (0 < self.held_out <= 0.5, "held_out must lie in (0, 0.5]"),
            (input_side >= 8 and input_side & (input_side - 1) == 0,
             "the discriminator's input side (patch.size for graf, size for giraffe) must be a power of two >= 8"),
            (self.model == "graf" or self.upsample < 1 or self.size % self.upsample == 0,
             "size must be a multiple of upsample"),
            (0 < self.patch.min_scale <= self.patch.max_scale <= 1, "need 0 < patch.min_scale <= patch.max_scale <= 1"),
            (1 <= self.objects.count[0] <= self.objects.count[1], "need 1 <= objects.count[0] <= objects.count[1]"),
            (0 < self.objects.scale[0] <= self.objects.scale[1], "objects.scale must be positive, low <= high"),
            (0 < self.camera.fov < 180, "camera.fov must lie in (0, 180)"),
            (0 < self.camera.distance[0] <= self.camera.distance[1], "camera.distance must be positive, low <= high"),
            (-90 < self.camera.elevation[0] <= self.camera.elevation[1] < 90,
             "camera.elevation must lie in (-90, 90), low <= high"),
            (0 <= self.ema < 1 and self.r1 >= 0 and self.lr_half_life >= 0 and self.r1_every >= 1,
             "need 0 <= ema < 1, r1 >= 0, r1_every >= 1 and lr_half_life >= 0"),
            (min(self.shape_latent, self.appearance_latent, self.features) >= 1, "latent and feature sizes must be >= 1"),
            (self.appearance_modes >= 0 and self.appearance_spread > 0,
             "need appearance_modes >= 0 and appearance_spread > 0"),
            (self.object_samples >= 0, f"object_samples must be >= 0, got {self.object_samples}"),
            (self.minibatch_std == 0 or self.minibatch_std >= 2, f"minibatch_std must be 0 or >= 2, got {self.minibatch_std}"),
            (self.aabb[0] < self.aabb[3] and self.aabb[1] < self.aabb[4] and self.aabb[2] < self.aabb[5],
             "aabb: expected xmin, ymin, zmin, xmax, ymax, zmax with min < max"),
        ]
        checks += [
            (all(p in AUGMENTATIONS for p in self.augment.policy), f"augment.policy: each one of {AUGMENTATIONS}"),
            (0 <= self.augment.probability <= self.augment.max_probability <= 1 and self.augment.adapt_images > 0,
             "need 0 <= augment.probability <= augment.max_probability <= 1 and augment.adapt_images > 0"),
            (0 <= self.augment.target < 1, "augment.target must lie in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{source}: {message}")
        self.sampler.validate(f"{source}: sampler")
