"""Runs that are killed (SIGKILL) at random moments and resumed until they finish: what
``tests/test_kill.py`` and ``bench/kill.py`` measure.

    python -m tests.kill_cases KIND DATA OUT      # train a tiny KIND run into OUT, resuming OUT's checkpoint

Each started process prints ``start STEP`` (the step it resumed at, 0 when it starts afresh) and
``step N`` after every step (flushed), so the killer knows how much work each kill lost. With
``FSYNC_DELAY`` seconds in the environment (:data:`SLOW_DISK`), every flush to the disk waits that
long first, as on a slow disk: checkpoint writes then take a good share of the run, and random
kills land inside them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ("reconstruction", "generation", "gan")
CHECKPOINT_EVERY = 3
"""Steps between checkpoints of the killed runs (a kill loses at most this many)."""
STEPS = {"reconstruction": 30, "generation": 24, "gan": 12}
SLOW_DISK = "FSYNC_DELAY"
"""Environment variable: seconds each flush to the disk waits (a slow disk)."""


def engine(kind: str, data: str, out: Path, steps: int | None = None):
    """The engine of the tiny ``kind`` run on ``data`` into ``out`` (``steps``, default
    :data:`STEPS`), resumed when ``out`` holds a checkpoint."""
    from nerfgen.engine.checkpoint import has_checkpoint

    resume = has_checkpoint(out)
    common = {"max_steps": steps or STEPS[kind], "checkpoint_every": CHECKPOINT_EVERY, "eval_every": 0, "threads": 1,
              "seed": 3, "device": "cpu"}
    if kind == "reconstruction":
        from nerfgen.api import reconstruction
        from nerfgen.reconstruct import TrainConfig
        from nerfgen.render import OccGridConfig

        cfg = TrainConfig(field_options={"log2_table_size": 12, "n_levels": 4, "max_resolution": 64},
                          grid=OccGridConfig(resolution=16), target_samples=2048, **common)
        return reconstruction(data, out, cfg, resume)
    if kind == "generation":
        from nerfgen.api import generation
        from nerfgen.config import load_config
        from nerfgen.generate.config import GenerateConfig
        from tests.toy_priors import BoxTargetPrior

        cfg = load_config(GenerateConfig, None, {
            **common, "orbit_frames": 0, "mesh_resolution": 0, "background": "mlp",
            "camera": {"fov": [40.0, 40.0], "resolution": 16, "distance": [3.2, 3.6], "batch": 2},
            "grid": {"resolution": 16, "render_step_size": 0.02},
            "field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64}})
        prior = BoxTargetPrior(half=0.45, fov=40.0, resolution=16)
        return generation(None if resume else "a red cube", out, cfg, resume, prior)
    if kind == "gan":
        from nerfgen.api import gan_training
        from nerfgen.gan.config import FieldSize, GanConfig

        cfg = GanConfig(model="giraffe", size=16, batch=2, features=8, upsample=4, shape_latent=4, appearance_latent=4,
                        field=FieldSize(2, 16, 2, 1), background_field=FieldSize(1, 16, 2, 1), renderer_width=16,
                        discriminator_width=8, eval_samples=4, held_out=0.25, aabb=(-3.0, -3.0, -0.2, 3.0, 3.0, 1.0),
                        **common)
        cfg.sampler.n_samples = 8
        return gan_training(data, out, cfg, resume)
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def slow_disk(delay: float) -> None:
    """Make every flush to the disk (:func:`nerfgen.files.fsync_path`) wait ``delay`` seconds first."""
    from nerfgen import files
    from nerfgen.engine import checkpoint

    flush = files.fsync_path

    def slow(path) -> None:
        time.sleep(delay)
        flush(path)

    files.fsync_path = checkpoint.fsync_path = slow


def main(kind: str, data: str, out: str) -> None:
    if float(os.environ.get(SLOW_DISK, "0")) > 0:
        slow_disk(float(os.environ[SLOW_DISK]))
    run = engine(kind, data, Path(out))
    print(f"start {run.step}", flush=True)
    run.run([lambda report: print(f"step {report.step}", flush=True)])


def prepare(kind: str, root: Path) -> str:
    """The data a ``kind`` run trains on, made under ``root`` (nothing for generation)."""
    if kind == "reconstruction":
        from nerfgen.scenes import render_dataset

        return str(render_dataset(root / "tabletop", width=24, height=24, n_train=12, n_val=1, n_test=1,
                                  samples_per_side=1))
    if kind == "gan":
        from nerfgen.scenes.gan_sets import render_clevr

        return str(render_clevr(root / "clevr", count=24, size=16, seed=0))
    return "-"


@dataclass
class Rounds:
    """What killing runs over and over gave.

    Attributes:
        kills: processes killed.
        resumes: processes started on a checkpoint (each must get back to work).
        failed: processes that ended with an error on their own (a resume that did not work).
        in_writes: kills that left a checkpoint write unfinished (temporary files behind).
        lost_steps: per kill, the steps done but not in the checkpoint the next process started from.
        errors: the last line of each failed process's stderr.
        series: runs trained to the end under kills.
        mismatched: those whose final model differs from the uninterrupted run's.
        seconds: wall time of the series.
    """

    kills: int = 0
    resumes: int = 0
    failed: int = 0
    in_writes: int = 0
    lost_steps: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    series: int = 0
    mismatched: int = 0
    seconds: float = 0.0


def command(kind: str, data: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "tests.kill_cases", kind, data, str(out)]


def run_whole(kind: str, data: str, out: Path, env: dict[str, str]) -> tuple[float, float]:
    """Train ``kind`` into ``out`` without interruption; the wall seconds until it started training
    and until it ended."""
    start, began = time.perf_counter(), None
    proc = subprocess.Popen(command(kind, data, out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    for line in proc.stdout:
        if line.startswith("start ") and began is None:
            began = time.perf_counter() - start
    if proc.wait(timeout=600) != 0 or began is None:
        raise RuntimeError(f"{out}: the uninterrupted {kind} run failed (exit {proc.returncode})")
    return began, time.perf_counter() - start


def _temporaries(out: Path) -> set[Path]:
    """The temporary files and folders of writes in ``out`` (left behind by writes cut off)."""
    return {p for p in [*out.glob(".*"), *out.glob("checkpoints/.*"), *out.glob("checkpoints/.*/*")] if ".tmp-" in p.name}


def kill_series(kind: str, data: str, out: Path, kills: int, window: tuple[float, float], rng: random.Random,
                rounds: Rounds, env: dict[str, str], limit: int = 100) -> None:
    """Start ``kind`` into ``out`` and SIGKILL it after a random wait in ``window`` seconds, up to
    ``kills`` times, then let a process finish (or the run end earlier); add what each kill lost
    and each restart did to ``rounds``."""
    reached, done = None, 0  # the last step a killed process finished, until a later one says where it resumed
    for _ in range(limit):
        before = _temporaries(out)
        proc = subprocess.Popen(command(kind, data, out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, env=env)
        killed = False
        try:
            stdout, stderr = proc.communicate(timeout=rng.uniform(*window) if done < kills else None)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            killed = True
        lines = stdout.splitlines()
        started = next((int(line.split()[1]) for line in lines if line.startswith("start ")), None)
        steps = [int(line.split()[1]) for line in lines if line.startswith("step ")]
        if started is not None:
            rounds.resumes += started > 0
            if reached is not None:
                rounds.lost_steps.append(max(0, reached - started))
                reached = None
        if killed:
            done += 1
            rounds.kills += 1
            rounds.in_writes += bool(_temporaries(out) - before)
            reached = steps[-1] if steps else (started if started is not None else reached)
            continue
        if proc.returncode != 0:
            rounds.failed += 1
            rounds.errors.append(stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}")
            continue
        return
    raise RuntimeError(f"{out}: the run did not finish in {limit} starts")


def kill_test(kind: str, root: Path, kills: int, seed: int = 0, fsync_delay: float = 0.05) -> Rounds:
    """``kind`` trained whole once, then again under ``kills`` SIGKILLs at random moments (in as
    many series as it takes: a series ends when its run finishes), each series' final model
    compared with the whole run's (``rounds.mismatched`` counts those that differ); every flush to
    the disk waits ``fsync_delay`` seconds (a slow disk, so that kills land inside writes)."""
    data = prepare(kind, root)
    whole = root / f"{kind}-whole"
    env = {**os.environ, SLOW_DISK: str(fsync_delay)}
    began, seconds = run_whole(kind, data, whole, env)
    window = (0.5 * began, began + 0.6 * (seconds - began))  # mostly while training and checkpointing
    rng, rounds, start = random.Random(seed), Rounds(), time.perf_counter()
    series = 0
    while rounds.kills < kills:
        out = root / f"{kind}-killed-{series}"
        kill_series(kind, data, out, kills - rounds.kills, window, rng, rounds, env)
        rounds.mismatched += bool(same_model(whole, out))
        series += 1
    rounds.series, rounds.seconds = series, time.perf_counter() - start
    return rounds


def same_model(a: Path, b: Path) -> list[str]:
    """The tensors of ``a/model.safetensors`` that differ from ``b``'s (empty when bit-identical)."""
    from nerfgen.files import read_tensors

    ta, tb = read_tensors(a / "model.safetensors"), read_tensors(b / "model.safetensors")
    if ta.keys() != tb.keys():
        return sorted(ta.keys() ^ tb.keys())
    return [k for k in ta if not (ta[k].shape == tb[k].shape and bool((ta[k] == tb[k]).all()))]


if __name__ == "__main__":
    main(*sys.argv[1:4])
