"""Data-parallel training and batch jobs on torch.distributed: two CPU ranks with gloo, started
by ``torchrun`` as a user starts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from nerfgen.scenes import render_dataset
from safetensors.torch import load_file

from nerfgen.batch import SUMMARY_FILE, read_jobs, run_batch
from nerfgen.distributed import RankLost, World
from nerfgen.kinds import RunKind
from tests.torchrun import REPO, ok, torchrun

CASES = REPO / "tests" / "dist_cases.py"
STEP_TOLERANCE = 1e-6
"""Largest parameter difference after one full-rate Adam step, two half batches against the whole
batch (measured 2.2e-8: only the order of float sums differs)."""
LEGO_PSNR_GAP = 0.3


def nerfgen(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nerfgen", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tabletop(tmp_path_factory) -> Path:
    return render_dataset(tmp_path_factory.mktemp("dist") / "tabletop", width=48, height=48, n_train=8, n_val=1,
                          n_test=1, samples_per_side=1)


def params(path: Path, prefix: str = "param.") -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(path).items() if k.startswith(prefix)}


def test_one_step_on_two_half_batches_equals_one_process_on_the_whole_batch(tabletop, tmp_path):
    ok(torchrun([str(CASES), "step", str(tabletop), str(tmp_path / "two")]))
    ok(torchrun([str(CASES), "step", str(tabletop), str(tmp_path / "one")], ranks=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    ok(subprocess.run([sys.executable, str(CASES), "step", str(tabletop), str(tmp_path / "plain")], cwd=REPO, env=env,
                      capture_output=True, text=True, timeout=600))
    one, two, other, plain = (params(tmp_path / p) for p in ("one/rank0.safetensors", "two/rank0.safetensors",
                                                             "two/rank1.safetensors", "plain/rank0.safetensors"))
    for key in one:
        assert torch.equal(one[key], plain[key]), f"{key}: one rank under torchrun differs from a plain run"
    start = params(tmp_path / "one/rank0.safetensors", "init.")
    moved = max(float((one[k] - start["init." + k[6:]]).abs().max()) for k in one)
    assert moved > 0.01, f"the step moved no parameter by more than {moved}"  # full rate: Adam moves by ~lr
    for key in one:
        assert torch.equal(two[key], other[key]), f"{key}: the ranks disagree"
        diff = float((one[key] - two[key]).abs().max())
        assert diff <= STEP_TOLERANCE, f"{key}: two ranks differ from one process by {diff}"


def test_gradients_are_averaged_in_buckets_while_backward_runs(tmp_path):
    """Two optimisers from one backward, two steps: what each rank reached is averaged (zeros where
    a rank did not reach it, a sparse table's rows added densely), what no rank reached keeps no
    gradient, and once the buckets follow the order gradients arrive in, some are all-reduced
    before backward ends."""
    ok(torchrun([str(CASES), "reach", "-", str(tmp_path)]))
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    names = [f"layers.{i}.{k}" for i in range(4) for k in ("weight", "bias")] + ["shift", "table", "unused"]
    for step in (0, 1):
        for name in names:
            own = [rank.get(f"own{step}.{name}") for rank in ranks]
            avg = [rank.get(f"avg{step}.{name}") for rank in ranks]
            if all(g is None for g in own):
                assert avg == [None, None], f"step {step}, {name}: no rank reached it, yet it has a gradient"
                continue
            zero = torch.zeros_like(next(g for g in own if g is not None))
            expected = sum(g if g is not None else zero for g in own) / 2
            for r in (0, 1):
                assert torch.equal(avg[r], expected), f"step {step}, {name}, rank {r}: not the mean of the ranks'"
    assert "own0.unused" not in ranks[0] and "own0.shift" not in ranks[1] and "avg0.shift" in ranks[1]
    for r, rank in enumerate(ranks):
        assert int(rank["launched_early1"]) > int(rank["launched_early0"]), f"rank {r}: no bucket overlapped backward"


def test_occupancy_grid_and_parameters_stay_identical_on_every_rank(tabletop, tmp_path):
    ok(torchrun([str(CASES), "grid", str(tabletop), str(tmp_path)]))
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between the ranks"
    assert 0.0 < float(a["grid.binaries"].float().mean()) < 0.9, "the grid updates carved nothing"
    assert float(a["grid.occs"].max()) > 0


def test_gan_generator_and_discriminator_stay_identical_on_every_rank(tmp_path):
    from nerfgen.scenes.gan_sets import render_clevr

    data = render_clevr(tmp_path / "clevr", 12, 16, objects=(1, 3), seed=0, workers=1)
    ok(torchrun([str(CASES), "gan", str(data), str(tmp_path / "out")]))
    a, b = (load_file(tmp_path / "out" / f"rank{r}.safetensors") for r in (0, 1))
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between the ranks"
    assert any(not torch.equal(a[k], a["init." + k[len("param.generator."):]]) for k in a
               if k.startswith("param.generator."))


def test_generation_of_one_prompt_on_two_ranks(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "cube"
    proc = ok(torchrun(["-m", "nerfgen", "generate", "a red cube", "--config", str(config), "--output", str(run)]))
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 4
    state = json.loads((run / "state.json").read_text())
    batch = json.loads((run / "run.json").read_text())["config"]["camera"]["batch"]
    assert state["ranks"] == 2 and state["totals"]["images"] == 2 * 4 * batch  # both ranks' views, every step


def test_a_dead_rank_ends_the_job_with_its_cause_not_a_hang(tabletop, tmp_path):
    proc = torchrun([str(CASES), "die", str(tabletop), str(tmp_path)], timeout=120)
    assert proc.returncode != 0
    cause = proc.stderr.split("Root Cause", 1)[-1]
    assert "rank      : 1" in cause and "exitcode  : 3" in cause, proc.stderr[-3000:]
    assert not (tmp_path / "rank0.safetensors").exists()


GLOO_RESET = ("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:13227: Connection "
              "reset by peer. This is typically caused by a remote worker hanging or bugs in the application.")
GLOO_TIMEOUT = ("[/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 5000ms for recv "
                "operation to complete")  # both as torch 2.13's gloo said them when the other rank died / hung


@pytest.mark.parametrize("error, lost", [
    (torch.distributed.DistBackendError("NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited"), True),
    (torch.distributed.DistNetworkError("Connection reset by peer"), True),
    (torch.distributed.DistStoreError("Timed out after 1801 seconds waiting for clients. 1/2 clients joined."), True),
    (RuntimeError(GLOO_RESET), True),
    (RuntimeError(GLOO_TIMEOUT), True),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), False),
    (RuntimeError("Tensors must be contiguous"), False),
    (ValueError("Unsupported reduce op"), False),
])
def test_only_the_backends_errors_count_as_a_lost_rank(monkeypatch, error, lost):
    def collective(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch.distributed, "all_reduce", collective)
    world = World(rank=1, size=2)
    with pytest.raises(Exception) as info:
        world.all_reduce(torch.ones(3))
    if lost:
        assert isinstance(info.value, RankLost) and info.value.__cause__ is error
        assert "rank 1 of 2: all_reduce with the other ranks failed" in str(info.value)
    else:
        assert info.value is error  # as itself: out of memory is this rank's own trouble


def test_resume_on_a_different_number_of_ranks(tabletop, tmp_path):
    run = tmp_path / "run"
    common = ["--config", "demo", "--device", "cpu", "--set", "eval_every=0", "--set", "target_samples=4096"]
    proc = ok(torchrun(["-m", "nerfgen", "train", str(tabletop), "--output", str(run), "--max-steps", "20", *common]))
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 20  # one line: rank 0 reports
    assert len([line for line in proc.stdout.splitlines() if line.startswith("{")]) == 1
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 20 and state["ranks"] == 2
    keys = load_file(run / "checkpoints" / "step-000000020" / "train_state.safetensors").keys()
    assert "rng.generator" in keys and "rng.rank1.generator" in keys  # every rank's stream is kept
    ok(nerfgen(["train", "--resume", "--output", str(run), "--max-steps", "30"]))
    assert json.loads((run / "state.json").read_text())["step"] == 30
    ok(torchrun(["-m", "nerfgen", "train", "--resume", "--output", str(run), "--max-steps", "40"], ranks=2))
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 40 and state["ranks"] == 2


def test_commands_that_run_in_one_process_refuse_torchrun(tabletop, tmp_path):
    proc = torchrun(["-m", "nerfgen", "eval", str(tmp_path / "nothing")], timeout=120)
    assert proc.returncode != 0 and "runs in one process; start it without torchrun" in proc.stderr


def test_two_rank_lego_reaches_the_one_rank_psnr_on_the_same_rays(shared_data, tmp_path):
    """Two ranks of 2^14 samples a step each against one rank of 2^15, 300 steps: the same rays
    (within 10%), the PSNR within LEGO_PSNR_GAP (measured 26.34 dB on two ranks, 26.05 on one)."""
    lego = shared_data / "nerf_synthetic" / "lego"
    common = ["--config", "ngp", "--downscale", "8", "--max-steps", "300", "--set", "eval_every=0",
              "--set", "checkpoint_every=0", "--device", "cpu"]
    ok(torchrun(["-m", "nerfgen", "train", str(lego), "--output", str(tmp_path / "two"), *common,
                 "--set", "target_samples=16384"], timeout=900))
    ok(nerfgen(["train", str(lego), "--output", str(tmp_path / "one"), *common, "--set", "target_samples=32768"],
               timeout=900))
    rays, psnr = {}, {}
    for name in ("one", "two"):
        ok(nerfgen(["eval", str(tmp_path / name), "--every", "8", "--device", "cpu"]))
        psnr[name] = json.loads((tmp_path / name / "eval_test.json").read_text())["psnr"]
        rays[name] = json.loads((tmp_path / name / "state.json").read_text())["totals"]["rays"]
    assert abs(rays["two"] / rays["one"] - 1) < 0.1, f"rays seen {rays}"
    assert psnr["two"] >= psnr["one"] - LEGO_PSNR_GAP, f"test PSNR {psnr}"


# -- batch jobs ------------------------------------------------------------------------------
TINY = {"max_steps": 4, "eval_every": 0, "orbit_frames": 0, "checkpoint_every": 0,
        "grid": {"resolution": 16, "render_step_size": 0.02},
        "field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64}}


def test_four_prompts_over_two_ranks_one_failing_leaves_three_done(tmp_path):
    jobs = tmp_path / "jobs.yaml"
    prompts = ["a red cube", "a blue sphere", "a green torus", "a yellow cylinder"]
    items = [{"generation": p} for p in prompts]
    items[2]["set"] = {"model": str(tmp_path / "no-such-prior")}  # cannot load: this one fails
    jobs.write_text(yaml.safe_dump({"defaults": TINY, "jobs": items}))
    out = tmp_path / "out"
    proc = torchrun(["-m", "nerfgen", "batch", str(jobs), "--output", str(out)])
    assert proc.returncode != 0  # the job says it had a failure, once all of it has run
    summary = json.loads((out / SUMMARY_FILE).read_text())
    status = {r["name"]: (r["status"], r["rank"]) for r in summary["jobs"]}
    assert status == {"00-a-red-cube": ("done", 0), "01-a-blue-sphere": ("done", 1),
                      "02-a-green-torus": ("failed", 0), "03-a-yellow-cylinder": ("done", 1)}
    assert summary["done"] == 3 and summary["failed"] == 1
    assert "no-such-prior" in summary["jobs"][2]["error"]
    for name in ("00-a-red-cube", "01-a-blue-sphere", "03-a-yellow-cylinder"):
        assert json.loads((out / name / "state.json").read_text())["step"] == 4

    # Fixed and run again: the done ones are skipped, the failed one runs (on rank 0 of the two).
    items[2].pop("set")
    jobs.write_text(yaml.safe_dump({"defaults": TINY, "jobs": items}))
    before = (out / "00-a-red-cube" / "state.json").stat().st_mtime_ns
    proc = ok(torchrun(["-m", "nerfgen", "batch", str(jobs), "--output", str(out)]))
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["done"] == 4 and summary["failed"] == 0
    assert (out / "00-a-red-cube" / "state.json").stat().st_mtime_ns == before
    assert proc.stderr.count("batch: rank") == 1


def test_generate_prompts_are_shared_out_over_the_ranks(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\n")
    proc = ok(torchrun(["-m", "nerfgen", "generate", "--prompts", str(prompts), "--config", str(config),
                        "--output", str(tmp_path / "runs")]))
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted((line["prompt"], line["rank"]) for line in lines) == [("a blue sphere", 1), ("a red cube", 0)]
    assert json.loads((tmp_path / "runs" / SUMMARY_FILE).read_text())["done"] == 2


def test_a_batch_in_one_process_records_failures_and_skips_what_is_done(tmp_path):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [{"generation": "a red cube", "name": "cube"},
                                             {"reconstruction": "missing"}]}))
    calls = []

    def runner(job, out, priors):
        calls.append(job.name)
        if job.kind is RunKind.RECONSTRUCTION:
            raise ValueError(f"{job.target}: no capture there")
        return {"steps": 1}

    summary = run_batch(read_jobs(jobs), tmp_path / "out", World(), runner)
    assert [r["status"] for r in summary["jobs"]] == ["done", "failed"] and calls == ["cube", "01-missing"]
    assert str(tmp_path / "missing") in summary["jobs"][1]["target"]  # relative to the jobs file
    run_batch(read_jobs(jobs), tmp_path / "out", World(), runner)
    assert calls == ["cube", "01-missing", "01-missing"]


def test_jobs_are_named_by_the_kind_their_run_json_says_and_old_names_still_read(tmp_path):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n- {train: data/lego}\n- {generate: a red cube}\n- {scene: a cube on a ball}\n"
                    "- {gan: clevr}\n- {prior: null, config: prior}\n")
    with pytest.warns(UserWarning) as warned:
        read = read_jobs(jobs)
    assert [str(w.message).split("jobs.yaml: ")[1] for w in warned] == [
        "jobs[0]: 'train' is now 'reconstruction' (the kind its run.json says)",
        "jobs[1]: 'generate' is now 'generation' (the kind its run.json says)"]
    assert [(j.kind, j.name) for j in read] == [
        (RunKind.RECONSTRUCTION, "00-lego"), (RunKind.GENERATION, "01-a-red-cube"), (RunKind.SCENE, "02-a-cube-on-a-ball"),
        (RunKind.GAN, "03-clevr"), (RunKind.PRIOR, "04-prior")]
    assert read[0].target == str(tmp_path / "data/lego") and read[4].target is None


@pytest.mark.parametrize("text, message", [
    ("jobs: []", "expected a list of jobs"),
    ("jobs: [{generation: a, reconstruction: b}]", "exactly one of"),
    ("jobs: [{generation: a, steps: 3}]", "unknown keys ['steps']"),
    ("jobs: [{generation: a, name: x}, {generation: b, name: x}]", "'x' is repeated"),
    ("jobs: [{prior: somewhere}]", "trains on nothing given"),
    ("job: []", "unknown top-level keys"),
])
def test_jobs_file_mistakes_name_the_file_and_the_job(tmp_path, text, message):
    path = tmp_path / "jobs.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="jobs.yaml") as info:
        read_jobs(path)
    assert message in str(info.value)


def test_a_failed_job_report_keeps_the_crashing_ranks_stack():
    """faulthandler follows a rank's stack with a long list of extension modules; the report of a
    failed job must still show the stack (a plain tail of stderr showed only the list)."""
    from tests.torchrun import failure

    stack = 'Fatal Python error: Aborted\n\nThread 0x1 (most recent call first):\n  File "nerfgen/distributed.py", line 9'
    modules = "\nExtension modules: " + ", ".join(f"module_{i}" for i in range(2000))
    proc = subprocess.CompletedProcess(["torchrun"], -6, stdout="", stderr="[rank1]: start\n" + stack + modules)
    report = failure(proc)
    assert 'File "nerfgen/distributed.py", line 9' in report and "module_1999" in report
