"""``nerfgen gan data {clevr,objects}``: render an embedded unposed image set for GAN training
(:mod:`nerfgen.scenes.gan_sets`); prints one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def objects_range(text: str) -> tuple[int, int]:
    """``"1-3"`` -> (1, 3), ``"2"`` -> (2, 2); 1 <= min <= max <= 5 (an argparse ``type``)."""
    lo, sep, hi = text.partition("-")
    try:
        pair = (int(lo), int(hi) if sep else int(lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX or N (e.g. 1-3 or 2), got {text!r}") from None
    if not 1 <= pair[0] <= pair[1] <= 5:
        raise argparse.ArgumentTypeError(f"expected 1 <= MIN <= MAX <= 5, got {text!r}")
    return pair


def pattern_list(text: str) -> tuple[str, ...]:
    """``"solid,striped"`` -> ("solid", "striped"), each one of the library's patterns (an argparse ``type``)."""
    from nerfgen.scenes.objects import PATTERNS

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in names if p not in PATTERNS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(PATTERNS)}, got {text!r}")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``data`` (with ``clevr`` and ``objects``) on the ``nerfgen gan`` subparsers."""
    p = sub.add_parser("data", help="render an embedded unposed image set (CLEVR-like scenes or single objects)",
                       description="Render an image collection for GAN training with nerfgen's CPU ray caster. "
                                   "Writes OUTPUT/images/*.png and OUTPUT/labels.json (camera and object poses, "
                                   "for evaluation only). A complete OUTPUT of the same set is kept as is.")
    sets = p.add_subparsers(dest="gan_data_set", required=True)
    clevr = sets.add_parser("clevr", help="1-N matte primitives on a grey ground, one fixed camera (CLEVR-N)")
    objects = sets.add_parser("objects", help="one library object per image, random camera on a sphere")
    for q in (clevr, objects):
        q.add_argument("--output", required=True, help="folder to create (or a complete one of the same set)")
        q.add_argument("--count", type=_positive, default=20000, help="number of images (default 20000)")
        q.add_argument("--size", type=_positive, default=64, help="image side in pixels (default 64)")
        q.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
        q.add_argument("--workers", type=int, default=0,
                       help="rendering processes (default 0: one per CPU core, at most 8; the images do not depend on it)")
    clevr.add_argument("--objects", type=objects_range, default=(1, 3), metavar="MIN-MAX",
                       help="objects per image, uniform (default 1-3; a single N means exactly N)")
    objects.add_argument("--patterns", type=pattern_list, default=("solid",), metavar="P[,P...]",
                         help="surface patterns to keep: solid, striped, checkered (default solid)")


def _progress(start: float):
    step = [0]

    def report(done: int, total: int) -> None:
        if done * 20 >= (step[0] + 1) * total or done == total:
            step[0] = done * 20 // total
            print(f"gan data: {done}/{total} images ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
                  flush=True)

    return report


def run_data(args: argparse.Namespace) -> int:
    """Render the set that ``args`` (parsed by :func:`add_data_parser`) asks for; prints one JSON line."""
    from nerfgen.scenes.gan_sets import render_clevr, render_objects

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = args.workers if args.workers > 0 else min(cores, 8)
    start = time.perf_counter()
    common = dict(count=args.count, size=args.size, seed=args.seed, progress=_progress(start), workers=workers)
    if args.gan_data_set == "clevr":
        out = render_clevr(args.output, objects=args.objects, **common)
    else:
        out = render_objects(args.output, patterns=args.patterns, **common)
    print(json.dumps({"output": str(out), "images": args.count, "seconds": round(time.perf_counter() - start, 2)}),
          flush=True)
    return 0
