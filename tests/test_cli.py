"""The command line: help texts, and bad input failing with one clear error and no run directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _nerfgen(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nerfgen", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.mark.parametrize("command", ["train", "eval", "render", "demo"])
def test_help_explains_every_option(command):
    out = _nerfgen(command, "--help")
    assert out.returncode == 0
    assert "usage: nerfgen " + command in out.stdout


def _blender(tmp_path, frames):
    root = tmp_path / "scene"
    root.mkdir()
    (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    return root


@pytest.mark.parametrize("case,expected", [
    ("missing", "dataset path not found"),
    ("malformed", "transforms_train.json"),
    ("nan_pose", "transforms_train.json"),
    ("empty", "transforms_train.json"),
])
def test_bad_input_one_error_and_no_run_directory(tmp_path, case, expected):
    if case == "missing":
        data = tmp_path / "nowhere"
    elif case == "malformed":
        data = tmp_path / "scene"
        data.mkdir()
        (data / "transforms_train.json").write_text('{"camera_angle_x": 0.7, "frames": [')
    elif case == "nan_pose":
        pose = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]]
        data = _blender(tmp_path, [{"file_path": "./r_0", "transform_matrix": pose}])
    else:
        data = _blender(tmp_path, [])
    out = _nerfgen("train", str(data), "--output", str(tmp_path / "run"))
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()


def test_eval_of_a_missing_run_names_it(tmp_path):
    out = _nerfgen("eval", str(tmp_path / "norun"))
    assert out.returncode == 2
    assert "norun" in out.stderr and "run.json" in out.stderr


def test_demo_runs_end_to_end_through_the_parser(tmp_path, monkeypatch, capfd):
    """`nerfgen demo` (the README's first command) chains train, eval, render and export through
    the same parser as the commands themselves; a smaller scene keeps it quick."""
    import imageio.v3 as iio
    import trimesh

    from nerfgen import scenes
    from nerfgen.cli import main

    full = scenes.render_dataset
    monkeypatch.setattr(scenes, "render_dataset", lambda out, seed: full(
        out, seed=seed, width=40, height=40, n_train=12, n_val=2, n_test=3, samples_per_side=1))
    with pytest.raises(SystemExit) as done:
        main(["demo", "--output", str(tmp_path / "demo"), "--max-seconds", "10"])
    assert done.value.code == 0
    root = tmp_path / "demo"
    assert json.loads((root / "run" / "eval_test.json").read_text())["views"] == 3
    assert iio.imread(root / "orbit.mp4").shape == (60, 40, 40, 3)  # the frames' own size, not a codec's
    assert len(trimesh.load(root / "mesh.ply").faces) > 0
    out, err = capfd.readouterr()
    assert '"faces"' in out
    assert "warning" not in err.lower(), err  # imageio used to warn (and resize 200x200 orbits to 208x208)


def test_a_device_torch_cannot_see_is_one_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for command in (["render", str(tmp_path), "--orbit", "--output", str(tmp_path / "o.mp4")], ["view", str(tmp_path)],
                    ["eval", str(tmp_path)], ["export", str(tmp_path), "--output", str(tmp_path / "m.ply")]):
        out = _nerfgen(*command, "--device", "cuda")
        assert out.returncode == 2 and "sees no CUDA GPU" in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("command", ["train", "generate", "prior"])
def test_typos_in_configs_name_the_file_the_key_and_the_choices(tmp_path, command):
    bad = tmp_path / "bad.yaml"
    bad.write_text("background: whte\n" if command != "prior" else "unet: {chanels: 8}\n")
    args = {"train": ["train", str(tmp_path), "--output", str(tmp_path / "run"), "--config", str(bad)],
            "generate": ["generate", "a cube", "--output", str(tmp_path / "run"), "--config", str(bad)],
            "prior": ["prior", "train", "--output", str(tmp_path / "run"), "--config", str(bad)]}[command]
    out = _nerfgen(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    expected = "unknown option 'unet.chanels'" if command == "prior" else "background: expected one of"
    assert "bad.yaml" in out.stderr and expected in out.stderr, out.stderr
