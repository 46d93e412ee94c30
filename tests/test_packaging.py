"""How nerfgen installs: every package in pyproject, scenes/viewer/configs as parts of nerfgen, the
viewer on the public API only, and a plain (non-editable) install that finds its configs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_and_mapped():
    tool = _setuptools()
    mapped = tool["package-dir"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "nerfgen").rglob("__init__.py")}
    on_disk |= {name for name, folder in mapped.items() if (REPO / folder / "__init__.py").is_file()}
    assert set(tool["packages"]) == on_disk
    assert mapped == {"nerfgen.scenes": "scenes", "nerfgen.viewer": "viewer", "nerfgen.configs": "configs"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


def test_the_viewer_uses_the_public_api_only():
    for path in (REPO / "viewer").glob("*.py"):
        inside = {n for n in _imports(path) if n.startswith("nerfgen")}
        assert inside <= {"nerfgen"} | {n for n in inside if n.startswith("nerfgen.viewer")}, f"{path.name}: {inside}"


def test_nothing_imports_the_bare_top_level_names():
    for path in [*REPO.glob("nerfgen/**/*.py"), *REPO.glob("scenes/*.py"), *REPO.glob("viewer/*.py"),
                 *REPO.glob("tests/*.py"), *REPO.glob("bench/*.py")]:
        bare = {n for n in _imports(path) if n.split(".")[0] in ("scenes", "viewer", "configs")}
        assert not bare, f"{path.relative_to(REPO)} imports {bare}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    return next(out.glob("nerfgen-*.whl"))


def test_the_wheel_holds_only_nerfgen_with_its_configs_and_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"nerfgen"}
    for expected in ("nerfgen/configs/ngp.yaml", "nerfgen/configs/generate_builtin.yaml", "nerfgen/scenes/tabletop.py",
                     "nerfgen/viewer/server.py", "nerfgen/prior/weights/builtin.safetensors"):
        assert expected in names, expected


def test_a_plain_install_finds_its_shipped_configs(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", str(wheel), "--no-deps", "-q", "--target", str(target)],
                   check=True, capture_output=True, timeout=300)
    code = ("import importlib.util, nerfgen; from nerfgen.config import config_path, load_config; "
            "from nerfgen.reconstruct import TrainConfig; import nerfgen.scenes; "
            "assert nerfgen.__file__.startswith(%r), nerfgen.__file__; "
            "assert load_config(TrainConfig, config_path('demo')).eval_every == 500; "
            "assert importlib.util.find_spec('scenes') is None and importlib.util.find_spec('viewer') is None; "
            "print('ok')" % str(target))
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.append({sysconfig_paths()!r}); {code}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def sysconfig_paths() -> str:
    """site-packages of this interpreter (torch, yaml, ...) without the editable nerfgen."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]
