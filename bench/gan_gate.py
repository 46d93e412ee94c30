"""Where the quality gate's bounds come from: the gate's figures of held-out real images against
other held-out images, and of the same images broken as a bad generator would break them (colour
fringes, darkened or hue-turned colours, blur, training images copied, a few images repeated), on an
embedded set.

    python bench/gan_gate.py --data data/clevr --size 64
    python bench/gan_gate.py --data data/objects --size 32

Prints one JSON line per case: each checked figure, whether it passes, and the time the reference
(real tables, palette, neighbour embeddings) took to measure.
"""

from __future__ import annotations

import argparse
import json
import time

from nerfgen.gan.data import ImageCollection
from nerfgen.gan.gate import BROKEN_KINDS, broken_images
from nerfgen.gan.quality import QualityReference


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="an embedded set (nerfgen gan data)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=500, help="held-out images per side")
    args = p.parse_args()

    data = ImageCollection.from_folder(args.data, args.size)
    start = time.perf_counter()
    reference = QualityReference(data, args.count)
    seconds = time.perf_counter() - start
    half = len(reference.real.count)
    other = (data.images_at(data.held_out[half:2 * half]) + 1) * 0.5
    train = (data.images_at(data.train[:half]) + 1) * 0.5
    cases = {"real": other, **{kind: broken_images(other, kind, reference.backdrop, train) for kind in BROKEN_KINDS}}
    for name, images in cases.items():
        start_case = time.perf_counter()
        report = reference.report(images)
        figures = report["figures"]
        print(json.dumps({
            "figure": "gan_gate", "set": reference.set, "case": name, "images": half, "passed": report["passed"],
            "checks": {k: [round(v["value"], 4), v["pass"]] for k, v in report["checks"].items()},
            "colour_within_real": round(figures["colour_within_real"], 4),
            "edge_chroma_real": round(figures["edge_chroma_real"], 4),
            "edge_fringe_real": round(figures["edge_fringe_real"], 4),
            "area_median_real_px": figures["area_median_real_px"],
            "reference_seconds": round(seconds, 1), "report_seconds": round(time.perf_counter() - start_case, 2),
        }), flush=True)


if __name__ == "__main__":
    main()
