"""FID / KID sanity figures: encoder throughput, and KID / FID of real/real against real/degraded pairs
on the synthetic shapes distribution (nerfgen.gan.encoders.synthetic_shapes), to show the floor of each
metric beside what blur, a colour shift, noise and shuffled patches cost.

    python bench/gan_metrics.py [--encoder offline | path/to/pt_inception-2015-12-05-6726825d.pth] [--n 500]

Prints one JSON line per figure: "throughput" (images/s at 64 px, batch 256, on torch's current
thread count), then "kid" and "fid" for the pair "real/real" and each "real/<degradation>".
Under a minute on one CPU core with the offline encoder and the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.gan.encoders import DEGRADATIONS, degrade, load_encoder, synthetic_shapes  # noqa: E402
from nerfgen.gan.metrics import features, fid, kid  # noqa: E402


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def throughput(encoder, size: int, batch: int, batches: int) -> None:
    """Images per second of ``encoder`` on random ``[batch, 3, size, size]`` inputs (after one warm-up)."""
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    features(encoder, images[:8])
    start = time.perf_counter()
    for _ in range(batches):
        features(encoder, images, batch=batch)
    wall = time.perf_counter() - start
    emit(figure="throughput", encoder=encoder.name, size=size, batch=batch, threads=torch.get_num_threads(),
         images_per_s=round(batch * batches / wall, 1), wall_s=round(wall, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="offline", help="'offline' or an FID Inception weight file")
    parser.add_argument("--n", type=int, default=500, help="images per set")
    parser.add_argument("--size", type=int, default=64, help="image size of the synthetic shapes")
    parser.add_argument("--batches", type=int, default=4, help="batches of 256 timed for the throughput")
    args = parser.parse_args()

    encoder = load_encoder(args.encoder)
    throughput(encoder, 64, 256, args.batches)

    images = synthetic_shapes(2 * args.n, args.size, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    real, other = features(encoder, images[:args.n]), features(encoder, images[args.n:])
    sets = {"real": other}
    for kind in DEGRADATIONS:
        sets[kind] = features(encoder, degrade(images[args.n:], kind, torch.Generator().manual_seed(1)))
    emit(figure="encode", encoder=encoder.name, images=args.n * (2 + len(DEGRADATIONS)),
         wall_s=round(time.perf_counter() - start, 2))

    subset = min(1000, args.n // 2)  # the standard 1000 when there are 2000 images; smaller subsets give a spread
    for name, fake in sets.items():
        start = time.perf_counter()
        mean, std = kid(real, fake, subsets=100, subset_size=subset)
        emit(figure="kid", encoder=encoder.name, pair=f"real/{name}", n=args.n, subset_size=subset, mean=mean, std=std,
             wall_s=round(time.perf_counter() - start, 2))
    for name, fake in sets.items():
        start = time.perf_counter()
        value = fid(real, fake)
        emit(figure="fid", encoder=encoder.name, pair=f"real/{name}", n=args.n, fid=value,
             wall_s=round(time.perf_counter() - start, 2))


if __name__ == "__main__":
    main()
