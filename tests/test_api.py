"""The public API as the README shows it: its Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import trimesh

import nerfgen

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The README's Python example (the block after "## Python API")."""
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    run = nerfgen.load_run(tmp_path / "runs" / "api" / "run")
    assert run.info.kind == "reconstruction" and run.info.background == "white"
    assert iio.imread(tmp_path / "runs" / "api" / "orbit.mp4").shape == (24, 64, 64, 3)
    assert len(trimesh.load(tmp_path / "runs" / "api" / "mesh.ply").faces) > 0
    assert "rgb" in capsys.readouterr().out


def test_the_public_names_resolve_and_stay_lazy():
    for name in nerfgen.__all__:
        assert getattr(nerfgen, name) is not None, name
    assert "load_run" in dir(nerfgen)
