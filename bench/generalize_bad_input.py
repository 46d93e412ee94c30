"""Bad input to the generalizable commands: one clear error each, naming the file. One JSON line
per case: the command, its exit status and the first line of its error.

* source views of different sizes (a capture whose second photo is larger);
* a pose missing (a frame without ``transform_matrix``);
* a source view index out of range;
* a checkpoint whose tensors do not match MVSNeRF's network (one tensor of the wrong shape).

    python bench/generalize_bad_input.py --checkpoint ../shared/data/mvsnerf/mvsnerf-v0.tar
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def capture(root: Path, sizes: list[int], pose_missing: bool = False) -> Path:
    """A NeRF-synthetic capture of square photos of the given sides."""
    (root / "train").mkdir(parents=True)
    frames = []
    for i, side in enumerate(sizes):
        Image.fromarray(np.full((side, side, 4), 200, np.uint8)).save(root / "train" / f"r_{i}.png")
        c2w = np.eye(4)
        c2w[2, 3] = 3.0
        frames.append({"file_path": f"./train/r_{i}", **({} if pose_missing and i == 1 else
                                                         {"transform_matrix": c2w.tolist()})})
    (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    return root


def run(case: str, args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "nerfgen", *args], capture_output=True, text=True)
    error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    print(json.dumps({"figure": "bad_input", "case": case, "exit": done.returncode, "error": error}), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="mvsnerf-v0.tar (a copy with one tensor changed is made)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        good = tmp / "mvsnerf_run"
        run("mvsnerf import (good)", ["generalize", "mvsnerf", args.checkpoint, "--output", str(good)])
        sizes = capture(tmp / "sizes", [32, 48, 32])
        run("source views of different sizes", ["generalize", "render", str(good), "--data", str(sizes), "--sources",
                                                "0", "1", "2", "--orbit", "--output", str(tmp / "a.mp4")])
        missing = capture(tmp / "missing", [32, 32, 32], pose_missing=True)
        run("a pose missing", ["generalize", "render", str(good), "--data", str(missing), "--sources", "0", "1", "2",
                               "--orbit", "--output", str(tmp / "b.mp4")])
        same = capture(tmp / "same", [32, 32, 32])
        run("a view index out of range", ["generalize", "render", str(good), "--data", str(same), "--sources", "0",
                                          "1", "5", "--orbit", "--output", str(tmp / "c.mp4")])
        ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        ckpt["network_fn_state_dict"]["nerf.pts_bias.weight"] = torch.zeros(128, 11)
        broken = tmp / "broken.tar"
        torch.save(ckpt, broken)
        run("a checkpoint that does not match", ["generalize", "mvsnerf", str(broken), "--output", str(tmp / "bad")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
