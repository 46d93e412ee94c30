"""``nerfgen data``: ``process`` (photos or a video to a posed capture) and ``triangulate``
(SfM points for a capture whose poses are known)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``data`` and its subcommands on the ``nerfgen`` command's subparsers."""
    from nerfgen.data.process import CAMERA_MODELS, EXHAUSTIVE_MAX, MATCHERS, ProcessOptions

    defaults = ProcessOptions()
    p = sub.add_parser("data", help="prepare captures: pose photos or a video (COLMAP), triangulate SfM points",
                       description="Turn photos or a video into a posed capture, on the CPU (needs pycolmap: "
                                   "pip install 'nerfgen[capture]').")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    proc = data_sub.add_parser(
        "process", help="photos or a video -> images/, images_{2,4,8}/, sparse/0, transforms.json",
        description="Structure from motion with COLMAP (pycolmap, CPU): SIFT features, matching, incremental "
                    "mapping. Writes OUTPUT/images (+ images_2/4/8), OUTPUT/sparse/0 (COLMAP binary) and "
                    "OUTPUT/transforms.json (instant-ngp layout, for `nerfgen train OUTPUT`). Blurry frames are "
                    "left out; the run fails, writing nothing, unless enough images register.")
    proc.add_argument("input", help="a folder of images (one camera, one size) or a video file")
    proc.add_argument("--output", required=True, help="folder to create (must not exist)")
    proc.add_argument("--fps", type=float, help="video: frames to keep per second (default: every frame)")
    proc.add_argument("--max-size", type=int, help="downscale the working images to this longest side (pixels)")
    proc.add_argument("--matcher", choices=MATCHERS, default=defaults.matcher,
                      help=f"image pairs to match: every pair, neighbours in capture order, or auto (exhaustive "
                           f"up to {EXHAUSTIVE_MAX} images, sequential beyond; default auto)")
    proc.add_argument("--camera-model", choices=CAMERA_MODELS, default=defaults.camera_model,
                      help="the one camera shared by all frames (default OPENCV)")
    proc.add_argument("--min-registered", type=float, default=defaults.min_registered,
                      help="fraction of the frames that must register (default 1: all); with less, the frames "
                           "that fail are left out of transforms.json")
    proc.add_argument("--blur-ratio", type=float, default=defaults.blur_ratio,
                      help="skip frames whose sharpness (variance of the Laplacian) is below this times their "
                           "neighbours' median (default 0.5; 0 keeps all)")
    proc.add_argument("--threads", type=int, default=defaults.threads, help="CPU threads (default -1: all)")
    proc.add_argument("--dynamic", action="store_true",
                      help="the scene moves while filmed: give each frame its time (its place in the clip, 0 to 1) "
                           "in transforms.json, so `nerfgen train` trains a dynamic scene")
    tri = data_sub.add_parser(
        "triangulate", help="SfM points for a posed capture, its poses held fixed (depth supervision)",
        description="Match SIFT features between the images of a posed dataset and triangulate 3D points with "
                    "its cameras held fixed. Writes a COLMAP project of every frame, OUTPUT/images and "
                    "OUTPUT/sparse/0, in the coordinates nerfgen loads the dataset in: train on OUTPUT with "
                    "depth supervision (`depth: {weight: ...}`).")
    tri.add_argument("data", help="a dataset `nerfgen train` reads (transforms.json capture, ...)")
    tri.add_argument("--output", required=True, help="folder to create (must not exist)")
    tri.add_argument("--downscale", type=float, default=1, help="image downscale for the features (default 1)")
    tri.add_argument("--format", default="auto",
                     help="the capture's reader: nerf-synthetic, instant-ngp, llff, colmap, idr or auto (default: "
                          "found from the folder)")
    tri.add_argument("--threads", type=int, default=-1, help="CPU threads (default -1: all)")
    tri.add_argument("--views", type=int, default=0,
                     help="triangulate from only the N training images that `train_views: N` trains on "
                          "(few-view training; default 0: every image)")


def cmd_data(args: argparse.Namespace) -> int:
    """Run ``nerfgen data process`` or ``nerfgen data triangulate``; prints one JSON line."""
    from nerfgen.data.process import ProcessOptions, process
    from nerfgen.data.triangulate import triangulate_known_poses

    if args.data_command == "process":
        options = ProcessOptions(fps=args.fps, max_size=args.max_size, matcher=args.matcher,
                                 camera_model=args.camera_model, min_registered=args.min_registered,
                                 blur_ratio=args.blur_ratio, threads=args.threads, dynamic=args.dynamic)
        r = process(args.input, args.output, options)
        print(json.dumps({"output": str(r.output), "registered": r.registered, "frames": r.frames,
                          "skipped_blurry": len(r.skipped_blurry), "points": r.points,
                          "reprojection_error_px": round(r.reprojection_error, 3), "camera": r.camera,
                          "seconds": r.seconds}), flush=True)
        return 0
    r = triangulate_known_poses(args.data, args.output, args.downscale, args.threads, views=args.views,
                                format=args.format)
    print(json.dumps({"output": str(r.output), "images": r.images, "points": r.points,
                      "reprojection_error_px": round(r.reprojection_error, 3),
                      "mean_track_length": round(r.mean_track_length, 2), "seconds": r.seconds}), flush=True)
    return 0
