"""Fine-tuning a bake against the training images (PlenOctrees' step): the baked values (raw
density and SH colour) are optimised by Adam through the same march, lookup and compositing that
render them, on random training pixels, for a fixed time. Marching uses the grid's occupied cells
as baked; only the values move.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nerfgen.bake.grid import BakedGrid
from nerfgen.cameras import pixel_rays
from nerfgen.cameras.ndc import ndc_rays
from nerfgen.ops import volume_render
from nerfgen.ops.baked import baked_traverse, shade_baked, sparse_interp
from nerfgen.render import Background, training_background


def render_training_rays(baked: BakedGrid, values: torch.Tensor, rays, background: torch.Tensor,
                         jitter: torch.Tensor | None = None) -> torch.Tensor:
    """``[n, 3]`` colours of ``rays`` over ``background [n, 3]``, differentiable in ``values``."""
    s, grid = baked.shading, baked.grid
    samples = baked_traverse(rays.origins, rays.directions, grid, s.near_plane, 1e10, s.step_size, s.cone_angle,
                             jitter, baked.accel)
    ri = samples.ray_indices
    mids = (samples.t_starts + samples.t_ends) * 0.5
    sums, present = sparse_interp(rays.origins[ri] + rays.directions[ri] * mids[:, None], values, grid)
    sigma, rgb = shade_baked(sums, present, rays.directions[ri], s.sh_degree, s.empty_raw)
    comp = volume_render(samples.t_starts, samples.t_ends, sigma, rgb, ri, len(rays), s.early_stop_eps)
    return comp.color + (1 - comp.opacity[:, None]) * background


def finetune(baked: BakedGrid, run, config, say: Callable[[str], None] | None = None, seed: int = 0) -> dict:
    """Optimise ``baked.values`` in place for ``config.finetune_steps`` steps (else
    ``config.finetune_seconds``) on the training split of
    ``run`` (a reconstruction :class:`~nerfgen.runs.Run`); returns steps, seconds and the training
    PSNR of the first and last hundred steps (of the first and last quarter when there are fewer than
    400)."""
    from nerfgen.data import load_dataset
    from nerfgen.reconstruct.task import composite

    info = run.info
    dataset = load_dataset(info.data, "train", downscale=info.downscale)
    device = baked.device
    cameras = dataset.cameras.to(device)
    ndc = run.model.spec.ndc
    background = Background(training_background(info.train_background if info.train_background != "mlp" else "auto",
                                                dataset.has_alpha))
    generator = torch.Generator().manual_seed(seed)
    values = baked.values.detach().to(torch.float32, copy=True).requires_grad_()  # float16 when loaded
    optimizer = torch.optim.Adam([values], lr=config.finetune_lr, betas=(0.9, 0.99), eps=1e-15)
    losses, steps, start = [], 0, time.perf_counter()
    def more() -> bool:
        if config.finetune_steps > 0:
            return steps < config.finetune_steps
        return time.perf_counter() - start < config.finetune_seconds

    while more():
        n = config.finetune_rays
        pixels = dataset.store.sample(n, generator)
        jitter = torch.rand(n, 2, generator=generator)
        rays = pixel_rays(cameras, pixels.cam.to(device), (pixels.px + jitter[:, 0]).to(device),
                          (pixels.py + jitter[:, 1]).to(device))
        if ndc.enabled:
            rays = ndc_rays(rays, ndc)
        bg = background(rays.directions, n, generator)
        target = composite(pixels.rgba.to(device), bg)
        march_jitter = torch.rand(n, generator=generator).to(device)
        loss = F.mse_loss(render_training_rays(baked, values, rays, bg, march_jitter), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        steps += 1
    baked.values = values.detach()

    def mean_psnr(part: list[float]) -> float:
        return -10 * math.log10(max(sum(part) / max(len(part), 1), 1e-10))

    window = max(1, min(100, steps // 4))
    report = {"steps": steps, "seconds": round(time.perf_counter() - start, 1),
              "train_psnr_first": round(mean_psnr(losses[:window]), 2),
              "train_psnr_last": round(mean_psnr(losses[-window:]), 2)}
    if say is not None:
        say(f"bake: fine-tuned {steps} steps in {report['seconds']} s (training PSNR {report['train_psnr_first']} -> "
            f"{report['train_psnr_last']} dB)")
    return report
