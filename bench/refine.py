"""The refinement stage (nerfgen.generate.refine) on single objects with the built-in prior: how
solid and crisp the coarse field is, and the refined one, on 128x128 renders from 8 azimuths.

For each prompt: a coarse run (``generate_builtin``, its own budget), its figures; then the same
run resumed with ``refine: {enabled: true}`` (the refinement starts from the coarse field), its
figures. Figures (one JSON line per stage and prompt): ``semi_transparent`` (share of covered
pixels with opacity in (0.05, 0.95), :func:`nerfgen.generate.crisp.semi_transparent_share`),
``edge_px`` (:func:`nerfgen.generate.crisp.edge_width`), ``hue`` (share of views whose
foreground is mostly the phrase's colour, :func:`nerfgen.generate.checks.hue_fraction` >= 0.5),
``silhouette`` (share of views whose outline matches the phrase's shape better than any other
library shape), ``seconds`` (the stage's wall time; the coarse run writes no orbit or mesh, the
refined one both, so the sum is what ``nerfgen generate --refine`` takes). ``renders.png`` in each
run directory shows the 8 views (colour above opacity) of each stage.

    flock /tmp/nerfgen-cpu.lock python bench/refine.py --out /tmp/refine-bench "a red cube"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path[0] = str(Path(__file__).resolve().parents[1])  # not bench/: its kernels.py would shadow the `kernels` package transformers probes for

AZIMUTHS = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
ELEVATION = 15.0
RESOLUTION = 128


def figures(run_dir: Path, prompt: str) -> tuple[dict, np.ndarray]:
    """The crisp and look figures of the object run in ``run_dir`` and its renders (``[2H, 8W, 3]`` uint8)."""
    import nerfgen
    from nerfgen.cameras import Views, view_cameras
    from nerfgen.generate.checks import hue_fraction, shape_ious
    from nerfgen.generate.crisp import edge_width, semi_transparent_share
    from nerfgen.generate.scene_prompt import object_words
    from nerfgen.prior import builtin
    from nerfgen.scenes.objects import SHAPES

    run = nerfgen.load_run(run_dir, device="cpu")
    n = len(AZIMUTHS)
    views = Views(torch.full((n,), ELEVATION), torch.tensor(AZIMUTHS), torch.full((n,), builtin.VIEW_DISTANCE))
    cameras = view_cameras(views, torch.full((n,), builtin.FOV_DEG), RESOLUTION)
    images = [run.render(cameras, i) for i in range(n)]
    alpha = torch.stack([im.opacity for im in images])
    rgb = torch.stack([im.rgb for im in images])
    masks = alpha > 0.5
    colour, shape, _ = object_words(prompt)
    hue = [hue_fraction(rgb[v][masks[v]].clamp(0, 1), colour) >= 0.5 for v in range(n)]
    ious = {s: shape_ious(masks, views, s, builtin.FOV_DEG) for s in SHAPES}
    closest = [all(ious[shape][v] >= ious[s][v] for s in SHAPES if s != shape) for v in range(n)]
    out = {"semi_transparent": round(semi_transparent_share(alpha), 4), "edge_px": round(edge_width(alpha), 3),
           "hue": sum(hue) / n, "silhouette": sum(closest) / n, "shape_iou": round(float(ious[shape].mean()), 3)}
    sheet = torch.cat([torch.cat(list(rgb.clamp(0, 1)), 1), torch.cat(list(alpha[..., None].expand(-1, -1, -1, 3)), 1)])
    return out, (sheet * 255 + 0.5).byte().numpy()


def one(prompt: str, root: Path, refine_steps: int, threads: int, seed: int) -> list[dict]:
    import imageio.v3 as iio

    from nerfgen.generate.api import generation
    from nerfgen.prior import build_prior

    output = root / prompt.replace(" ", "-")
    prior = build_prior("builtin", None, "cpu")
    start = time.perf_counter()
    generation(prompt, output, "generate_builtin", loaded_prior=prior, threads=threads, seed=seed, orbit_frames=0,
               mesh_resolution=0).run()  # the products are written once, by the refined run
    coarse_seconds = time.perf_counter() - start
    coarse, coarse_png = figures(output, prompt)
    start = time.perf_counter()
    generation(None, output, resume=True, loaded_prior=prior, threads=threads, orbit_frames=60, mesh_resolution=128,
               refine={"enabled": True, **({"steps": refine_steps} if refine_steps else {})}).run()
    refine_seconds = time.perf_counter() - start
    refined, refined_png = figures(output, prompt)
    iio.imwrite(output / "renders.png", np.concatenate([coarse_png, refined_png]))
    return [{"prompt": prompt, "stage": "coarse", **coarse, "seconds": round(coarse_seconds, 1)},
            {"prompt": prompt, "stage": "refined", **refined, "seconds": round(refine_seconds, 1),
             "total_seconds": round(coarse_seconds + refine_seconds, 1)}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--refine-steps", type=int, default=0, help="0: the config's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for prompt in args.prompts:
        for line in one(prompt, Path(args.out), args.refine_steps, args.threads, args.seed):
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
