"""Every input reader, fuzzed: seeded mutations of a valid input (:mod:`tests.fuzz_cases`) must each
end in the reader's own clear error naming the file, or in a sane result; never another exception,
never a hang. ``bench/fuzz.py --cases N`` runs many more cases per reader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fuzz_cases import Outcome, prepare, run_case
from tests.fuzz_targets import TARGETS, Target, build_layout

CASES = 60
"""Cases per reader in CI (the whole file runs in about 15 s on 2 cores)."""


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def report(outcomes: list[Outcome]) -> str:
    return "\n".join(f"case {o.case}: {o.verdict} {o.error}: {o.message} after {o.mutations}" for o in outcomes)


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_fuzzed_input_ends_in_one_clear_error(target: Target, work: Path):
    base = prepare(target, work)
    outcomes = [run_case(target, base, work, case) for case in range(CASES)]
    bad = [o for o in outcomes if o.verdict not in ("ok", "error")]
    assert not bad, report(bad)
    assert sum(o.verdict == "error" for o in outcomes) >= CASES // 4  # the mutations do break the input


def test_cases_are_repeatable(work: Path):
    target = TARGETS[0]
    base = prepare(target, work)
    first = [run_case(target, base, work, case) for case in range(5)]
    again = [run_case(target, base, work, case) for case in range(5)]
    assert [(o.mutations, o.verdict, o.message) for o in first] == [(o.mutations, o.verdict, o.message) for o in again]


def test_the_verdicts_catch_a_broken_reader(work: Path):
    base = prepare(Target("probe", build_layout, lambda root: None, (ValueError,)), work)

    def raw(root: Path):
        raise KeyError("objects")

    def vague(root: Path):
        raise ValueError("bad input")

    def slow(root: Path):
        time.sleep(5)

    for read, verdict in ((raw, "unhandled"), (vague, "unclear"), (lambda root: 1, "ok"), (slow, "hang")):
        target = Target("probe", build_layout, read, (ValueError,))
        assert run_case(target, base, work, 0, timeout=0.2).verdict == verdict
