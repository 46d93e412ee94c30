"""Reconstruction: photometric training of a radiance field on a posed image dataset (a :class:`Task`)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Orbit, Rays, pixel_rays
from nerfgen.cameras.ndc import ndc_points, ndc_rays
from nerfgen.config import config_to_dict
from nerfgen.data import Dataset
from nerfgen.data.store import PixelBatch
from nerfgen.engine import Env, Schedule, StepContext, StepResult
from nerfgen.engine.metrics import psnr
from nerfgen.fields import Conditioning
from nerfgen.reconstruct.camera_opt import CameraOptimizer, camera_optimizer
from nerfgen.reconstruct.config import TrainConfig
from nerfgen.reconstruct.depth import depth_loss, sfm_depth_targets
from nerfgen.reconstruct.error_map import ErrorMap
from nerfgen.reconstruct.scene import NEAR_FRACTION, model_setup
from nerfgen.render import Background, OccupancyGrid, RadianceModel, background_color, training_background
from nerfgen.render.carving import visual_hull
from nerfgen.render.losses import distortion_loss
from nerfgen.field_task import FieldTask
from nerfgen.kinds import RunKind
from nerfgen.runs import RunInfo


def shown_on(dataset: Dataset) -> str:
    """The background a dataset is evaluated on: white for NeRF-synthetic images with alpha,
    the images' own plain backdrop for images without (:attr:`Dataset.white_background`), else black."""
    return "white" if dataset.white_background else "black"


def composite(rgba: Tensor, background: Tensor) -> Tensor:
    """``rgba [..., 4]`` uint8 or float in [0, 1] over ``background [..., 3]`` -> ``[..., 3]``."""
    rgba = rgba.float() / 255.0 if rgba.dtype == torch.uint8 else rgba
    return rgba[..., :3] * rgba[..., 3:] + background * (1.0 - rgba[..., 3:])


def field_optimizer(model: RadianceModel, config: TrainConfig) -> torch.optim.Adam:
    """Adam over the field: no weight decay on the hash tables and biases, ``weight_decay`` on the
    MLP weights; parameters the field names in :meth:`~nerfgen.fields.RadianceField.lr_scales` at
    their own learning rate."""
    scales = model.field.lr_scales()
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    for name, p in model.field.named_parameters():
        scale = next((s for prefix, s in scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault((p.ndim < 2 or "encoding" in name, scale), []).append(p)
    for name, p in model.sampler.named_parameters():
        groups[(p.ndim < 2 or "encoding" in name, 1.0)].append(p)
    return torch.optim.Adam([{"params": params, "lr": config.lr * scale,
                              "weight_decay": 0.0 if grid else config.weight_decay}
                             for (grid, scale), params in groups.items()],
                            lr=config.lr, betas=(0.9, 0.99), eps=1e-15, fused=True)


class ReconstructionTask(FieldTask):
    """Random pixels of random training images -> rendered rays -> MSE against the pixels.

    Args:
        config: training settings.
        dataset: training split.
        val_dataset: optional split for periodic validation PSNR.
    """

    name = "train"

    def __init__(self, config: TrainConfig, dataset: Dataset, val_dataset: Dataset | None = None) -> None:
        self.config, self.dataset, self.val_dataset = config, dataset, val_dataset
        self.spec, self.aabb, self.cascades = model_setup(config, dataset)
        options = self.spec.field_options
        self.appearance = self.spec.field == "ngp" and options.get("appearance_dim", 0) > 0
        if self.appearance and not options.get("appearance_images"):
            options["appearance_images"] = len(dataset)

    def build(self, env: Env) -> None:
        cfg, ds = self.config, self.dataset
        self.device, self.generator = env.device, env.generator
        self.model = RadianceModel(self.spec, self.aabb, self.cascades)
        if (ds.has_alpha and cfg.carve and isinstance(self.model.sampler, OccupancyGrid) and ds.store.uniform
                and not ds.store.lazy and not self.spec.ndc.enabled):
            self.carve(self.model.sampler)
        self.model.to(self.device)
        self.optimizer = field_optimizer(self.model, cfg)
        self.background = Background(training_background(cfg.background, ds.has_alpha, shown_on(ds)))
        self.cameras = ds.cameras.to(self.device)
        self.n_rays = cfg.init_rays
        self.camera_opt = CameraOptimizer(len(ds), cfg.camera_opt.mode).to(self.device)
        self.camera_adam = camera_optimizer(self.camera_opt, cfg.camera_opt) if self.camera_opt.enabled else None
        self.error_map = None
        if cfg.error_map.share > 0 and ds.store.lazy:
            warnings.warn(f"{ds.source}: the capture is decoded lazily (past image_memory_mb), so its rays are drawn "
                          f"uniformly: error_map.share {cfg.error_map.share} needs every image in memory", stacklevel=2)
        elif cfg.error_map.share > 0:
            self.error_map = ErrorMap(ds.store, cfg.error_map, ds.source)
        self.depth_targets = None
        if cfg.depth.weight > 0:
            if ds.points is None:
                raise ValueError(f"{ds.source}: depth supervision (depth.weight > 0) needs SfM points: a COLMAP "
                                 "model beside the images (`nerfgen data triangulate` makes one for posed captures)")
            self.depth_targets = sfm_depth_targets(ds.cameras, ds.points, sizes=ds.sizes).to(self.device)

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, Schedule]]:
        optimizers = {"field": (self.optimizer, Schedule(self.config.lr_warmup_steps, self.config.lr_decay))}
        if self.camera_adam is not None:
            optimizers["camera"] = self.camera_adam
        return optimizers

    def carve(self, grid: OccupancyGrid) -> None:
        """Start ``grid`` from the visual hull of the training images' alpha."""
        ds = self.dataset
        alphas = ds.images[..., 3]
        grid.restrict(lambda c, size: visual_hull(c, size, ds.cameras, alphas))

    # -- one step ----------------------------------------------------------------------------
    def conditioning(self, cam: Tensor) -> Conditioning | None:
        """What the field is conditioned on for rays of training images ``cam [n]``: their
        appearance embedding rows when the field has one."""
        return Conditioning(latent=cam) if self.appearance else None

    def view_conditioning(self, i: int) -> Conditioning | None:
        """What the field is conditioned on for every ray of validation view ``i``."""
        return None

    def extra_losses(self, out, rays: Rays, target: Tensor, bg: Tensor, cam: Tensor) -> dict[str, Tensor]:
        """Weighted loss terms beside the photometric one on a training batch (its render ``out``,
        rays, target colours, backgrounds and images): the field's own regularisers."""
        return self.model.field.regularizers()

    def rays(self, cam: Tensor, px: Tensor, py: Tensor) -> Rays:
        """Training rays through pixels (refined poses when the camera optimiser is on)."""
        if self.camera_adam is None:
            return pixel_rays(self.cameras, cam, px, py)
        return self.camera_opt.rays(self.cameras, cam, px, py)

    def batch(self) -> tuple[Rays, Tensor, Tensor, Tensor, PixelBatch]:
        """Random pixels of random training images (a share of them by the error map, where it is
        on): their rays, targets, backgrounds, images, and the pixels themselves."""
        n, dev = self.n_rays, self.device
        sampler = self.dataset.store if self.error_map is None else self.error_map
        pixels = sampler.sample(n, self.generator)
        cam, px, py = pixels.cam.to(dev), pixels.px.to(dev), pixels.py.to(dev)
        jitter = torch.rand(n, 2, generator=self.generator).to(dev)
        rays = self.rays(cam, px + jitter[:, 0], py + jitter[:, 1])
        bg = self.background(rays.directions, n, self.generator)
        return rays, composite(pixels.rgba.to(dev), bg), bg, cam, pixels

    def depth_term(self) -> Tensor:
        """DS-NeRF's depth loss on a batch of SfM points' rays (ray distances mapped to NDC when
        the model lives there)."""
        cfg = self.config.depth
        d = self.depth_targets.sample(cfg.rays, self.generator)
        rays = self.rays(d.cam_idx, d.px, d.py)
        t = d.t
        if self.spec.ndc.enabled:
            points = rays.origins + rays.directions * t[:, None]
            ndc = ndc_rays(rays, self.spec.ndc)
            t = ((ndc_points(points, self.spec.ndc) - ndc.origins) * ndc.directions).sum(-1)
        out = self.model.render_rays(rays, torch.zeros(3, device=self.device), self.conditioning(d.cam_idx),
                                     stratified=True)
        return depth_loss(out, t, d.weight, cfg.sigma, cfg.mode)

    def step(self, ctx: StepContext) -> StepResult:
        cfg = self.config
        self.model.train()
        self.model.sampler.update(ctx.step, self.model.field.density, ctx.world)
        rays, target, bg, cam, pixels = self.batch()
        out = self.model.render_rays(rays, bg, self.conditioning(cam), stratified=True)
        photometric = F.mse_loss(out.rgb, target)
        if self.error_map is not None:
            self.error_map.update(pixels.cam, pixels.px, pixels.py, ((out.rgb.detach() - target) ** 2).mean(-1))
        loss, figures = photometric, {}
        for name, term in [*self.model.sampler.losses(out).items(), *self.extra_losses(out, rays, target, bg, cam).items()]:
            loss = loss + term
            figures[name] = term.detach()
        if cfg.distortion > 0 and out.n_samples > 0:
            s = out.samples
            distortion = distortion_loss(out.weights, s.t_starts, s.t_ends, s.ray_indices, s.n_rays).mean()
            loss = loss + cfg.distortion * distortion
            figures["distortion"] = distortion.detach()
        if self.depth_targets is not None and len(self.depth_targets) > 0:
            depth = self.depth_term()
            loss = loss + cfg.depth.weight * depth
            figures["depth"] = depth.detach()
        ctx.optimize(("field", "camera") if self.camera_adam is not None else "field", loss)
        n_rays = len(rays)
        ratio = cfg.target_samples / max(out.n_samples, 1)
        self.n_rays = int(min(cfg.max_rays, max(64, self.n_rays * min(ratio, 4.0))))
        mse = photometric.detach()
        figures = {"loss": mse, "psnr": -10 * torch.log10(mse.clamp_min(1e-10)), **figures,
                   "occupancy": self.model.sampler.occupancy_fraction()}
        return StepResult(figures, {"rays": n_rays, "samples": out.n_samples})

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, float]:
        """Mean PSNR over the first ``val_views`` validation views (rendered downscaled)."""
        if self.val_dataset is None or self.config.val_views <= 0:
            return {}
        d = self.val_dataset
        bg = background_color(shown_on(d))
        self.model.eval()
        scores = []
        for i in range(min(self.config.val_views, len(d))):
            cams = d.camera(i).scaled(self.config.val_downscale)
            image = self.model.render_camera(cams, 0, bg, cond=self.view_conditioning(i))
            gt = F.interpolate(composite(d.image(i), bg).permute(2, 0, 1)[None], size=(cams.height, cams.width),
                               mode="area")[0].permute(1, 2, 0)
            scores.append(psnr(image.rgb, gt))
        return {"psnr": sum(scores) / len(scores)}

    # -- the run directory -------------------------------------------------------------------
    def info(self) -> RunInfo:
        d, cfg = self.dataset, self.config
        return RunInfo(RunKind.RECONSTRUCTION, self.spec, self.aabb.tolist(), self.cascades, d.source, shown_on(d),
                       self.background.mode, d.cameras.width, d.cameras.height, self.orbit(),
                       config_to_dict(cfg), cfg.downscale)

    def orbit(self) -> Orbit:
        """The circle the run's videos start from: round the scene, or facing it (forward-facing,
        focused at NeRF's mean-disparity depth of the capture's bounds or of its nearest depth)."""
        d = self.dataset
        if not self.spec.ndc.enabled:
            return Orbit.from_cameras(d.cameras)
        if d.bounds is not None:
            near, far = float(d.bounds[:, 0].min()) * 0.9, float(d.bounds[:, 1].max()) * 5
        else:
            near = self.spec.ndc.near / NEAR_FRACTION
            far = 20 * near
        return Orbit.facing(d.cameras, 1.0 / (0.25 / near + 0.75 / far))

    def state(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {"pose_adjustment": self.camera_opt.pose_adjustment.detach()} if self.camera_opt.enabled else {}
        values = {"n_rays": self.n_rays}
        if self.error_map is not None:
            tensors.update(self.error_map.state())
            values["error_map_draws"] = self.error_map.draws
        return tensors, values

    def load_state(self, tensors: dict[str, Tensor], values: dict) -> None:
        self.n_rays = int(values["n_rays"])
        if "pose_adjustment" in tensors:
            self.camera_opt.pose_adjustment.data.copy_(tensors["pose_adjustment"])
        if self.error_map is not None and "error_map" in tensors:
            self.error_map.load_state(tensors, int(values.get("error_map_draws", 0)))
