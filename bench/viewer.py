"""Viewer speed on a trained run: frames per second while the camera moves at a fixed size, the
size dynamic resolution picks while moving, and the time to a full still frame.

    python bench/viewer.py runs/lego --moving 128 --still 512
    python bench/viewer.py runs/lego --baked --moving 256 --still 800     # the run's bake (nerfgen bake)

Frames go through the viewer's own path (``render_view`` in bands, the mode composite and the JPEG
encoding it sends), on an orbit around the scene, one camera per frame; moving frames use the run's
preview march as the viewer does (``--full-march``: the still's march for them too). Prints one
JSON line for moving frames, then one for still frames.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.viewer.frames import ViewCamera, compose, preview_side, render_view, viser_pose  # noqa: E402

import nerfgen  # noqa: E402


def views(orbit: nerfgen.Orbit, n: int) -> list[ViewCamera]:
    """``n`` browser cameras on the run's orbit (square canvas, the training field of view)."""
    cams = orbit.cameras(n)
    fov = 2 * math.atan(0.5 * orbit.height / orbit.fy)
    out = []
    for i in range(n):
        wxyz, position = viser_pose(cams.c2w[i])
        out.append(ViewCamera(tuple(position.tolist()), tuple(wxyz.tolist()), fov, 1.0))
    return out


def frame_seconds(run, background, view: ViewCamera, side: int, preview: bool = False) -> float:
    start = time.perf_counter()
    image = render_view(run, view.cameras(side, side), background, preview=preview)
    iio.imwrite("<bytes>", compose(image, "rgb"), extension=".jpeg", quality=90)  # as viser does without cv2
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="run directory")
    parser.add_argument("--moving", type=int, default=128, help="frame size while moving (square)")
    parser.add_argument("--still", type=int, default=512, help="still frame size (square)")
    parser.add_argument("--frames", type=int, default=12, help="moving frames to time")
    parser.add_argument("--stills", type=int, default=2, help="still frames to time")
    parser.add_argument("--moving-fps", type=float, default=8.0, help="target of dynamic resolution")
    parser.add_argument("--baked", action="store_true", help="render the run's bake (nerfgen bake), not its field")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--full-march", action="store_true", help="moving frames without the preview march")
    args = parser.parse_args()
    run = nerfgen.load_baked(args.run, args.device) if args.baked else nerfgen.load_run(args.run, args.device)
    background = run.background
    path = views(run.info.orbit, args.frames)
    preview = not args.full_march
    frame_seconds(run, background, path[0], args.moving, preview)  # warm-up (kernel load, allocator)
    moving = [frame_seconds(run, background, v, args.moving, preview) for v in path]
    rays_per_s = args.moving**2 * len(moving) / sum(moving)
    print(json.dumps({
        "figure": "viewer_moving", "run": str(args.run), "baked": args.baked, "threads": torch.get_num_threads(),
        "size": args.moving, "preview": preview and run.traits.previews, "fps": round(len(moving) / sum(moving), 2),
        "frame_ms_median": round(1000 * sorted(moving)[len(moving) // 2], 1), "render_rays_per_s": round(rays_per_s),
        "dynamic_side_at_target_fps": preview_side(rays_per_s, 1 / args.moving_fps, 1.0, args.still),
        "target_fps": args.moving_fps, "load_average": os.getloadavg()[0],
    }), flush=True)
    still = [frame_seconds(run, background, v, args.still) for v in path[:: max(1, args.frames // args.stills)]]
    print(json.dumps({
        "figure": "viewer_still", "run": str(args.run), "baked": args.baked, "threads": torch.get_num_threads(),
        "size": args.still,
        "seconds": [round(s, 2) for s in still], "seconds_median": round(sorted(still)[len(still) // 2], 2),
        "load_average": os.getloadavg()[0],
    }), flush=True)

if __name__ == "__main__":
    main()
