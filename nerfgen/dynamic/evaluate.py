"""Evaluate a dynamic run: every held-out view rendered at its own time, PSNR and SSIM per view and
per instant, and (where the capture has it, as the embedded dynamic scene does) the error of the
run's 3D scene flow against the ground truth."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import imageio.v3 as iio
import torch

from nerfgen.data.times import capture_files, load_timed
from nerfgen.data.transforms import read_json
from nerfgen.dynamic.flow import render_flow
from nerfgen.engine.metrics import psnr, ssim
from nerfgen.fields.flow import SceneFlowField
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


def ground_truth_flows(data: str | Path, split: str) -> dict[Path, Path]:
    """Image -> its ground-truth 3D flow file (``flow_file_path``, as the embedded dynamic scene
    writes: ``[H, W, 6]`` forward and backward), for the frames of ``split`` that have one."""
    flows = {}
    for source in capture_files(data):
        if source.name not in (f"transforms_{split}.json", "transforms.json"):
            continue
        for frame in read_json(source).get("frames", []):
            if isinstance(frame, dict) and isinstance(frame.get("flow_file_path"), str):
                image = source.parent / frame["file_path"]
                flows[image if image.suffix else image.with_name(image.name + ".png")] = source.parent / frame["flow_file_path"]
    return flows


def flow_error(run, timed, views: list[int], files: dict[Path, Path]) -> dict | None:
    """End-point error of the run's rendered 3D flow to the next instant against the ground truth,
    over the pixels where a moving surface is seen (and over all surface pixels), and the dynamic
    field's share of what those pixels show, on moving and on still surfaces (a flow field whose
    dynamic part holds nothing cannot learn motion from the images); None without ground truth
    at the views' size."""
    import numpy as np

    dataset = timed.dataset
    moving_err, moving_gt, all_err, n_moving, n_all = 0.0, 0.0, 0.0, 0, 0
    share_moving, share_still = 0.0, 0.0
    for i in views:
        source = files.get(Path(dataset.filenames[i]))
        if source is None or dataset.depths is None:
            return None
        gt = torch.from_numpy(np.load(source).astype(np.float32))[..., :3]
        if gt.shape[:2] != (int(dataset.sizes[i, 1]), int(dataset.sizes[i, 0])):
            return None
        flow, share, _ = render_flow(run.model, dataset.camera(i), 0, float(timed.times[i]))
        hit = torch.isfinite(dataset.depths[i]) & (dataset.depths[i] > 0)
        err = (flow - gt).norm(dim=-1)
        moving = hit & (gt.norm(dim=-1) > 1e-3)
        share_moving += float(share[moving].sum())
        share_still += float(share[hit & ~moving].sum())
        moving_err += float(err[moving].sum())
        moving_gt += float(gt.norm(dim=-1)[moving].sum())
        all_err += float(err[hit].sum())
        n_moving, n_all = n_moving + int(moving.sum()), n_all + int(hit.sum())
    return {"flow_epe_moving": moving_err / max(n_moving, 1), "flow_gt_moving": moving_gt / max(n_moving, 1),
            "flow_epe_all": all_err / max(n_all, 1), "flow_moving_pixels": n_moving,
            "dynamic_share_moving": share_moving / max(n_moving, 1),
            "dynamic_share_still": share_still / max(n_all - n_moving, 1)}


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
    if isinstance(run.model.field, SceneFlowField):  # the scene flow too, where the capture knows it
        error = flow_error(run, timed, views, ground_truth_flows(data, split))
        if error is not None:
            report["scene_flow"] = error
    write_json(run_dir / f"eval_{split}.json", report)
    return report
