"""Seconds per `nerfgen generate` step with Stable Diffusion 1.5's architecture on this machine.

No weights can be downloaded, so the pipeline is Stable Diffusion 1.5's full architecture with
random weights (860 M UNet, 84 M VAE, 123 M CLIP text encoder) built from configs, saved as a
pipeline folder and loaded by ``load_stable_diffusion`` exactly like real weights. The cost of a
step does not depend on the weights' values: 64x64 renders, upsampled to 512 px, VAE-encoded to
64x64 latents, one UNet call on a batch of two (classifier-free guidance), backward through the
VAE encoder and the renderer. Prints one JSON line.

    python bench/generate_sd_cpu.py [--steps 3] [--threads 2] [--folder /tmp/sd15-random]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.api import generation  # noqa: E402
from nerfgen.prior import build_prior  # noqa: E402
from nerfgen.prior.random_pipelines import save_random_stable_diffusion  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--folder", help="where to save the random pipeline (default: a temp folder); reused if present")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder or Path(tmp) / "sd15-random")
        t0 = time.perf_counter()
        if not (folder / "model_index.json").is_file():
            save_random_stable_diffusion(folder, full_size=True)
        prior = build_prior("stable-diffusion", folder, "cpu")
        load_s = time.perf_counter() - t0
        engine = generation("a red ceramic teapot", Path(tmp) / "run", "generate_stable_diffusion", loaded_prior=prior,
                            eval_every=0, orbit_frames=0, device="cpu")
        config = engine.config
        engine.train_step()  # warm-up
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            engine.train_step()
            times.append(time.perf_counter() - t)
        print(json.dumps({
            "figure": "generate_sd15_cpu_step", "weights": "random (architecture of SD 1.5)",
            "render": config.camera.resolution, "image": prior.resolution,
            "latents": prior.resolution // 8, "threads": torch.get_num_threads(),
            "load_seconds": round(load_s, 1), "seconds_per_step": [round(s, 2) for s in times],
            "median_seconds_per_step": round(sorted(times)[len(times) // 2], 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }))


if __name__ == "__main__":
    main()
