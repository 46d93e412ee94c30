"""Mesh export of a trained run, measured against the run's test images.

    python bench/mesh.py RUN [--resolution 256] [--every 8] [--downscale 2] [--images DIR]

Prints JSON lines: the export (seconds, vertices, faces, calibrated threshold, peak RSS), then
on every ``--every``-th test view: the mesh's silhouette IoU against the ground-truth alpha
(NeRF-synthetic RGBA) or depth (nerfgen's tabletop scenes), the PSNR of its vertex colours
against the images, the median distance between the mesh's depth and the field's depth (and the
true depth where the dataset has it), beside the field's own PSNR.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfgen.data import load_dataset  # noqa: E402
from nerfgen.engine.metrics import psnr  # noqa: E402
from nerfgen.mesh import MeshCaster  # noqa: E402
from nerfgen.reconstruct import composite, shown_on  # noqa: E402
from nerfgen.render import background_color  # noqa: E402
from nerfgen.kinds import load_run  # noqa: E402


def true_depth(data: Path, filename: str) -> torch.Tensor | None:
    """Ground-truth ray distance of a view when the dataset stores it (nerfgen's scenes), else None."""
    path = data / (str(Path(filename).with_suffix("")) + "_depth.npy")
    return torch.from_numpy(np.load(path)) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--every", type=int, default=8)
    parser.add_argument("--downscale", type=float, default=2)
    parser.add_argument("--images", help="write mesh | field | ground truth PNGs here")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp()) / "mesh.ply"
    run = load_run(args.run, "cpu")
    report = run.export_mesh(out, resolution=args.resolution, threshold=args.threshold)
    report["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps({"figure": "export", "run": args.run, "resolution": args.resolution, **report}))

    import trimesh

    caster = MeshCaster(trimesh.load(out, process=False))
    data = Path(run.info.data)
    dataset = load_dataset(data, "test", downscale=args.downscale)
    background = background_color(shown_on(dataset))
    rows = []
    for i in range(0, len(dataset.cameras), args.every):
        mesh = caster.render(dataset.cameras, i, background)
        field = run.render(dataset.cameras, i, background)
        gt = composite(dataset.images[i], background)
        depth = true_depth(data, dataset.filenames[i])
        if depth is not None:  # the scene's own renders are full resolution
            depth = torch.nn.functional.interpolate(depth[None, None], size=mesh.hit.shape, mode="nearest")[0, 0]
        solid = torch.isfinite(depth) if depth is not None else dataset.images[i][..., 3] > 127
        both = mesh.hit & (field.opacity > 0.5)
        row = {"iou": float((mesh.hit & solid).sum() / (mesh.hit | solid).sum().clamp(min=1)),
               "mesh_psnr": psnr(mesh.rgb, gt), "field_psnr": psnr(field.rgb, gt),
               "depth_vs_field": float((mesh.depth - field.depth)[both].abs().median())}
        if depth is not None:
            hit_both = mesh.hit & solid
            row["depth_vs_true"] = float((mesh.depth - depth)[hit_both].abs().median())
        rows.append(row)
        if args.images:
            Path(args.images).mkdir(parents=True, exist_ok=True)
            strip = torch.cat([mesh.rgb, field.rgb, gt], 1).clamp(0, 1)
            iio.imwrite(Path(args.images) / f"{i:03d}.png", (strip * 255 + 0.5).byte().numpy())
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}
    print(json.dumps({"figure": "mesh_vs_test_views", "views": len(rows), "downscale": args.downscale, **mean}))


if __name__ == "__main__":
    main()
