"""Evaluate a dynamic run: every held-out view rendered at its own time, PSNR and SSIM per view and
per instant, and (where the capture has it, as the embedded dynamic scene does) the error of the
run's 3D scene flow against the ground truth."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import imageio.v3 as iio
import torch

from nerfgen.data.times import load_timed
from nerfgen.engine.metrics import psnr, ssim
from nerfgen.files import write_json
from nerfgen.reconstruct.task import composite, shown_on
from nerfgen.render import background_color


def per_time(per_view: list[dict]) -> list[dict]:
    """Mean PSNR / SSIM of the views of each instant, ascending in time."""
    groups: dict[float, list[dict]] = defaultdict(list)
    for v in per_view:
        groups[round(v["time"], 6)].append(v)
    return [{"time": t, "views": len(vs), "psnr": sum(v["psnr"] for v in vs) / len(vs),
             "ssim": sum(v["ssim"] for v in vs) / len(vs)} for t, vs in sorted(groups.items())]


def evaluate_dynamic(run, split: str = "test", every: int = 1, data: str | None = None,
                     downscale: float | None = None, save_images: bool = False, limit: int = 0) -> dict:
    """Render every ``every``-th view of ``split`` of a dynamic run's capture at its own time and
    compare with the ground truth; writes ``eval_{split}.json`` into the run directory.

    Returns:
        The report: mean and per-view PSNR/SSIM, per-instant figures (``per_time``), seconds, rays/s.
    """
    run_dir = Path(run.path)
    data = data or run.info.data
    timed = load_timed(data, split, downscale=downscale or run.info.downscale)
    dataset = timed.dataset
    bg = background_color(shown_on(dataset))
    views = list(range(0, len(dataset), max(every, 1)))
    if limit > 0:
        views = views[:limit]
    per_view, start = [], time.perf_counter()
    out_dir = run_dir / f"renders_{split}"
    for i in views:
        t = float(timed.times[i])
        image = run.render(dataset.camera(i), 0, bg, time=t)
        gt = composite(dataset.image(i), bg)
        per_view.append({"view": i, "file": dataset.filenames[i], "time": t, "psnr": psnr(image.rgb, gt),
                         "ssim": ssim(image.rgb, gt)})
        if save_images:
            out_dir.mkdir(exist_ok=True)
            pair = torch.cat([image.rgb, gt], 1).clamp(0, 1)
            iio.imwrite(out_dir / f"{i:03d}.png", (pair * 255 + 0.5).byte().numpy())
    seconds = time.perf_counter() - start
    n_rays = int(dataset.sizes[views].prod(1).sum())
    report = {
        "split": split, "every": every, "views": len(views), "width": dataset.cameras.width,
        "height": dataset.cameras.height, "capture": timed.capture.describe(),
        "psnr": sum(v["psnr"] for v in per_view) / max(len(per_view), 1),
        "ssim": sum(v["ssim"] for v in per_view) / max(len(per_view), 1),
        "seconds": seconds, "rays_per_second": n_rays / max(seconds, 1e-9),
        "appearance": "appearance: no embedding", "poses": "as given",
        "protocol": "each view rendered at its own time",
        "per_time": per_time(per_view), "per_view": per_view,
    }
    write_json(run_dir / f"eval_{split}.json", report)
    return report
