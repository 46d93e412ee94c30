"""The scene-flow terms of Neural Scene Flow Fields, for a :class:`~nerfgen.fields.flow.SceneFlowField`,
and the 3D flow a run renders (to measure against ground truth).

On a batch of training rays at their times ``t`` (a share of the batch, ``rays``):

- temporal photometric consistency (``temporal``): the dynamic field at ``t +- dt`` read at the
  samples moved along their flow, blended with the static field where they are, must render the
  pixels seen at ``t`` (NSFF's warped render; the flow learns from it);
- cycle consistency (``cycle``): the flow at the moved point back in time undoes the flow there;
- constant velocity (``velocity``): forward and backward flows at a point are opposite;
- minimal motion (``flow_l1``): flows are small unless the images ask otherwise;
- a static scene where it can be (``dynamic_l1``): the rendering weight of the dynamic share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Cameras, Rays, image_rays
from nerfgen.fields import Conditioning
from nerfgen.fields.flow import SceneFlowField, blend
from nerfgen.ops import volume_render
from nerfgen.render import RadianceModel, RenderOutput, render_rays


@dataclass
class FlowLossConfig:
    """Weights of the scene-flow terms (all 0: a scene-flow field trained by the images alone)."""

    temporal: float = 0.0
    """Temporal photometric consistency: renders of the neighbouring instants moved along the flow."""
    cycle: float = 0.0
    """Cycle consistency of the forward and backward flows."""
    velocity: float = 0.0
    """Forward and backward flows at a point cancel (constant velocity)."""
    flow_l1: float = 0.0
    """L1 of the flows (minimal motion)."""
    dynamic_l1: float = 0.0
    """L1 of the dynamic field's share of the rendering weights (static where it can be)."""
    rays: float = 0.5
    """Share of a batch's rays the terms are computed on."""

    def validate(self, source: str) -> None:
        if min(self.temporal, self.cycle, self.velocity, self.flow_l1, self.dynamic_l1) < 0 or not 0 < self.rays <= 1:
            raise ValueError(f"{source}: flow weights must be >= 0 and rays in (0, 1]")

    @property
    def enabled(self) -> bool:
        return any(w > 0 for w in (self.temporal, self.cycle, self.velocity, self.flow_l1, self.dynamic_l1))


def flow_losses(field: SceneFlowField, out: RenderOutput, rays: Rays, cond: Conditioning, target: Tensor,
                background: Tensor, cfg: FlowLossConfig, early_stop_eps: float = 0.0) -> dict[str, Tensor]:
    """The weighted scene-flow terms on the first ``cfg.rays`` of a training batch's rays (the
    batch is random: its first rays are a random share), from the render ``out`` of the batch."""
    n = max(1, int(len(rays) * cfg.rays))
    keep = out.samples.ray_indices < n
    samples = out.samples.masked(keep)
    if len(samples) == 0:
        return {}
    ri = samples.ray_indices
    mids = (samples.t_starts + samples.t_ends) * 0.5
    positions = rays.origins[ri] + rays.directions[ri] * mids[:, None]
    directions = rays.directions[ri]
    at = cond.take(ri)
    dyn = field.dynamic(positions, directions, at)
    static = field.static(positions, directions, at)
    terms: dict[str, Tensor] = {}
    temporal, cycle = positions.new_zeros(()), positions.new_zeros(())
    for sign, flow in ((1.0, dyn.forward), (-1.0, dyn.backward)):
        when = at.time + sign * field.frame_dt
        inside = (when >= 0) & (when <= 1)  # [m] samples whose neighbouring instant exists
        warped = field.dynamic(positions + flow, directions, Conditioning(time=when.clamp(0, 1)))
        mixed = blend(static.sigma, static.rgb, warped.sigma * inside, warped.rgb)
        comp = volume_render(samples.t_starts, samples.t_ends, mixed.sigma, mixed.rgb, ri, n, early_stop_eps)
        bg = background if background.ndim == 1 else background[:n]
        rgb = comp.color + (1.0 - comp.opacity[:, None]) * bg
        rays_inside = torch.zeros(n, dtype=torch.bool, device=ri.device).index_fill_(0, ri[inside], True)
        if bool(rays_inside.any()):
            temporal = temporal + F.mse_loss(rgb[rays_inside], target[:n][rays_inside])
        undo = warped.backward if sign > 0 else warped.forward  # back where it came from
        cycle = cycle + ((undo + flow).abs().sum(-1) * inside).sum() / inside.sum().clamp(min=1)
    if cfg.temporal > 0:
        terms["temporal"] = cfg.temporal * temporal
    if cfg.cycle > 0:
        terms["cycle"] = cfg.cycle * cycle
    if cfg.velocity > 0:
        terms["velocity"] = cfg.velocity * (dyn.forward + dyn.backward).abs().sum(-1).mean()
    if cfg.flow_l1 > 0:
        terms["flow_l1"] = cfg.flow_l1 * (dyn.forward.abs() + dyn.backward.abs()).sum(-1).mean()
    if cfg.dynamic_l1 > 0:
        share = dyn.sigma / (dyn.sigma + static.sigma).clamp(min=1e-8)
        terms["dynamic_l1"] = cfg.dynamic_l1 * (out.weights[keep].detach() * share).sum() / n
    return terms


@torch.no_grad()
def render_flow(model: RadianceModel, cameras: Cameras, index: int, time: float, chunk: int = 1 << 13
                ) -> tuple[Tensor, Tensor, Tensor]:
    """What the scene-flow field shows at each pixel of camera ``index`` at ``time``, on the CPU:
    the 3D scene flow to the next instant ``[H, W, 3]`` and the dynamic field's share of the
    density ``[H, W]`` (both averaged over the samples by their rendering weights), and the
    opacity ``[H, W]``."""
    field = model.field
    rays = image_rays(cameras.to(model.device), index)
    cond = Conditioning(time=torch.tensor([time], device=model.device))
    flows, shares, opacities = [], [], []
    for i in range(0, len(rays), chunk):
        part = rays[i:i + chunk]
        out = render_rays(field, model.sampler, part, torch.zeros(3, device=model.device), cond)
        ri = out.samples.ray_indices
        mids = (out.samples.t_starts + out.samples.t_ends) * 0.5
        positions = part.origins[ri] + part.directions[ri] * mids[:, None]
        dyn = field.dynamic(positions, part.directions[ri], cond.take(ri))
        share = dyn.sigma / (dyn.sigma + field.static(positions, part.directions[ri]).sigma).clamp(min=1e-8)
        per_ray = torch.zeros(len(part), 4, device=model.device).index_add_(
            0, ri, torch.cat([dyn.forward, share[:, None]], -1) * out.weights[:, None])
        per_ray = per_ray / out.opacity.clamp(min=1e-6)[:, None]
        flows.append(per_ray[:, :3])
        shares.append(per_ray[:, 3])
        opacities.append(out.opacity)
    h, w = cameras.height, cameras.width
    return (torch.cat(flows).view(h, w, 3).cpu(), torch.cat(shares).view(h, w).cpu(),
            torch.cat(opacities).view(h, w).cpu())
