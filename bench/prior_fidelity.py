"""Prompt fidelity of the built-in prior on shape x colour pairs left out of its training captions
(scenes.objects.HELD_OUT) against pairs it was trained on: DDIM samples at several azimuths,
scored for colour (hue of the mean foreground nearest to the prompted hue) and shape (the
prompted shape's silhouette, rendered at the same camera, is the best match among all shapes).

    python bench/prior_fidelity.py [--model runs/prior] [--views 4] [--seeds 2] [--save /tmp/fidelity] [--clip-guidance S]

Prints one JSON line per prompt and one per group ("held_out", "trained").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.scenes.object_views import render_views  # noqa: E402
from nerfgen.scenes.objects import HELD_OUT, SHAPES, TRAINED_PAIRS, ObjectSpec, Part, build_object, pair_caption  # noqa: E402

from nerfgen.cameras import orbit_views  # noqa: E402
from nerfgen.prior.builtin import FOV_DEG, VIEW_DISTANCE, ddim_sample, load_builtin_prior  # noqa: E402
from nerfgen.prior.colour import foreground_hue, foreground_mask, nearest_hue_name  # noqa: E402


def silhouettes(cameras: np.ndarray, resolution: int) -> dict[str, torch.Tensor]:
    """Foreground masks ``[V, R, R]`` of every shape (scale 0.85) at ``cameras [V, 3]``."""
    out = {}
    for shape in SHAPES:
        images = render_views(build_object(ObjectSpec((Part(shape, "red", scale=0.85),))), cameras, resolution, FOV_DEG, 2)
        out[shape] = foreground_mask(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    return out


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[V]`` intersection over union of masks ``[V, R, R]``."""
    return (a & b).sum(dim=(1, 2)) / (a | b).sum(dim=(1, 2)).clamp(min=1)


def score(prior, shape: str, colour: str, args, masks: dict[str, torch.Tensor]) -> dict:
    text = pair_caption(shape, colour)
    prompt = prior.encode_prompt(text)
    views = orbit_views(args.views, args.elevation, VIEW_DISTANCE, start=15.0)
    samples = torch.cat([ddim_sample(prior, prompt, views, args.guidance, args.steps, torch.Generator().manual_seed(s))
                         for s in range(args.seeds)])  # [S V, 3, R, R]
    names = nearest_hue_name(foreground_hue(samples))
    fg = foreground_mask(samples)
    ious = {k: iou(fg, m.repeat(args.seeds, 1, 1)) for k, m in masks.items()}  # shape -> [S V]
    best = torch.stack([ious[k] for k in SHAPES]).argmax(0)
    shapes = [list(SHAPES)[i] for i in best.tolist()]
    if args.save:
        from PIL import Image

        grid = samples.reshape(args.seeds, args.views, 3, *samples.shape[-2:]).permute(0, 3, 1, 4, 2)
        grid = (grid.reshape(args.seeds * samples.shape[-2], -1, 3).numpy() * 255).round().astype(np.uint8)
        Path(args.save).mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(
            Path(args.save) / f"{colour}_{shape}.png")
    return {"prompt": text, "colour_accuracy": float(np.mean([n == colour for n in names])),
            "shape_accuracy": float(np.mean([s == shape for s in shapes])),
            "silhouette_iou": round(float(ious[shape].mean()), 3),
            "coverage": round(float(fg.float().mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="weights (default: the shipped ones)")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--elevation", type=float, default=15.0)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", default=None, help="folder for one PNG grid per prompt")
    parser.add_argument("--clip-guidance", type=float, default=None,
                        help="scale of the guidance model (default: the weights'; 0: the UNet alone)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_builtin_prior(args.model, "cpu")
    if args.clip_guidance is not None:
        prior.guide_scale = args.clip_guidance
    print(json.dumps({"clip_guidance": prior.guide_scale if prior.guide is not None else None}), flush=True)
    views = orbit_views(args.views, args.elevation, VIEW_DISTANCE, start=15.0)
    cameras = torch.stack([views.elevation, views.azimuth, views.distance], -1).numpy()
    masks = silhouettes(cameras, prior.resolution)
    for group, pairs in (("held_out", HELD_OUT), ("trained", TRAINED_PAIRS)):
        rows = [score(prior, shape, colour, args, masks) for shape, colour in pairs]
        for row in rows:
            print(json.dumps({"group": group, **row}), flush=True)
        print(json.dumps({"group": group, "prompts": len(rows),
                          **{k: round(float(np.mean([r[k] for r in rows])), 3)
                             for k in ("colour_accuracy", "shape_accuracy", "silhouette_iou")}}), flush=True)


if __name__ == "__main__":
    main()
