"""Crash safety under SIGKILL: tiny reconstruction, generation and GAN runs killed at random moments
(while starting, training, and inside checkpoint writes) and resumed until they finish.

    python bench/kill.py [--kills 20] [--kinds reconstruction generation gan] [--seed 0]

Prints one JSON line per kind: kills, resumes, failed resumes (must be 0), kills that landed
inside a checkpoint write, the most steps a kill lost (checkpoints every ``CHECKPOINT_EVERY``
steps), and how many killed series ended with a model that differs from the uninterrupted run's
(must be 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # not bench/: its kernels.py would shadow the `kernels` package transformers probes for

from tests.kill_cases import CHECKPOINT_EVERY, KINDS, kill_test  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="kills per kind (default 20)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for kind in args.kinds:
        with tempfile.TemporaryDirectory(prefix=f"nerfgen-kill-{kind}-") as root:
            rounds = kill_test(kind, Path(root), args.kills, args.seed)
        print(json.dumps({"kind": kind, "kills": rounds.kills, "resumes": rounds.resumes, "failed": rounds.failed,
                          "kills_inside_writes": rounds.in_writes, "max_steps_lost": max(rounds.lost_steps, default=0),
                          "checkpoint_every": CHECKPOINT_EVERY, "series": rounds.series,
                          "mismatched_models": rounds.mismatched, "errors": rounds.errors[:3],
                          "seconds": round(rounds.seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
