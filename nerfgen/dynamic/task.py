"""Dynamic reconstruction: photometric training of a time-conditioned field on a capture whose
frames carry times (a :class:`~nerfgen.reconstruct.task.ReconstructionTask` where time enters).

Each training ray is conditioned on its image's time (``Conditioning.time``): the field reads it
per sample and the occupancy grid marches each ray through the grid of its time's bin. The grid
starts from visual hulls per bin of time (a cell is kept in a bin when it lies inside the hull of
some instant of the bin, or of the nearest instant on either side), so nothing that moves there is
carved away. Everything else is reconstruction's step, so a field that ignores the time trains
exactly as a static one does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nerfgen.config import config_to_dict
from nerfgen.data.times import TimedDataset
from nerfgen.dynamic.config import DynamicConfig
from nerfgen.dynamic.flow import flow_losses
from nerfgen.dynamic.run import DynamicInfo, DynamicRun
from nerfgen.fields import Conditioning
from nerfgen.kinds import RunKind
from nerfgen.reconstruct.task import ReconstructionTask, shown_on
from nerfgen.render import OccupancyGrid, TimeOccupancyGrid
from nerfgen.render.carving import visual_hull


class DynamicTask(ReconstructionTask):
    """Random pixels of random training images at their times -> rendered rays -> MSE.

    Args:
        config: training settings (a dynamic field).
        data: training split with each image's time.
        val: optional split for periodic validation PSNR (each view at its time).
    """

    def __init__(self, config: DynamicConfig, data: TimedDataset, val: TimedDataset | None = None) -> None:
        super().__init__(config, data.dataset, None if val is None else val.dataset)
        self.data, self.val = data, val
        self.instants = data.instants()
        options = self.spec.field_options
        if self.spec.field == "nsff" and not options.get("frame_dt"):  # the flows reach the neighbouring frames
            gaps = self.instants[1:] - self.instants[:-1]
            options["frame_dt"] = float(gaps.median()) if len(gaps) else 1.0

    def build(self, env) -> None:
        super().build(env)
        self.times = self.data.times.to(self.device)

    def conditioning(self, cam: Tensor) -> Conditioning:
        base = super().conditioning(cam)
        latent = None if base is None else base.latent
        return Conditioning(latent=latent, time=self.times[cam])

    def view_conditioning(self, i: int) -> Conditioning:
        return Conditioning(time=self.val.times[i:i + 1].to(self.device))

    def extra_losses(self, out, rays, target: Tensor, bg: Tensor, cam: Tensor) -> dict[str, Tensor]:
        terms = super().extra_losses(out, rays, target, bg, cam)
        if self.config.flow.enabled:
            terms.update(flow_losses(self.model.field, out, rays, self.conditioning(cam), target, bg, self.config.flow,
                                     self.model.sampler.early_stop_eps))
        return terms

    def carve(self, grid: OccupancyGrid) -> None:
        """Each bin of time from the union of the visual hulls of its instants (and their nearest
        neighbours in time): cells empty in every view of an instant hold nothing then."""
        if not isinstance(grid, TimeOccupancyGrid):
            return
        ds, times, instants = self.dataset, self.data.times, self.instants
        alphas = ds.images[..., 3]
        hulls: dict[tuple[float, int], Tensor] = {}

        def hull(centers: Tensor, size: float, k: int) -> Tensor:
            if (size, k) not in hulls:
                views = torch.nonzero((times - instants[k]).abs() < 1e-6)[:, 0]
                hulls[(size, k)] = visual_hull(centers, size, ds.cameras[views], alphas[views])
            return hulls[(size, k)]

        def inside(centers: Tensor, size: float, b: int) -> Tensor:
            lo, hi = grid.span(b)
            within = torch.nonzero((instants >= lo) & ((instants < hi) | (hi >= 1.0)))[:, 0].tolist()
            before = torch.nonzero(instants < lo)[:, 0].tolist()[-1:]
            after = torch.nonzero(instants >= hi)[:, 0].tolist()[:1]
            keep = torch.zeros(centers.shape[0], dtype=torch.bool)
            for k in sorted(set(within + before + after)):
                keep |= hull(centers, size, k)
            return keep

        grid.restrict_bins(inside)

    def live_run(self, output) -> DynamicRun:
        return DynamicRun(self.info(), self.model, output)

    def info(self) -> DynamicInfo:
        d, cfg = self.dataset, self.config
        return DynamicInfo(RunKind.DYNAMIC, self.spec, self.aabb.tolist(), self.cascades, d.source, shown_on(d),
                           self.background.mode, d.cameras.width, d.cameras.height, self.orbit(),
                           config_to_dict(cfg), cfg.downscale, times=[round(float(t), 6) for t in self.instants],
                           capture=self.data.capture.describe())
