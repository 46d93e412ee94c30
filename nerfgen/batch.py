"""Batch jobs: many runs (captures, prompts, scenes, GANs, config variants) shared out over the
ranks of a ``torchrun`` job, each item trained by one rank alone, into one output tree.

A jobs file (``nerfgen batch jobs.yaml --output runs/sweep``) names each job by its run kind
(:class:`~nerfgen.kinds.RunKind`, what its ``run.json`` will say)::

    defaults:                    # config keys every job gets (a job's own `set` wins)
      max_steps: 2000
    jobs:
      - reconstruction: data/lego   # a capture to reconstruct (config: auto unless given)
        name: lego-fine             # its folder under --output (default NN-what-it-runs)
        config: ngp_fine
        set: {downscale: 2}
      - generation: a red cube      # a prompt to generate
      - scene: a red cube on a blue sphere
      - gan: data/clevr
      - prior:                      # the built-in prior (trains on nothing given)
        config: prior

``train`` and ``generate``, the names of earlier versions, still read as ``reconstruction`` and
``generation`` (with a warning).

Pending items are dealt round-robin over the ranks (item ``i`` of them to rank ``i % size``).
Each finished item leaves a record, ``OUTPUT/jobs/NAME.json`` (``done`` or ``failed`` with the
error): a failed item does not stop the others, a re-run skips the done ones and resumes an
interrupted one from its checkpoint. When every item has a record, ``OUTPUT/summary.json``
lists them all.
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerfgen import distributed
from nerfgen.config import read_yaml
from nerfgen.distributed import World
from nerfgen.engine.checkpoint import has_checkpoint
from nerfgen.files import read_json, write_json
from nerfgen.kinds import RunKind, spec

KINDS = tuple(k.value for k in RunKind)
"""What a job runs: a run of each kind (``reconstruction`` of a capture folder, ``generation`` /
``scene`` of a prompt, ``gan`` of an image folder, ``prior`` of nothing given)."""
OLD_NAMES = {"train": RunKind.RECONSTRUCTION, "generate": RunKind.GENERATION}
"""Job keys of earlier versions, still read."""
RECORDS = "jobs"
"""Folder of the items' records under the output."""
SUMMARY_FILE = "summary.json"


@dataclass
class Job:
    """One item: a run of ``kind`` on ``target`` (a path, a prompt, or None for a kind that
    trains on nothing given) into ``OUTPUT/name``, from ``config`` (None: the kind's default)
    with config keys ``options`` on top."""

    name: str
    kind: RunKind
    target: str | None
    config: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def slug(text: str, limit: int = 48) -> str:
    """A folder name: lower-case words joined by dashes.

    >>> slug("A red, ceramic teapot!")
    'a-red-ceramic-teapot'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-") or "prompt"


def default_name(index: int, kind: RunKind, target: str | None) -> str:
    """``NN-slug``: a prompt's words, a folder's name, or the kind's name."""
    what = spec(kind).target
    words = target if what == "prompt" else Path(target.rstrip("/")).name if what == "path" else kind.value
    return f"{index:02d}-{slug(words)}"


def read_jobs(path: str | Path) -> list[Job]:
    """The jobs of a jobs file (see the module's docstring); every mistake names the file and the job."""
    path = Path(path)
    values = read_yaml(path)
    unknown = set(values) - {"defaults", "jobs"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}; expected 'defaults' and 'jobs'")
    defaults, items = values.get("defaults") or {}, values.get("jobs")
    if not isinstance(defaults, dict):
        raise ValueError(f"{path}: defaults: expected a mapping of config keys")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: jobs: expected a list of jobs (each with one of {', '.join(KINDS)})")
    jobs = [_job(i, item, path, defaults) for i, item in enumerate(items)]
    check_names(jobs, str(path))
    return jobs


def _job(i: int, item: Any, path: Path, defaults: dict) -> Job:
    """Job ``i`` of the jobs file ``path``; every mistake names the file and the job."""
    where = f"{path}: jobs[{i}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a mapping, got {item!r}")
    keys = [k for k in (*KINDS, *OLD_NAMES) if k in item]
    if len(keys) != 1:
        raise ValueError(f"{where}: expected exactly one of {', '.join(KINDS)}, got {sorted(item)}")
    key = keys[0]
    kind = OLD_NAMES.get(key) or RunKind(key)
    if key in OLD_NAMES:
        warnings.warn(f"{where}: '{key}' is now '{kind.value}' (the kind its run.json says)", stacklevel=4)
    extra = set(item) - {key, "name", "config", "set"}
    if extra:
        raise ValueError(f"{where}: unknown keys {sorted(extra)}; expected {kind.value}, name, config, set")
    target, options, what = item[key], item.get("set") or {}, spec(kind).target
    if what == "none":
        if target not in (None, ""):
            raise ValueError(f"{where}: a {kind.value} run trains on nothing given; leave '{key}:' empty")
        target = None
    elif not isinstance(target, str) or not target:
        raise ValueError(f"{where}: {key}: expected a {'prompt' if what == 'prompt' else 'path'}")
    if not isinstance(options, dict):
        raise ValueError(f"{where}: set: expected a mapping of config keys")
    if what == "path" and not Path(target).is_absolute():
        target = str(path.parent / target)  # paths are the jobs file's
    return Job(str(item.get("name") or default_name(i, kind, target)), kind, target, item.get("config"),
               {**defaults, **options})


def prompt_jobs(prompts: list[str], kind: RunKind, config: str | None, options: dict[str, Any]) -> list[Job]:
    """One ``generation`` (or ``scene``) job a prompt, into ``NN-slug`` (``nerfgen generate --prompts``)."""
    return [Job(default_name(i, kind, p), kind, p, config, dict(options)) for i, p in enumerate(prompts)]


def check_names(jobs: list[Job], source: str) -> None:
    names = [job.name for job in jobs]
    for name in names:
        if names.count(name) > 1 or name in (RECORDS, SUMMARY_FILE) or "/" in name or name.startswith("."):
            raise ValueError(f"{source}: job name {name!r} is repeated or not a plain folder name")


# -- running --------------------------------------------------------------------------------
def record_path(output: Path, name: str) -> Path:
    return output / RECORDS / f"{name}.json"


def finished(output: Path, job: Job) -> bool:
    """Whether ``job`` is done (its record says so)."""
    path = record_path(output, job.name)
    return path.is_file() and read_json(path).get("status") == "done"


def _engine(job: Job, out: Path, priors: dict):
    """The engine of ``job`` in ``out``, resuming what an earlier run of the batch left there."""
    from nerfgen.api import training

    resume, options, entry = has_checkpoint(out), dict(job.options), spec(job.kind)
    if not entry.shares_prior:
        return training(job.kind, job.target, out, job.config, resume, **options)
    key = (job.config, options.get("prior"), options.get("model"))
    engine = training(job.kind, job.target, out, job.config, resume, loaded_prior=priors.get(key), **options)
    priors[key] = engine.task.prior  # loaded once a rank, shared by its items
    return engine


def run_job(job: Job, out: Path, priors: dict) -> dict[str, Any]:
    """Train ``job`` into ``out`` on this process alone; what its record keeps of it."""
    with distributed.alone():
        engine = _engine(job, out, priors)
        summary = engine.run()
    result = {"steps": summary.steps, "seconds": round(summary.seconds, 1),
              "figures": {k: v for k, v in summary.figures.items() if isinstance(v, (int, float))},
              "totals": summary.totals}
    if spec(job.kind).target == "prompt":
        result["prompt"] = engine.task.prompt
    return result


def run_batch(jobs: list[Job], output: str | Path, world: World | None = None,
              runner: Callable[[Job, Path, dict], dict] = run_job) -> dict | None:
    """Run this rank's share of the pending ``jobs`` into ``output`` (see the module docstring).

    Returns:
        The summary when this rank saw every item finished (it wrote ``summary.json``), else None.
    """
    world = world or distributed.current()
    output = Path(output)
    (output / RECORDS).mkdir(parents=True, exist_ok=True)
    pending = None
    if world.main:  # rank 0's view; a pending item's record from an earlier run (failed) is void
        pending = [job.name for job in jobs if not finished(output, job)]
        for name in pending:
            record_path(output, name).unlink(missing_ok=True)
    pending = world.broadcast_object(pending)
    by_name = {job.name: job for job in jobs}
    priors: dict = {}
    for index in world.share(len(pending)):
        job = by_name[pending[index]]
        out = output / job.name
        print(f"batch: rank {world.rank}: {job.kind.value} {job.target!r} -> {out}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        record = {"name": job.name, "kind": job.kind.value, "target": job.target, "output": str(out),
                  "rank": world.rank}
        try:
            record.update(runner(job, out, priors), status="done")
        except Exception as exc:  # noqa: BLE001 - an item's failure is recorded; the others go on
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc(limit=8))
            print(f"batch: {job.name} failed: {record['error']}", file=sys.stderr, flush=True)
        record["wall_seconds"] = round(time.perf_counter() - start, 1)
        write_json(record_path(output, job.name), record)
        print(json.dumps({k: v for k, v in record.items() if k != "traceback"}), flush=True)
    return write_summary(output, jobs)


def exit_code(summary: dict | None, output: Path) -> int:
    """Say what the summary holds (when this rank wrote it); 1 if an item failed, else 0 (a rank
    that did not see every item finished exits 0: torchrun would stop the ranks still working)."""
    if summary is None:
        return 0
    print(f"wrote {Path(output) / SUMMARY_FILE}: {summary['done']} done, {summary['failed']} failed", file=sys.stderr)
    return 1 if summary["failed"] else 0


def write_summary(output: Path, jobs: list[Job]) -> dict | None:
    """``summary.json`` from the records, once every job has one (whichever rank finishes last
    sees them all; ranks that finish together write the same file). None while some are pending."""
    records = []
    for job in jobs:
        path = record_path(output, job.name)
        if not path.is_file():
            return None
        records.append(read_json(path))
    summary = {"jobs": records, "done": sum(r["status"] == "done" for r in records),
               "failed": sum(r["status"] == "failed" for r in records)}
    write_json(output / SUMMARY_FILE, summary)
    return summary


__all__ = ["Job", "KINDS", "SUMMARY_FILE", "exit_code", "prompt_jobs", "read_jobs", "run_batch", "run_job"]
