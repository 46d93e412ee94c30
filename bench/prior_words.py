"""Does the built-in prior's UNet know its words? A diffusion classifier (Li et al. 2023) on renders
of held-out and trained shape x colour pairs: each render is noised at a few timesteps, and the
caption under which the UNet predicts that noise best names the shape (among all shapes, true
colour) and the colour (among the held-out colours, true shape). No guidance model: this measures
the UNet alone, in a few seconds.

    python bench/prior_words.py [--model runs/prior] [--timesteps 300 500 700] [--noises 4]

Prints one JSON line per group ("held_out", "trained") and timestep, and one per group overall.
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
from nerfgen.prior.builtin import FOV_DEG, VIEW_DISTANCE, caption_errors, load_builtin_prior  # noqa: E402
from nerfgen.prior.text import embed_texts  # noqa: E402

COLOURS = tuple(c for _, c in HELD_OUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="weights (default: the shipped ones)")
    parser.add_argument("--timesteps", type=int, nargs="+", default=[300, 500, 700])
    parser.add_argument("--noises", type=int, default=4, help="noise draws per image and timestep")
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_builtin_prior(args.model, "cpu")
    views = orbit_views(args.views, 20.0, VIEW_DISTANCE, start=15.0)
    cameras = torch.stack([views.elevation, views.azimuth, views.distance], -1).numpy()
    summary = {}
    for group, pairs in (("held_out", HELD_OUT), ("trained", TRAINED_PAIRS)):
        hits = {t: {"shape": [], "colour": []} for t in args.timesteps}
        for shape, colour in pairs:
            rendered = render_views(build_object(ObjectSpec((Part(shape, colour),))), cameras, prior.resolution, FOV_DEG, 3)
            images = torch.from_numpy(rendered).permute(0, 3, 1, 2).float() / 255
            shape_texts = embed_texts([pair_caption(s, colour) for s in SHAPES])
            colour_texts = embed_texts([pair_caption(shape, c) for c in COLOURS])
            g = torch.Generator().manual_seed(0)
            for t in args.timesteps:
                hits[t]["shape"] += (caption_errors(prior, images, views, shape_texts, t, args.noises, g).argmin(0)
                                     == list(SHAPES).index(shape)).tolist()
                hits[t]["colour"] += (caption_errors(prior, images, views, colour_texts, t, args.noises, g).argmin(0)
                                      == COLOURS.index(colour)).tolist()
        for t in args.timesteps:
            print(json.dumps({"group": group, "t": t, "shape_accuracy": round(float(np.mean(hits[t]["shape"])), 3),
                              "colour_accuracy": round(float(np.mean(hits[t]["colour"])), 3)}), flush=True)
        summary[group] = {k: round(float(np.mean([h for t in args.timesteps for h in hits[t][k]])), 3)
                          for k in ("shape", "colour")}
        print(json.dumps({"group": group, "shape_accuracy": summary[group]["shape"],
                          "colour_accuracy": summary[group]["colour"], "chance_shape": round(1 / len(SHAPES), 3),
                          "chance_colour": round(1 / len(COLOURS), 3)}), flush=True)


if __name__ == "__main__":
    main()
