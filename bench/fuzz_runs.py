"""Fuzzed run directories: many damaged ``run.json`` files (every kind) and checkpoint files.

    python bench/fuzz_runs.py [--cases 300] [--seed 0]

Prints one JSON line per reader (``run.json`` of each kind, the checkpoint of each trained kind):
cases tried, outcomes (read / clear error naming the file / older checkpoint resumed) and the
cases that ended otherwise (unhandled exceptions, errors without the file, hangs: must be 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # not bench/: its kernels.py would shadow the `kernels` package transformers probes for

from tests.fuzz_runs import KINDS, TRAINED, fuzz_checkpoint, fuzz_run_json, make_run  # noqa: E402


def report(reader: str, tally) -> None:
    print(json.dumps({"reader": reader, "cases": tally.cases, "outcomes": dict(tally.outcomes),
                      "unhandled": len(tally.bad), "examples": tally.bad[:3]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=300, help="cases per reader (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nerfgen-fuzz-runs-") as root:
        root = Path(root)
        runs = {kind: make_run(kind, root) for kind in KINDS}
        for kind in KINDS:
            report(f"run.json ({kind})", fuzz_run_json(runs[kind][0], root, args.cases, args.seed))
        for kind in TRAINED:
            run, data = runs[kind]
            report(f"checkpoint ({kind})", fuzz_checkpoint(kind, data, run, root, args.cases, args.seed))


if __name__ == "__main__":
    main()
