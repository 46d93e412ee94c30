"""MVSNeRF's published weights in nerfgen's implementation, on horns (forward-facing, never in
MVSNeRF's DTU training): each held-out view (every 8th photo, NeRF's protocol) rendered from the
3 training photos nearest it (by camera centre), no per-scene training.

One JSON line per view (PSNR/SSIM over the whole image and over the centre 80%, the crop
MVSNeRF's evaluation uses; seconds to encode and to render) and one summary line (means, peak
memory). ``--norm running`` uses the stored batch-norm statistics instead of the views' own.

    flock /tmp/nerfgen-cpu.lock python bench/mvsnerf_horns.py --data ../shared/data/llff_horns \\
        --checkpoint ../shared/data/mvsnerf/mvsnerf-v0.tar
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import torch

import nerfgen
from nerfgen.data import DatasetWarning
from nerfgen.engine.metrics import psnr, ssim
from nerfgen.generalize.mvsnerf import MVSNeRF, MVSNeRFConfig, load_mvsnerf_checkpoint
from nerfgen.generalize.run import render_image


def crop(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[0] // 10, image.shape[1] // 10
    return image[h:-h, w:-w]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="llff_horns")
    p.add_argument("--checkpoint", required=True, help="mvsnerf-v0.tar")
    p.add_argument("--norm", choices=["batch", "running"], default="batch")
    p.add_argument("--downscale", type=float, default=1.0, help="render the targets smaller (default full size)")
    p.add_argument("--views", type=int, default=0, help="evaluate the first N held-out views (default all)")
    p.add_argument("--save", help="folder for render | truth PNGs")
    args = p.parse_args()
    warnings.simplefilter("ignore", DatasetWarning)
    model = MVSNeRF(MVSNeRFConfig(norm=args.norm))
    load_mvsnerf_checkpoint(model, args.checkpoint)
    model.eval()
    train = nerfgen.load_dataset(args.data, "train")
    test = nerfgen.load_dataset(args.data, "test", downscale=args.downscale)
    black = torch.zeros(3)
    rows = []
    for i in range(len(test) if args.views <= 0 else min(args.views, len(test))):
        centre = test.cameras.c2w[i, :, 3]
        nearest = (train.cameras.c2w[:, :, 3] - centre).norm(dim=-1).argsort()[:3].tolist()
        start = time.perf_counter()
        with torch.no_grad():
            features = model.encode(nerfgen.SourceViews.from_dataset(train, nearest, black))
        encoded = time.perf_counter()
        image = render_image(model, features, test.camera(i), 0, black).rgb.clamp(0, 1)
        done = time.perf_counter()
        truth = test.image(i).float()[..., :3] / 255
        row = {"view": i, "sources": nearest, "psnr": round(psnr(image, truth), 3),
               "ssim": round(ssim(image, truth), 4), "psnr_crop": round(psnr(crop(image), crop(truth)), 3),
               "ssim_crop": round(ssim(crop(image), crop(truth)), 4),
               "encode_s": round(encoded - start, 1), "render_s": round(done - encoded, 1),
               "size": [test.cameras.width, test.cameras.height]}
        rows.append(row)
        print(json.dumps({"figure": "mvsnerf_horns_view", "norm": args.norm, **row}), flush=True)
        if args.save:
            from nerfgen.gan.run import write_png

            write_png(Path(args.save) / f"{i:02d}.png", (torch.cat([image, truth], 1) * 255 + 0.5).byte().numpy())
    mean = {k: round(sum(r[k] for r in rows) / len(rows), 3 if "psnr" in k else 4)
            for k in ("psnr", "ssim", "psnr_crop", "ssim_crop")}
    print(json.dumps({"figure": "mvsnerf_horns", "norm": args.norm, "views": len(rows), **mean,
                      "encode_s": round(sum(r["encode_s"] for r in rows) / len(rows), 1),
                      "render_s": round(sum(r["render_s"] for r in rows) / len(rows), 1),
                      "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                      "threads": torch.get_num_threads()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
