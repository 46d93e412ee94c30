"""Textured mesh export of runs (issue 28): time, glb size, watertightness, silhouette IoU.

    python bench/mesh_texture.py RUN [RUN ...] [--resolution 128] [--texture-size 1024] [--views 8] [--images DIR]

Exports each run once to ``mesh.ply`` (vertex colours) and ``mesh.glb`` (UV atlas, baked texture)
and prints one JSON line per figure: export seconds, glb bytes, watertight (the ply, and the glb
welded at its seams), and the silhouette IoU of the glb's render (ray cast) against the field's
opacity > 1/2 from ``--views`` orbit views (the smallest and the mean). ``--images`` keeps the
texture PNG and, per run, a strip of field | glb renders of the views.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfgen.kinds import load_run  # noqa: E402
from nerfgen.mesh import MeshCaster  # noqa: E402
from nerfgen.mesh.texture import texture_image  # noqa: E402


def figure(run: str, name: str, value, **extra) -> None:
    print(json.dumps({"figure": name, "run": run, "value": value, **extra}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="render size of the silhouette views")
    parser.add_argument("--images", help="write the texture and field | glb renders here")
    args = parser.parse_args()
    for name in args.runs:
        out = Path(tempfile.mkdtemp())
        run = load_run(name, "cpu")
        report = run.export_mesh([out / "mesh.ply", out / "mesh.glb"], resolution=args.resolution,
                                 texture_size=args.texture_size)
        figure(name, "export_seconds", report["seconds"], resolution=args.resolution, faces=report["faces"],
               texture=report.get("texture"))
        figure(name, "glb_bytes", (out / "mesh.glb").stat().st_size)
        ply = trimesh.load(out / "mesh.ply", process=False)
        (glb,) = trimesh.load(out / "mesh.glb", process=False).geometry.values()
        figure(name, "watertight", bool(ply.is_watertight), glb_welded=bool(trimesh.Trimesh(glb.vertices, glb.faces).is_watertight))
        cameras = run.orbit_cameras(args.views, args.size, args.size)
        caster, ious, strips = MeshCaster(glb), [], []
        for i in range(len(cameras)):
            field = run.render(cameras, i, torch.ones(3))
            mesh = caster.render(cameras, i, torch.ones(3))
            seen = field.opacity > 0.5
            ious.append(float((mesh.hit & seen).sum() / (mesh.hit | seen).sum().clamp(min=1)))
            strips.append(torch.cat([field.rgb, mesh.rgb], 0))
        figure(name, "silhouette_iou_min", round(min(ious), 4), mean=round(float(np.mean(ious)), 4), views=args.views,
               size=args.size, threshold=report["threshold"])
        if args.images:
            folder = Path(args.images)
            folder.mkdir(parents=True, exist_ok=True)
            stem = Path(name).name
            iio.imwrite(folder / f"{stem}_texture.png", texture_image(glb))
            strip = (torch.cat(strips, 1).clamp(0, 1) * 255 + 0.5).byte().numpy()
            iio.imwrite(folder / f"{stem}_field_vs_glb.png", strip)


if __name__ == "__main__":
    main()
