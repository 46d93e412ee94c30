"""Rays per second of ``render_rays`` forward + backward: proposal sampler vs occupancy grid.

A small ngp field over [-1, 1]^3; rays from a sphere of radius 1.5 looking inwards. The
occupancy grid is fully occupied (the start of training, its slowest case) or restricted to a
ball of radius 0.5 (a trained object-sized scene); the proposal sampler runs with the contraction
and its default config or the one in configs/ngp_unbounded.yaml. One JSON line per figure::

    OMP_NUM_THREADS=2 python bench/proposal.py --rays 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from nerfgen.cameras import Rays
from nerfgen.config import config_path, load_config
from nerfgen.reconstruct.config import TrainConfig
from nerfgen.render import ModelSpec, RadianceModel

FIELD = {"n_levels": 16, "log2_table_size": 17, "max_resolution": 2048, "hidden": 64}
BOX = torch.tensor([-1.0, -1, -1, 1, 1, 1])


def rays(n: int, seed: int) -> Rays:
    g = torch.Generator().manual_seed(seed)
    o = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 1.5
    d = torch.nn.functional.normalize(-o / 1.5 + 0.5 * torch.randn(n, 3, generator=g), dim=-1)
    return Rays(o, d)


def measure(name: str, model: RadianceModel, n_rays: int, repeats: int) -> dict:
    bg = torch.zeros(3)
    times, samples = [], 0
    for i in range(repeats + 1):  # the first call warms up
        batch = rays(n_rays, i)
        start = time.perf_counter()
        out = model.render_rays(batch, bg, stratified=True)
        loss = out.rgb.square().mean() + sum(model.sampler.losses(out).values())
        loss.backward()
        if i:
            times.append(time.perf_counter() - start)
            samples += out.n_samples
        model.zero_grad(set_to_none=True)
    best = min(times)
    return {"bench": "proposal", "sampler": name, "rays": n_rays, "rays_per_s": round(n_rays / best),
            "field_samples_per_ray": round(samples / (repeats * n_rays), 1), "ms_per_step": round(best * 1e3, 1),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rays", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    grid = RadianceModel(ModelSpec(field_options=FIELD), BOX)
    print(json.dumps(measure("occupancy (all occupied)", grid, args.rays, args.repeats)), flush=True)
    grid.sampler.binaries &= (grid.sampler.cell_positions(0, torch.arange(64**3)).norm(dim=-1) < 0.5).view(64, 64, 64)
    print(json.dumps(measure("occupancy (ball r=0.5)", grid, args.rays, args.repeats)), flush=True)
    spec = ModelSpec(field_options=FIELD, sampler="proposal", contraction="linf")
    print(json.dumps(measure("proposal (default (128, 64) -> 32)", RadianceModel(spec, BOX), args.rays,
                             args.repeats)), flush=True)
    shipped = load_config(TrainConfig, config_path("ngp_unbounded"))
    spec = ModelSpec(**{f.name: getattr(shipped, f.name) for f in dataclasses.fields(ModelSpec)})
    levels = f"{tuple(spec.proposal.n_proposal_samples)} -> {spec.proposal.n_samples}"
    print(json.dumps(measure(f"proposal (ngp_unbounded.yaml {levels})", RadianceModel(spec, BOX), args.rays,
                             args.repeats)), flush=True)


if __name__ == "__main__":
    main()
