"""Start ``torchrun`` jobs as a user does, and report a failed one so its cause can be read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_FATAL = re.compile(r"Fatal Python error|Traceback \(most recent call last\)|terminate called")


def torchrun(args: list[str], ranks: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node RANKS ARGS`` with one thread a rank."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def failure(proc: subprocess.CompletedProcess) -> str:
    """What a failed job said: the start of each rank's fatal error (a crashing rank's stack comes
    before faulthandler's long list of extension modules, which a plain tail would show instead),
    then the tails of stdout and stderr."""
    err = proc.stderr
    heads = [err[m.start():m.start() + 2500] for m in list(_FATAL.finditer(err))[:4]]
    return "\n".join([f"exit {proc.returncode}", *(f"--- error at {h[:60]!r}...\n{h}" for h in heads),
                      "--- stdout (tail)", proc.stdout[-2000:], "--- stderr (tail)", err[-4000:]])


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, failure(proc)
    return proc
