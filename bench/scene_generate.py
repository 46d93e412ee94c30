"""Text to compositional scenes with the built-in prior, measured: 8 two-object prompts whose object
pairs never occur together in the prior's training compositions, each generated within a time
budget, then checked from 8 azimuths:

* hue: each object's visible pixels in the scene (its mask from the one-pass render) have its
  phrase's colour (``nerfgen.generate.checks.hue_fraction`` >= 0.5);
* silhouette: each object rendered alone matches its named shape better than any other library
  shape (best IoU over sizes, per view);
* relation: "on": the top object's centroid is above the other's and their masks touch, in every
  view; "left of" / "right of": the centroids are in the named order in the front view (and, as an
  extra figure, in every view that sees the two side by side, mirrored from behind);
* moving an object in the layout changes only the pixels it covered or covers;
* a control: each object checked against the other object's colour and shape words (it must fail).

One JSON line per prompt, then one with the fractions of (prompt, view) pairs that pass each check.
Renders for looking at are written beside each run (``check.png``).

    python bench/scene_generate.py --output /work/bench_runs/scene --seconds 840 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

# bench/ itself off the import path: its kernels.py would shadow the `kernels` package transformers
# looks for when the built-in prior's text encoder loads
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

PROMPTS = [
    "a red cube on a cyan cylinder",
    "a yellow cone on a purple cube",
    "an orange sphere on a cyan cylinder",
    "a green pyramid on a red cube",
    "a blue sphere to the left of a yellow cube",
    "a purple cone to the left of an orange cylinder",
    "a cyan capsule to the right of an orange pyramid",
    "a green torus to the left of a blue cube",
]
AZIMUTHS = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
ELEVATION = 15.0
RESOLUTION = 64


def trained_pairs() -> set[frozenset]:
    """The (shape, colour) pairs of every two-object composition the shipped prior trained on,
    replaying the training set's random stream (``nerfgen.scenes.object_views``) without rendering."""
    from nerfgen.scenes.object_views import _random_light, random_cameras
    from nerfgen.scenes.objects import sample_object

    from nerfgen.config import config_path, load_config
    from nerfgen.prior.train import PriorTrainConfig

    cfg = load_config(PriorTrainConfig, config_path("prior")).views
    rng = np.random.default_rng([cfg.seed, 0x5EE5])
    pairs = set()
    for _ in range(cfg.n_objects):
        spec = sample_object(rng, cfg.composition_rate)
        random_cameras(cfg.views_per_object, rng, cfg.elevation_range, cfg.distance_range)
        _random_light(rng)
        rng.uniform(*cfg.ambient_range)
        if len(spec.parts) == 2:
            pairs.add(frozenset((p.shape, p.colour) for p in spec.parts))
    return pairs


def generate(prompt: str, output: Path, seconds: float, threads: int, seed: int) -> dict:
    torch.set_num_threads(threads)
    import nerfgen

    start = time.perf_counter()
    if not (output / "orbit.mp4").is_file():  # written last: a finished run is only checked again
        resume = (output / "state.json").is_file()
        nerfgen.generate_scene(None if resume else prompt, output, resume=resume, max_seconds=seconds, seed=seed,
                               device="cpu", threads=threads)
    return {"wall_s": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def check_views():
    """The views the checks look from (:data:`AZIMUTHS` at :data:`ELEVATION`, the prior's camera
    distance and field of view) and their cameras at :data:`RESOLUTION`."""
    from nerfgen.cameras import Views, view_cameras
    from nerfgen.prior import builtin

    n = len(AZIMUTHS)
    views = Views(torch.full((n,), ELEVATION), torch.tensor(AZIMUTHS), torch.full((n,), builtin.VIEW_DISTANCE))
    return views, view_cameras(views, torch.full((n,), builtin.FOV_DEG), RESOLUTION)


def silhouette_ious(silhouettes: torch.Tensor, views) -> dict[str, torch.Tensor]:
    """``{shape: [V] IoU}`` of boolean ``silhouettes [V, R, R]`` with each library shape (best size)."""
    from nerfgen.generate.checks import shape_ious
    from nerfgen.prior import builtin
    from nerfgen.scenes.objects import SHAPES

    return {s: shape_ious(silhouettes, views, s, builtin.FOV_DEG) for s in SHAPES}


def closest(ious: dict[str, torch.Tensor], named: str) -> list[bool]:
    """Per view, whether ``named`` matches better than every other shape of ``ious``."""
    return [all(ious[named][v] > ious[s][v] for s in ious if s != named) for v in range(len(ious[named]))]


def check(prompt: str, output: Path) -> dict:
    """The figures of one generated scene (see the module's docstring)."""
    import imageio.v3 as iio

    import nerfgen
    from nerfgen.generate.checks import centroid, hue_fraction, touching
    from nerfgen.generate.scene_prompt import object_words

    run = nerfgen.load_run(output, device="cpu")
    layout = run.layout
    n = len(AZIMUTHS)
    views, cameras = check_views()
    scene = [run.render_objects(cameras, i) for i in range(n)]
    masks = torch.stack([s.masks for s in scene]) > 0.5  # [V, H, W, K]
    words = [object_words(o.prompt) for o in layout.objects]
    swapped = words[::-1]  # the control: each object checked against the other's words
    hue, silhouette, alone, control_hue, control_silhouette = [], [], [], [], []
    for k, (colour, shape, _) in enumerate(words):
        seen = [scene[v].colours[..., k, :][masks[v, ..., k]] / scene[v].masks[..., k][masks[v, ..., k]][:, None]
                for v in range(n)]
        hue.append([hue_fraction(rgb.clamp(0, 1), colour) >= 0.5 for rgb in seen])
        control_hue.append([hue_fraction(rgb.clamp(0, 1), swapped[k][0]) >= 0.5 for rgb in seen])
        obj = run.object_run(k)
        images = [obj.render(cameras, i) for i in range(n)]
        alone.append(images)
        ious = silhouette_ious(torch.stack([im.opacity > 0.5 for im in images]), views)
        silhouette.append(closest(ious, shape))
        control_silhouette.append(closest(ious, swapped[k][1]))
    relation, relation_all = [], []
    for r in layout.relations:
        a, b = r.subject, r.object
        if r.kind in ("on", "under"):
            top, base = (a, b) if r.kind == "on" else (b, a)
            ok = []
            for v in range(n):
                ct, cb = centroid(masks[v, ..., top]), centroid(masks[v, ..., base])
                ok.append(ct is not None and cb is not None and bool(ct[0] < cb[0])
                          and touching(masks[v, ..., top], masks[v, ..., base]))
            relation.append(ok)
            relation_all.append(ok)
        elif r.kind in ("left of", "right of"):
            sign = 1.0 if r.kind == "left of" else -1.0  # b is to +y of a for "a left of b"
            ok_front, ok_all = [], []
            for v, az in enumerate(AZIMUTHS):
                right_y = math.cos(math.radians(az))  # the camera's right vector's y component
                if abs(right_y) < 0.5:
                    continue
                ca, cb = centroid(masks[v, ..., a]), centroid(masks[v, ..., b])
                ok = ca is not None and cb is not None and bool((cb[1] - ca[1]) * sign * right_y > 0)
                ok_all.append(ok)
                if az == 0.0:
                    ok_front.append(ok)
            relation.append(ok_front)
            relation_all.append(ok_all)
    moved = move_check(run, cameras)
    sheet = [torch.cat([s.image.rgb for s in scene], 1)] + [torch.cat([im.rgb for im in imgs], 1) for imgs in alone]
    iio.imwrite(output / "check.png", (torch.cat(sheet, 0).clamp(0, 1) * 255 + 0.5).byte().numpy())
    return {
        "prompt": prompt,
        "objects": [o.prompt for o in layout.objects],
        "hue": [sum(h) / n for h in hue],
        "silhouette": [sum(s) / n for s in silhouette],
        "relation_front": [sum(x) / max(1, len(x)) for x in relation],
        "relation_views": [sum(x) / max(1, len(x)) for x in relation_all],
        "pass": {"hue": [all(h[v] for h in hue) for v in range(n)],
                 "silhouette": [all(s[v] for s in silhouette) for v in range(n)],
                 "relation": [x for rel in relation for x in rel],
                 "relation_views": [x for rel in relation_all for x in rel],
                 "control_hue": [all(h[v] for h in control_hue) for v in range(n)],
                 "control_silhouette": [all(s[v] for s in control_silhouette) for v in range(n)]},
        "move": moved,
    }


def move_check(run, cameras) -> dict:
    """Move object 0 by 0.3 along +y: the largest change of any pixel that object 0 neither covered
    nor covers (mask above 1e-4 in either render), and the share of the frame that changed."""
    before = run.render_objects(cameras, 0)
    layout = run.layout
    c = layout.objects[0].center
    run.layout = layout.edited(0, center=(c[0], c[1] + 0.3, c[2]))
    after = run.render_objects(cameras, 0)
    run.layout = layout
    own = (before.masks[..., 0] > 1e-4) | (after.masks[..., 0] > 1e-4)
    change = (after.image.rgb - before.image.rgb).abs().amax(-1)
    return {"max_change_elsewhere": round(float(change[~own].max()) if (~own).any() else 0.0, 6),
            "changed_pixels": round(float((change > 0.01).float().mean()), 4),
            "own_pixels": round(float(own.float().mean()), 4)}


def pass_fractions(results: list[dict],
                   keys=("hue", "silhouette", "relation", "relation_views", "control_hue", "control_silhouette")) -> dict:
    """For each check of ``keys``, the fraction of the (prompt, view) pairs of ``results`` (their
    ``pass`` lists) that pass it, and how many pairs there were."""
    summary = {}
    for key in keys:
        flat = [x for r in results for x in r["pass"].get(key, [])]
        summary[f"{key}_pass"] = round(sum(flat) / max(1, len(flat)), 3)
        summary[f"{key}_pairs"] = len(flat)
    return summary


def one(prompt: str, root: Path, seconds: float, threads: int, seed: int) -> dict:
    from nerfgen.batch import slug

    output = root / slug(prompt)
    timing = generate(prompt, output, seconds, threads, seed)
    figures = check(prompt, output)
    steps = json.loads((output / "state.json").read_text())["step"]
    return {**figures, **timing, "steps": steps}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, default=Path("runs/bench_scene"))
    p.add_argument("--seconds", type=float, default=840.0, help="generation budget per prompt")
    p.add_argument("--jobs", type=int, default=2, help="prompts generated at once (one thread each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pick", type=int, nargs="+", help="only these prompts (indices into PROMPTS)")
    args = p.parse_args()
    from nerfgen.generate.scene_prompt import object_words, parse_scene

    seen = trained_pairs()
    prompts = PROMPTS if args.pick is None else [PROMPTS[i] for i in args.pick]
    for prompt in prompts:
        plan = parse_scene(prompt)
        pair = frozenset((object_words(o)[1], object_words(o)[0]) for o in plan.objects)
        if pair in seen:
            raise SystemExit(f"{prompt!r}: its object pair is in the prior's training compositions")
    threads = max(1, torch.get_num_threads() // args.jobs)
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(one, prompts, [args.output] * len(prompts), [args.seconds] * len(prompts),
                               [threads] * len(prompts), [args.seed] * len(prompts)):
            print(json.dumps({k: v for k, v in result.items() if k != "pass"}), flush=True)
            results.append(result)
    summary = {"figure": "scene_checks", "prompts": len(results), "views": len(AZIMUTHS), **pass_fractions(results)}
    summary["move_max_change_elsewhere"] = max(r["move"]["max_change_elsewhere"] for r in results)
    summary["wall_s_max"] = max(r["wall_s"] for r in results)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
