"""`nerfgen data process` on all of fox's images (instant-ngp's capture), on the CPU, against
instant-ngp's own poses.

One JSON line per downscale: wall time per stage, images registered, SfM points and reprojection
error, and the rotation error (degrees) and position error (fraction of the RMS camera spread)
of the recovered poses after a similarity (Umeyama) alignment onto fox's transforms.json.

    python3 bench/process_fox.py --downscale 4 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from nerfgen.data.process import ProcessOptions, pose_errors, process

FOX = Path(__file__).resolve().parents[2] / "shared" / "data" / "fox"


def _stats(values: np.ndarray, digits: int) -> dict:
    return {"median": round(float(np.median(values)), digits), "mean": round(float(values.mean()), digits),
            "max": round(float(values.max()), digits)}


def run(downscale: int, threads: int) -> dict:
    reference = {Path(f["file_path"]).name: np.array(f["transform_matrix"])
                 for f in json.loads((FOX / "transforms.json").read_text())["frames"]}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = process(FOX / "images", Path(tmp) / "capture",
                         ProcessOptions(max_size=1920 // downscale, threads=threads, min_registered=0.5,
                                        progress=False))
        total = time.perf_counter() - start
        frames = json.loads((result.output / "transforms.json").read_text())["frames"]
    names = [Path(f["file_path"]).name for f in frames]
    est = np.stack([np.array(f["transform_matrix"]) for f in frames])
    rotation, position = pose_errors(est, np.stack([reference[n] for n in names]))
    return {"figure": "process_fox", "downscale": downscale,
            "size": [result.camera["width"], result.camera["height"]], "threads": threads,
            "frames": result.frames, "registered": result.registered, "skipped_blurry": len(result.skipped_blurry),
            "points": result.points, "reprojection_error_px": round(result.reprojection_error, 3),
            "rotation_error_deg": _stats(rotation, 3), "position_error_frac": _stats(position, 4),
            "seconds": result.seconds, "total_seconds": round(total, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--downscale", type=int, nargs="+", default=[4, 2], help="image downscales (default 4 2)")
    parser.add_argument("--threads", type=int, default=2, help="pycolmap CPU threads (default 2)")
    args = parser.parse_args()
    if not (FOX / "transforms.json").is_file():
        raise SystemExit(f"{FOX}: fox not found (the shared datasets live beside the repository)")
    for downscale in args.downscale:
        print(json.dumps(run(downscale, args.threads)), flush=True)


if __name__ == "__main__":
    main()
