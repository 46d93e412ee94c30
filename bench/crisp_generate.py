"""Fuzz figures of generated objects and scenes (issue 28), with the built-in prior on the CPU: is
what a user gets solid, with crisp edges, and still the right colour, shape and composition?

Per run, from the run's own orbit camera (its distance and field of view) at 8 azimuths, 15
degrees up, 128x128 (``nerfgen.generate.crisp``):

* ``semi_transparent``: share of the covered pixels (opacity > 0.05) below 0.95 opacity;
* ``edge_width_px``: median pixels from opacity 0.9 to 0.1 across the outline;
* ``normal_consistency``: the mesh nerfgen exports (threshold calibrated against the orbit, as
  ``nerfgen export``) against the density's outward normals (per object for scenes);

and the existing checks: hue and silhouette of each object (scenes: ``bench/scene_generate.py``'s
checks, relations included; single objects: the same hue / closest-shape checks from the same 8
azimuths), wall time and peak RSS of the generation. A ``crisp.png`` sheet is written beside each
run: colour on white, opacity, and the semi-transparent pixels in magenta.

One JSON line per run, then one aggregating them. It generates the prompts (``--set objects``:
the 8 single objects below, 6 of them the prior's held-out shape/colour pairs; ``scenes``: the 8
scene-bench prompts) or measures runs already made (``--runs DIR...``, e.g. refined runs).

With ``--refine`` each prompt is generated coarse, measured (``"stage": "coarse"``, sheet
``crisp_coarse.png``), then refined in the same run directory (``--resume --refine``: single
objects by :mod:`nerfgen.generate.refine`, scenes per object by :mod:`nerfgen.generate.scene_refine`)
and measured again (``"stage": "refined"``); the refined line's ``wall_s`` is both stages' wall
time together (each stage writes its own products, so it bounds ``nerfgen generate --refine`` from
above), ``wall_s_coarse`` and ``wall_s_refine`` apart.

    python bench/crisp_generate.py --set objects --pick 0 3 --output /tmp/crisp --jobs 2
    python bench/crisp_generate.py --set scenes --pick 0 --output /tmp/crisp --jobs 1
    python bench/crisp_generate.py --set objects --pick 0 3 --steps 500 --override lambda_orientation=10 camera.resolution=64 --output /tmp/o
    python bench/crisp_generate.py --runs /tmp/crisp/a-red-cube /tmp/crisp/a-red-cube-on-a-cyan-cylinder
    python bench/crisp_generate.py --set scenes --pick 0 --refine --output /tmp/crisp-refined --jobs 1 --threads 1
    python bench/crisp_generate.py --prompts "a purple sphere on an orange cube" --refine --output /tmp/r --jobs 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import yaml

# bench/ itself off the import path: its kernels.py would shadow the `kernels` package transformers
# looks for when the built-in prior's text encoder loads
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

REPO = Path(__file__).resolve().parents[1]
OBJECT_PROMPTS = [
    "a red cube",            # trained pair
    "a green cube",          # held out: nerfgen.scenes.objects.HELD_OUT
    "a yellow sphere",       # held out
    "a blue cone",           # held out
    "a purple cylinder",     # held out
    "an orange capsule",     # held out
    "a pink pyramid",        # held out
    "a cyan torus",          # trained pair
]
VIEWS = 8
RESOLUTION = 128
MESH_RESOLUTION = 128
COVERED = 0.05  # nerfgen.generate.crisp.COVERED, for the sheet


def scene_bench():
    """``bench/scene_generate.py`` (its prompts, views and checks), loaded by path."""
    if "bench_scene_generate" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_scene_generate", REPO / "bench" / "scene_generate.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_scene_generate"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_scene_generate"]


def generate(prompt: str, output: Path, scene: bool, threads: int, seed: int, overrides: dict,
             timing_name: str = "bench_time.json") -> dict:
    """Generate ``prompt`` into ``output`` (resumed when interrupted or when ``overrides`` refine a
    finished run, skipped when finished); the wall time and peak RSS of this process, also kept in
    ``output/timing_name``."""
    torch.set_num_threads(threads)
    from nerfgen.generate.api import generate as generate_object, generate_scene

    timing_file = output / timing_name
    if timing_file.is_file():
        return json.loads(timing_file.read_text())
    start = time.perf_counter()
    resume = (output / "state.json").is_file()
    make = generate_scene if scene else generate_object
    seeded = {} if resume else {"seed": seed}
    make(None if resume else prompt, output, resume=resume, device="cpu", threads=threads, **seeded, **overrides)
    timing = {"wall_s": round(time.perf_counter() - start, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    timing_file.write_text(json.dumps(timing))
    return timing


def orbit_renders(run) -> tuple[torch.Tensor, torch.Tensor]:
    """``rgb [V, R, R, 3]`` over black and ``opacity [V, R, R]`` of ``run`` from its own orbit."""
    cameras = run.orbit_cameras(VIEWS, RESOLUTION, RESOLUTION)
    images = [run.render(cameras, i, torch.zeros(3)) for i in range(VIEWS)]
    return torch.stack([im.rgb for im in images]), torch.stack([im.opacity for im in images])


def surface_consistency(run) -> list[float]:
    """Normal consistency of each surface ``run`` exports (one per shown object of a scene)."""
    from nerfgen.generate.crisp import normal_consistency
    from nerfgen.mesh import MeshOptions
    from nerfgen.mesh.export import CALIBRATION_VIEWS
    from nerfgen.mesh.extract import extract_mesh

    if run.info.kind == "scene":
        runs = [run.object_run(k) for k, o in enumerate(run.layout.objects) if not o.hidden]
    else:
        runs = [run]
    out = []
    for r in runs:
        made = extract_mesh(r.model, torch.tensor(r.info.aabb), MeshOptions(resolution=MESH_RESOLUTION),
                            r.orbit_cameras(CALIBRATION_VIEWS, 96))
        density = r.model.field.density
        out.append(normal_consistency(density, made.mesh.vertices, made.mesh.faces) if len(made.mesh.faces) else 0.0)
    return out


def object_checks(run) -> dict:
    """Hue and silhouette of a single object from the scene bench's views: per view, its pixels
    have its colour (hue fraction >= 0.5) and its silhouette is closest to its named shape."""
    from nerfgen.generate.checks import hue_fraction
    from nerfgen.generate.scene_prompt import object_words

    bench = scene_bench()
    colour, shape, _ = object_words(run.info.prompt)
    views, cameras = bench.check_views()
    images = [run.render(cameras, i, torch.zeros(3)) for i in range(len(cameras))]
    masks = [im.opacity > 0.5 for im in images]
    hue = [hue_fraction((im.rgb[m] / im.opacity[m][:, None]).clamp(0, 1), colour) >= 0.5
           for im, m in zip(images, masks)]
    ious = bench.silhouette_ious(torch.stack(masks), views)
    return {"hue": [sum(hue) / len(hue)], "silhouette": [sum(bench.closest(ious, shape)) / len(hue)],
            "pass": {"hue": hue, "silhouette": bench.closest(ious, shape)}}


def write_sheet(path: Path, rgb: torch.Tensor, opacity: torch.Tensor) -> None:
    """Three rows of the ``V`` views: colour on white, opacity, semi-transparent pixels in magenta."""
    import imageio.v3 as iio

    white = rgb + (1 - opacity[..., None])
    grey = opacity[..., None].expand(-1, -1, -1, 3)
    semi = (opacity > COVERED) & (opacity < 0.95)
    marked = torch.where(semi[..., None], torch.tensor([1.0, 0.0, 1.0]), grey)
    rows = [torch.cat(list(x), 1) for x in (white, grey, marked)]
    iio.imwrite(path, (torch.cat(rows, 0).clamp(0, 1) * 255 + 0.5).byte().numpy())


def measure(output: Path, sheet: str = "crisp.png", timing_file: str = "bench_time.json") -> dict:
    """The fuzz figures and checks of the finished run in ``output`` (see the module docstring)."""
    import nerfgen
    from nerfgen.generate.crisp import edge_width, semi_transparent_share

    run = nerfgen.load_run(output, device="cpu")
    scene = run.info.kind == "scene"
    rgb, opacity = orbit_renders(run)
    write_sheet(output / sheet, rgb, opacity)
    consistency = surface_consistency(run)
    checks = scene_bench().check(run.info.prompt, output) if scene else object_checks(run)
    state = json.loads((output / "state.json").read_text())
    timing_path = output / timing_file
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {"wall_s": None, "peak_rss_mb": None}
    return {
        "prompt": run.info.prompt, "run": str(output), "kind": run.info.kind, "steps": state["step"],
        "semi_transparent": round(semi_transparent_share(opacity), 4),
        "semi_transparent_views": [round(semi_transparent_share(a), 3) for a in opacity],
        "edge_width_px": round(edge_width(opacity), 2),
        "normal_consistency": round(sum(consistency) / len(consistency), 4),
        "normal_consistency_objects": [round(c, 4) for c in consistency],
        "coverage": round(float((opacity > COVERED).float().mean()), 4),
        **{k: v for k, v in checks.items() if k in ("hue", "silhouette", "relation_front", "relation_views", "move")},
        "pass": checks["pass"], "train_s": round(state["seconds"], 1), **timing,
    }


def one(prompt: str, root: Path, threads: int, seed: int, overrides: dict, refine: bool = False) -> list[dict]:
    """Generate (or finish) ``prompt`` under ``root`` and measure it; with ``refine``, coarse, then
    refined (see the module docstring)."""
    from nerfgen.batch import slug
    from nerfgen.generate.scene_prompt import parse_scene

    output = root / slug(prompt)
    scene = len(parse_scene(prompt).objects) > 1
    coarse = generate(prompt, output, scene, threads, seed, overrides)
    if not refine:
        return [measure(output)]
    if (output / "bench_time_refine.json").is_file():
        first = json.loads((output / "bench_coarse.json").read_text())
    else:
        first = measure(output, "crisp_coarse.png")
        (output / "bench_coarse.json").write_text(json.dumps(first))
    refined = generate(prompt, output, scene, threads, seed, {"refine": {"enabled": True}}, "bench_time_refine.json")
    second = measure(output)
    second.update(wall_s=round(coarse["wall_s"] + refined["wall_s"], 1), wall_s_coarse=coarse["wall_s"],
                  wall_s_refine=refined["wall_s"], peak_rss_mb=max(coarse["peak_rss_mb"], refined["peak_rss_mb"]))
    return [{**first, "stage": "coarse"}, {**second, "stage": "refined"}]


def summary(results: list[dict]) -> dict:
    """The aggregate line: mean and worst fuzz figures, pass fractions of the checks, time and memory."""
    out = {"figure": "crisp_generate", "runs": len(results), "views": VIEWS, "resolution": RESOLUTION}
    for key, worst in (("semi_transparent", max), ("edge_width_px", max), ("normal_consistency", min)):
        values = [r[key] for r in results]
        out[f"{key}_mean"] = round(sum(values) / len(values), 4)
        out[f"{key}_worst"] = worst(values)
    out["semi_transparent_le_0.15"] = sum(r["semi_transparent"] <= 0.15 for r in results)
    out["edge_width_le_2px"] = sum(r["edge_width_px"] <= 2.0 for r in results)
    out.update(scene_bench().pass_fractions(results, ("hue", "silhouette", "relation", "relation_views")))
    walls = [r["wall_s"] for r in results if r["wall_s"] is not None]
    rss = [r["peak_rss_mb"] for r in results if r["peak_rss_mb"] is not None]
    out["wall_s_max"] = max(walls) if walls else None
    out["peak_rss_mb_max"] = max(rss) if rss else None
    return out


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` pairs (values read as YAML; ``camera.resolution=64`` sets a section's key) into
    config overrides."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--override {item!r}: expected key=value")
        *sections, name = key.split(".")
        target = out
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = yaml.safe_load(value)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, nargs="+", help="measure these finished runs; generate nothing")
    p.add_argument("--set", choices=("objects", "scenes", "all"), default="all", help="prompts to generate")
    p.add_argument("--pick", type=int, nargs="+", help="only these prompts (indices into the set)")
    p.add_argument("--prompts", nargs="+", help="generate these prompts instead of a set")
    p.add_argument("--output", type=Path, default=Path("runs/bench_crisp"))
    p.add_argument("--jobs", type=int, default=2, help="prompts generated at once")
    p.add_argument("--threads", type=int, help="threads per prompt (default: the cores shared out among the jobs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="max_steps (default: the config's)")
    p.add_argument("--seconds", type=float, help="max_seconds (default: the config's)")
    p.add_argument("--override", nargs="+", default=[], help="config keys, key=value (YAML values)")
    p.add_argument("--refine", action="store_true", help="measure each run coarse, then refined (--resume --refine)")
    args = p.parse_args()
    results = []
    if args.runs:
        for run_dir in args.runs:
            results.append(measure(run_dir))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "pass"}), flush=True)
    else:
        prompts = {"objects": OBJECT_PROMPTS, "scenes": scene_bench().PROMPTS,
                   "all": OBJECT_PROMPTS + scene_bench().PROMPTS}[args.set]
        prompts = prompts if args.pick is None else [prompts[i] for i in args.pick]
        prompts = args.prompts or prompts
        overrides = parse_overrides(args.override)
        if args.steps is not None:
            overrides["max_steps"] = args.steps
        if args.seconds is not None:
            overrides["max_seconds"] = args.seconds
        threads = args.threads or max(1, torch.get_num_threads() // args.jobs)
        n = len(prompts)
        with ProcessPoolExecutor(args.jobs) as pool:
            for lines in pool.map(one, prompts, [args.output] * n, [threads] * n, [args.seed] * n, [overrides] * n,
                                  [args.refine] * n):
                for result in lines:
                    print(json.dumps({k: v for k, v in result.items() if k != "pass"}), flush=True)
                results.append(lines[-1])
    print(json.dumps(summary(results)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
