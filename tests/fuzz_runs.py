"""Fuzzed run directories: ``run.json`` of every kind and the files of a checkpoint, damaged in
seeded ways; opening or resuming must read the run or end in one clear error naming the file
(``tests/test_fuzz_runs.py`` runs a few cases of each, ``bench/fuzz_runs.py`` many)."""

from __future__ import annotations

import io
import json
import shutil
import traceback
from collections import Counter
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path

from tests.kill_cases import KINDS as TRAINED, engine, prepare
from tests.mutations import Hang, binary_cases, json_cases, time_limit

CLEAR = (ValueError, FileNotFoundError)
"""The errors a reader answers bad input with (nerfgen's DatasetError is a ValueError)."""
KINDS = (*TRAINED, "prior", "dynamic", "generalizable")
"""Kinds whose run.json is fuzzed (checkpoints: those of ``tests.kill_cases``)."""
DYNAMIC = {"field": "kplanes", "max_steps": 6, "checkpoint_every": 3, "eval_every": 0, "threads": 1, "seed": 3,
           "device": "cpu", "target_samples": 2048, "max_rays": 1024, "init_rays": 256,
           "field_options": {"resolution": 8, "scales": [1], "time_resolution": 4, "features": 4, "hidden": 16},
           "grid": {"resolution": 16, "time_bins": 2, "cells_per_update": 1024}}
"""A tiny dynamic run (K-Planes) on a small D-NeRF-style folder."""


@dataclass
class Tally:
    """Cases tried, how each ended, and the ones that did not end well."""

    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)
    """Each case's label and outcome, in order."""

    def add(self, label: str, outcome: str, detail: str = "") -> None:
        self.cases += 1
        self.outcomes[outcome] += 1
        self.ended.append((label, outcome))
        if outcome not in ("read", "clear error", "resumed", "resumed an older checkpoint"):
            self.bad.append(f"{label}: {outcome}: {detail}")


def make_run(kind: str, root: Path) -> tuple[Path, str]:
    """A finished tiny run of ``kind`` under ``root`` (two checkpoints), and the data it trained on."""
    out = root / f"{kind}-run"
    if kind == "prior":
        from nerfgen.api import train_prior

        config = {"views": {"n_objects": 3, "views_per_object": 2, "resolution": 16, "supersample": 1},
                  "unet": {"resolution": 16, "channels": 16, "multipliers": [1, 2], "attention_levels": []},
                  "max_steps": 2, "batch_size": 4, "checkpoint_every": 1, "threads": 1, "device": "cpu",
                  "guide": {"max_steps": 0}}
        from nerfgen.config import build_config
        from nerfgen.prior.train_config import PriorTrainConfig

        with redirect_stderr(io.StringIO()):
            train_prior(out, build_config(PriorTrainConfig, config, "fuzz"), progress=None)
        return out, "-"
    if kind == "dynamic":
        from nerfgen.config import build_config
        from nerfgen.dynamic.api import train_dynamic
        from nerfgen.dynamic.config import DynamicConfig
        from tests.dynamic_data import dnerf_folder

        data = dnerf_folder(root / "dnerf", {"train": 6, "val": 1, "test": 1}, size=12)
        with redirect_stderr(io.StringIO()):
            train_dynamic(data, out, build_config(DynamicConfig, DYNAMIC, "fuzz"))
        return out, str(data)
    if kind == "generalizable":
        from nerfgen.api import generalize_training

        config = {"pixelnerf": {"encoder": {"widths": [4, 8]}, "sampler": {"n_samples": 8},
                                "field": {"width": 16, "blocks_before": 1, "blocks_after": 1, "frequencies": 2}},
                  "scenes": {"views": 4, "size": 12, "supersample": 1}, "pool": 2, "eval_scenes": 1, "rays": 32,
                  "scenes_per_step": 1, "max_steps": 2, "checkpoint_every": 1, "eval_every": 0, "threads": 1,
                  "device": "cpu"}
        with redirect_stderr(io.StringIO()):
            generalize_training(None, out, **config).run()
        return out, "-"
    data = prepare(kind, root)
    with redirect_stderr(io.StringIO()):
        engine(kind, data, out, steps=6).run()
    return out, data


def _outcome(call, label: str, path_named: str, tally: Tally, ok: str = "read") -> object:
    try:
        with time_limit(60), redirect_stderr(io.StringIO()) as said:
            result = call()
    except CLEAR as exc:
        named = path_named in str(exc)
        tally.add(label, "clear error" if named else "error without the file", str(exc)[:200])
        return None
    except Hang as exc:
        tally.add(label, "hang", str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - what the fuzzer is for
        tally.add(label, f"unhandled {type(exc).__name__}", "".join(traceback.format_exception_only(exc))[:300])
        return None
    tally.add(label, "resumed an older checkpoint" if "passed over" in said.getvalue() else ok)
    return result


def fuzz_run_json(run: Path, scratch: Path, cases: int, seed: int = 0) -> Tally:
    """Damage ``run``'s ``run.json`` ``cases`` ways; :func:`nerfgen.load_run` must open the run (and
    it must render a frame, when it renders) or name ``run.json`` in its error."""
    from nerfgen.kinds import load_run
    from nerfgen.renderable import Renderable

    tally, original = Tally(), json.loads((run / "run.json").read_text())
    target = scratch / "run-json"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))

    def open_and_render():
        opened = load_run(target, "cpu")
        if isinstance(opened, Renderable):
            opened.render(opened.orbit_cameras(2, 8, 8), 1)
        return opened

    for label, content in json_cases(original, cases, seed):
        (target / "run.json").write_bytes(content)
        _outcome(open_and_render, f"run.json: {label}", "run.json", tally)
    return tally


def fuzz_checkpoint(kind: str, data: str, run: Path, scratch: Path, cases: int, seed: int = 0) -> Tally:
    """Damage a file of ``run``'s newest checkpoint ``cases`` ways; resuming must load the older
    checkpoint (and say so), or the newest when the damage does not matter, or end in one error
    that names the checkpoint."""
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    files = sorted(p.name for p in newest.iterdir())
    tally, per_file = Tally(), max(1, cases // len(files))
    for n, name in enumerate(files):
        original = (newest / name).read_bytes()
        mutations = json_cases(json.loads(original), per_file, seed + n) if name.endswith(".json") \
            else binary_cases(original, per_file, seed + n)
        for label, content in mutations:
            target = scratch / "checkpoint"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(run, target, ignore=shutil.ignore_patterns("tensorboard"))
            (target / "checkpoints" / newest.name / name).write_bytes(content)
            _outcome(lambda: engine(kind, data, target), f"{newest.name}/{name}: {label}", "checkpoints", tally,
                     ok="resumed")
    return tally
