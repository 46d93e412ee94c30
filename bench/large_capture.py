"""A capture of real size: N photos of 1920x1080 (synthetic, written as JPEGs) in a transforms.json,
loaded and trained for a few steps; peak RSS with the images decoded lazily vs all in memory.

    python bench/large_capture.py --images 300 --steps 100
    python bench/large_capture.py --images 300 --steps 100 --image-memory-mb 4096   # all in memory

Each mode runs in a fresh process (peak RSS is per process). Fields: mode, images, width, height,
image_memory_mb, lazy, subset (images held), load seconds, steps, train seconds, peak RSS (MB),
decoded bytes if all were held (MB).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_capture(root: Path, n: int, width: int, height: int) -> None:
    """``n`` smooth synthetic photos on a circle of cameras looking at the origin."""
    (root / "images").mkdir(parents=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        phase = 2 * math.pi * i / n
        rgb = np.stack([np.sin(xx / 97 + phase), np.cos(yy / 61 - phase), np.sin((xx + yy) / 143)], -1)
        Image.fromarray(((rgb * 0.5 + 0.5) * 255).astype(np.uint8)).save(root / "images" / f"{i:04d}.jpg", quality=90)
        eye = np.array([4 * math.cos(phase), 4 * math.sin(phase), 1.0])
        back = eye / np.linalg.norm(eye)
        right = np.cross([0, 0, 1.0], back)
        right /= np.linalg.norm(right)
        c2w = np.eye(4)
        c2w[:3, :3] = np.stack([right, np.cross(back, right), back], 1)
        c2w[:3, 3] = eye
        frames.append({"file_path": f"images/{i:04d}.jpg", "transform_matrix": c2w.tolist()})
    meta = {"fl_x": 1500.0, "fl_y": 1500.0, "cx": width / 2, "cy": height / 2, "w": width, "h": height,
            "aabb_scale": 4, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


def run_mode(data: Path, steps: int, memory_mb: int) -> dict:
    """Train in this process and report (called in a child process per mode)."""
    import warnings

    from nerfgen.api import reconstruction

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        engine = reconstruction(data, Path(out) / "run", "ngp", max_steps=steps, eval_every=0, checkpoint_every=0,
                                image_memory_mb=memory_mb)
        loaded = time.perf_counter() - start
        store = engine.task.dataset.store
        summary = engine.run()
    w, h = (int(v) for v in store.sizes[0])
    return {"mode": "lazy" if store.lazy else "in_memory", "images": len(store), "width": w, "height": h,
            "image_memory_mb": memory_mb, "lazy": store.lazy, "subset": store.subset_size,
            "load_seconds": round(loaded, 1), "steps": summary.steps, "train_seconds": round(summary.seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "all_decoded_mb": round(int(store.sizes.prod(1).sum()) * 4 / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image-memory-mb", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_mode(Path(args.child), args.steps, args.image_memory_mb[0])), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "capture"
        start = time.perf_counter()
        write_capture(data, args.images, args.width, args.height)
        print(json.dumps({"figure": "write_capture", "images": args.images, "seconds": round(time.perf_counter() - start, 1)}),
              flush=True)
        for memory in args.image_memory_mb:
            subprocess.run([sys.executable, __file__, "--child", str(data), "--steps", str(args.steps),
                            "--image-memory-mb", str(memory)], check=True)


if __name__ == "__main__":
    main()
