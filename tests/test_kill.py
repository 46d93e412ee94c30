"""Crash safety: runs SIGKILLed at random moments (inside checkpoint writes too) and resumed until
they finish end with the model an uninterrupted run of the same steps ends with, bit for bit, and
no resume fails (``bench/kill.py`` runs many more rounds)."""

from __future__ import annotations

import pytest

from tests.kill_cases import CHECKPOINT_EVERY, kill_test

KILLS = {"reconstruction": 3, "generation": 2, "gan": 2}


@pytest.mark.parametrize("kind", sorted(KILLS))
def test_killed_runs_resume_into_the_uninterrupted_model(kind, tmp_path, kernels):
    rounds = kill_test(kind, tmp_path, KILLS[kind], seed=7)
    assert rounds.kills >= KILLS[kind]
    assert rounds.failed == 0, f"resumes that failed: {rounds.errors}"
    assert rounds.mismatched == 0, f"{rounds.mismatched} of {rounds.series} killed runs ended with another model"
    assert all(lost <= CHECKPOINT_EVERY for lost in rounds.lost_steps), f"steps lost per kill {rounds.lost_steps}"
