"""Fuzz every input reader: seeded mutations of a valid input, each of which must end in the
reader's own clear error or a sane result (see tests/fuzz_cases.py for the mutations and verdicts).

    python bench/fuzz.py [--cases 2000] [--readers llff idr ...] [--timeout 10]

Prints one JSON line per reader: {"figure": "fuzz", "reader", "cases", "ok", "errors": {type: count},
"unhandled", "unclear", "hangs", "seconds"}; the failing cases go to stderr (reader, case number,
verdict, message, mutations: `run_case` with that number repeats one). Exits 1 when any case failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz_cases import prepare, run_case  # noqa: E402
from tests.fuzz_targets import TARGETS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per reader (default 2000)")
    parser.add_argument("--readers", nargs="*", default=[t.name for t in TARGETS],
                        help=f"readers to fuzz (default all: {' '.join(t.name for t in TARGETS)})")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a case may take before it is a hang")
    args = parser.parse_args()
    unknown = set(args.readers) - {t.name for t in TARGETS}
    if unknown:
        parser.error(f"unknown readers {sorted(unknown)}")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="nerfgen-fuzz-") as tmp:
        work = Path(tmp)
        for target in (t for t in TARGETS if t.name in args.readers):
            base, start = prepare(target, work), time.perf_counter()
            verdicts, errors = collections.Counter(), collections.Counter()
            for case in range(args.cases):
                outcome = run_case(target, base, work, case, args.timeout)
                verdicts[outcome.verdict] += 1
                if outcome.verdict == "error":
                    errors[outcome.error] += 1
                elif outcome.verdict != "ok":
                    failed += 1
                    print(f"{target.name} case {case}: {outcome.verdict} {outcome.error}: {outcome.message} "
                          f"after {outcome.mutations}", file=sys.stderr)
            print(json.dumps({"figure": "fuzz", "reader": target.name, "cases": args.cases, "ok": verdicts["ok"],
                              "errors": dict(errors), "unhandled": verdicts["unhandled"],
                              "unclear": verdicts["unclear"], "hangs": verdicts["hang"],
                              "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
