"""Evaluate a trained run on a dataset split: PSNR, SSIM (and LPIPS, given its weights) per view, written to JSON."""

from __future__ import annotations

import time
from pathlib import Path

import imageio.v3 as iio
import torch

from nerfgen.data import load_dataset
from nerfgen.engine.metrics import psnr, ssim
from nerfgen.files import write_json
from nerfgen.kinds import RunKind, load_run
from nerfgen.reconstruct.lpips import load_lpips_weights, lpips
from nerfgen.reconstruct.task import composite, shown_on
from nerfgen.render import background_color
from nerfgen.renderable import TimeConditioned, renderable


def evaluate(
    run_dir: str | Path, split: str = "test", every: int = 1, data: str | None = None,
    downscale: float | None = None, save_images: bool = False, limit: int = 0, device: str = "auto",
    baked: bool = False, lpips_weights: tuple[str | Path, str | Path] | None = None, format: str | None = None,
) -> dict:
    """Render every ``every``-th view of ``split`` and compare with the ground truth.

    Args:
        run_dir: a run directory written by training.
        split: dataset split to evaluate.
        every: keep views 0, every, 2*every, ...
        data: dataset path (default: the one the run trained on).
        downscale: image downscale (default: the training one).
        save_images: also write ``renders_{split}/NNN.png`` (prediction beside ground truth).
        limit: evaluate at most this many views (0: all selected).
        device: where to render: ``cpu``, ``cuda[:n]`` or ``auto``.
        baked: render the run's bake (``nerfgen bake``) instead of its field; the report then goes to
            ``eval_{split}_baked.json`` and, where the field's report covers the same views, says
            the field's PSNR on them.
        lpips_weights: ``(backbone, linear)`` weight files to also compute LPIPS with
            (:func:`nerfgen.reconstruct.lpips.load_lpips_weights`; nothing is downloaded); None: no LPIPS.
        format: the capture's reader (see :func:`~nerfgen.data.load_dataset`); default: the one the
            run recorded for its own data, else found from the folder.

    Returns:
        The report written to ``run_dir/eval_{split}.json``: mean and per-view PSNR/SSIM (and LPIPS),
        seconds, rays/s. Progress is shown on stderr (a bar on a terminal, a line every 10 s otherwise).
    """
    from nerfgen.bake.run import compare_with_field, load_baked

    run_dir = Path(run_dir)
    weights = load_lpips_weights(*lpips_weights) if lpips_weights is not None else None
    run = renderable(load_baked(run_dir, device) if baked else load_run(run_dir, device), "evaluation")
    if isinstance(run, TimeConditioned):  # each held-out view at its own time
        from nerfgen.dynamic.evaluate import evaluate_dynamic

        return evaluate_dynamic(run, split, every, data, downscale, save_images, limit)
    if run.info.kind is not RunKind.RECONSTRUCTION and data is None:
        raise ValueError(f"{run_dir}: a {run.info.kind.value} run has no dataset to evaluate on (give --data)")
    own = data is None or Path(data).resolve() == Path(run.info.data).resolve()
    data = data or run.info.data
    format = format or (run.info.config.get("data_format", "auto") if own else "auto")
    dataset = load_dataset(data, split, downscale=downscale or run.info.downscale, format=format)
    views = list(range(0, len(dataset.cameras), max(every, 1)))
    if limit > 0:
        views = views[:limit]
    suffix = "_baked" if baked else ""
    out_dir = run_dir / f"renders_{split}{suffix}" if save_images else None
    per_view, seconds = _score_views(run, dataset, views, weights, out_dir)
    n_rays = int(dataset.sizes[views].prod(1).sum())
    report = {
        "split": split, "every": every, "views": len(views),
        "width": dataset.cameras.width, "height": dataset.cameras.height,
        "psnr": sum(v["psnr"] for v in per_view) / max(len(per_view), 1),
        "ssim": sum(v["ssim"] for v in per_view) / max(len(per_view), 1),
        "seconds": seconds, "rays_per_second": n_rays / max(seconds, 1e-9),
        "appearance": getattr(getattr(getattr(run, "model", None), "field", None), "appearance_protocol",
                              "appearance: no embedding"),
        "poses": "as given (training-time pose refinement is not applied to held-out views)",
        "per_view": per_view,
    }
    if weights is not None:  # as nerfstudio reports it: AlexNet LPIPS, mean over the views
        report |= {"lpips": sum(v["lpips"] for v in per_view) / max(len(per_view), 1),
                   "lpips_weights": list(weights.files)}
    if baked:
        report |= compare_with_field(run_dir / f"eval_{split}.json", per_view)
    write_json(run_dir / f"eval_{split}{suffix}.json", report)
    return report


def _score_views(run, dataset, views: list[int], weights, out_dir: Path | None) -> tuple[list[dict], float]:
    """PSNR/SSIM (and LPIPS) of each view, with progress on stderr; returns them and the render seconds."""
    from nerfgen.engine.progress import RunProgress

    bg = background_color(shown_on(dataset))
    per_view, start, lpips_seconds = [], time.perf_counter(), 0.0
    with RunProgress("eval", len(views), 0.0) as bar:
        for i in views:
            image = run.render(dataset.camera(i), 0, bg)
            gt = composite(dataset.image(i), bg)
            per_view.append({"view": i, "file": dataset.filenames[i], "psnr": psnr(image.rgb, gt),
                             "ssim": ssim(image.rgb, gt)})
            if weights is not None:
                tic = time.perf_counter()
                per_view[-1]["lpips"] = lpips(image.rgb, gt, weights)
                lpips_seconds += time.perf_counter() - tic
            if out_dir is not None:
                out_dir.mkdir(exist_ok=True)
                pair = torch.cat([image.rgb, gt], 1).clamp(0, 1)
                iio.imwrite(out_dir / f"{i:03d}.png", (pair * 255 + 0.5).byte().numpy())
            bar.update(len(per_view), time.perf_counter() - start - lpips_seconds,
                       {"psnr": sum(v["psnr"] for v in per_view) / len(per_view)})
    return per_view, time.perf_counter() - start - lpips_seconds
