"""Render speed of the GAN image sets (:mod:`nerfgen.scenes.gan_sets`).

    python bench/gan_data.py [--images 500] [--size 64] [--workers 1]

Renders ``--images`` images of each set into a temporary folder (open3d loads before the clock
starts) and prints one JSON line per set: {"figure": "gan_data_render", "set", "images", "size",
"workers", "seconds", "images_per_s"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfgen.scenes.gan_sets import render_clevr, render_objects  # noqa: E402

RENDERERS = {"clevr": render_clevr, "objects": render_objects}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        render_clevr(Path(tmp) / "warm", 1, args.size)  # loads open3d and builds the primitives
        for name, render in RENDERERS.items():
            start = time.perf_counter()
            render(Path(tmp) / name, args.images, args.size, workers=args.workers)
            seconds = time.perf_counter() - start
            print(json.dumps({"figure": "gan_data_render", "set": name, "images": args.images, "size": args.size,
                              "workers": args.workers, "seconds": round(seconds, 2),
                              "images_per_s": round(args.images / seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
