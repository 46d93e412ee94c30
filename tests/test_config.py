"""Tests of nerfgen.config: typed config building, its error messages, YAML reading and overrides."""

from __future__ import annotations

import dataclasses
import doctest
import json
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import pytest

import nerfgen.config
from nerfgen.config import (ConfigWarning, build_config, check_device, config_to_dict, load_config, read_yaml,
                            stored_config)

VALIDATED: list[str] = []  # the sources Grid.validate was called with


@dataclass
class Grid:
    """A nested config whose validate hook records its source and checks a cross-field rule."""

    resolution: int = 64
    """Cells per side."""
    step: float = 0.01
    """Marching step."""

    def validate(self, source: str) -> None:
        """Resolution must be positive."""
        VALIDATED.append(source)
        if self.resolution <= 0:
            raise ValueError(f"{source}: resolution: expected a positive integer, got {self.resolution}")


@dataclass
class Camera:
    """A nested config with tuples and a device."""

    fov: tuple[float, float] = (40.0, 50.0)
    """Field of view range."""
    sizes: tuple[int, ...] = (32,)
    """Render sizes."""
    device: str = "auto"
    """Device name."""

    def validate(self, source: str) -> None:
        """The device must be a known name."""
        check_device(self.device, source)


@dataclass
class Run:
    """A top-level config with one field of each supported annotation."""

    name: str = "run"
    steps: int = 100
    lr: float = 0.01
    carve: bool = True
    background: Literal["auto", "random", "white", "black"] = "auto"
    shading: Literal["albedo", "lambertian"] | None = None
    seed: Optional[int] = None
    levels: list[int] = field(default_factory=lambda: [1, 2])
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    extra: Any = None
    t_max: float | tuple[float, float] = 0.98
    grid: Grid = field(default_factory=Grid)
    camera: Camera = field(default_factory=Camera)

    def validate(self, source: str) -> None:
        """At least one step."""
        if self.steps < 1:
            raise ValueError(f"{source}: steps: expected at least 1, got {self.steps}")


@dataclass
class Required:
    """A config with a field that has no default."""

    path: str
    count: int = 1


def _error(values: Any, source: str = "configs/x.yaml", cls: type = Run) -> str:
    """The message of the single ValueError that building ``values`` raises (no chained traceback)."""
    with pytest.raises(ValueError) as info:
        build_config(cls, values, source)
    exc = info.value
    assert exc.__context__ is None or exc.__suppress_context__, "the error must come alone, not chained"
    message = str(exc)
    assert "\n" not in message
    return message


def test_defaults_when_no_values() -> None:
    assert build_config(Run, None, "defaults") == Run()
    assert build_config(Run, {}, "defaults") == Run()


def test_values_are_converted() -> None:
    config = build_config(Run, {
        "steps": 3.0, "lr": 1, "levels": (1, 2.0), "tags": ["a"], "t_max": [0.9, 0.5],
        "seed": 7, "shading": "albedo", "background": "white", "extra": {"x": [1]},
        "camera": {"fov": [30, 35], "sizes": [16, 32, 64.0], "device": "cuda:1"},
    }, "configs/x.yaml")
    assert config.steps == 3 and type(config.steps) is int
    assert config.lr == 1.0 and type(config.lr) is float
    assert config.levels == [1, 2] and all(type(v) is int for v in config.levels)
    assert config.t_max == (0.9, 0.5) and isinstance(config.t_max, tuple)
    assert config.camera.fov == (30.0, 35.0) and all(type(v) is float for v in config.camera.fov)
    assert config.camera.sizes == (16, 32, 64) and all(type(v) is int for v in config.camera.sizes)
    assert (config.seed, config.shading, config.background, config.extra) == (7, "albedo", "white", {"x": [1]})
    assert config.tags == ["a"] and config.camera.device == "cuda:1"


def test_partial_nested_values_keep_defaults() -> None:
    config = build_config(Run, {"grid": {"resolution": 32}}, "configs/x.yaml")
    assert config.grid == Grid(resolution=32, step=0.01)
    assert config.camera == Camera()


def test_union_members_tried_in_order() -> None:
    assert build_config(Run, {"t_max": 0.5}, "s").t_max == 0.5
    assert build_config(Run, {"t_max": 1}, "s").t_max == 1.0
    assert build_config(Run, {"seed": None, "shading": None}, "s") == Run()


def test_dict_is_copied_and_values_unchecked() -> None:
    options = {"n_levels": 8, "anything": [1, "two"]}
    config = build_config(Run, {"options": options}, "s")
    assert config.options == options and config.options is not options


def test_nested_instance_passes_through() -> None:
    grid = Grid(resolution=8)
    assert build_config(Run, {"grid": grid}, "s").grid is grid


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"background": "whte"},
         "configs/x.yaml: background: expected one of 'auto', 'random', 'white', 'black', got 'whte'"),
        ({"carve": 1}, "configs/x.yaml: carve: expected true or false, got 1"),
        ({"carve": "yes"}, "configs/x.yaml: carve: expected true or false, got 'yes'"),
        ({"steps": True}, "configs/x.yaml: steps: expected an integer, got True"),
        ({"steps": 2.5}, "configs/x.yaml: steps: expected an integer, got 2.5"),
        ({"steps": "10"}, "configs/x.yaml: steps: expected an integer, got '10'"),
        ({"lr": False}, "configs/x.yaml: lr: expected a finite number, got False"),
        ({"lr": "fast"}, "configs/x.yaml: lr: expected a finite number, got 'fast'"),
        ({"lr": "1e-3"}, "configs/x.yaml: lr: expected a finite number, got '1e-3' (YAML reads"),
        ({"name": 3}, "configs/x.yaml: name: expected a string, got 3"),
        ({"shading": "phong"}, "configs/x.yaml: shading: expected one of 'albedo', 'lambertian' or null, got 'phong'"),
        ({"seed": "0"}, "configs/x.yaml: seed: expected an integer or null, got '0'"),
        ({"levels": "1,2"}, "configs/x.yaml: levels: expected a list of integers, got '1,2'"),
        ({"levels": [1, "a"]}, "configs/x.yaml: levels: expected a list of integers, got [1, 'a']"),
        ({"tags": [1]}, "configs/x.yaml: tags: expected a list of strings, got [1]"),
        ({"options": [1]}, "configs/x.yaml: options: expected a mapping, got [1]"),
        ({"t_max": "x"}, "configs/x.yaml: t_max: expected a finite number or a list of 2 finite numbers, got 'x'"),
        ({"grid": 5}, "configs/x.yaml: grid: expected a mapping of Grid options, got 5"),
        ({"grid": {"resolution": "high"}}, "configs/x.yaml: grid.resolution: expected an integer, got 'high'"),
        ({"camera": {"fov": "wide"}}, "configs/x.yaml: camera.fov: expected a list of 2 finite numbers, got 'wide'"),
        ({"camera": {"fov": [1, 2, 3]}}, "configs/x.yaml: camera.fov: expected a list of 2 finite numbers, got [1, 2, 3]"),
        ({"camera": {"fov": [1, "x"]}}, "configs/x.yaml: camera.fov: expected a list of 2 finite numbers, got [1, 'x']"),
        ({"camera": {"sizes": [1.5]}}, "configs/x.yaml: camera.sizes: expected a list of integers, got [1.5]"),
    ],
)
def test_bad_value_gives_one_clear_error(values: dict[str, Any], expected: str) -> None:
    assert _error(values).startswith(expected)


def test_unknown_top_level_key_lists_options() -> None:
    names = sorted(f.name for f in dataclasses.fields(Run))
    assert _error({"learning_rate": 0.1}) == (
        f"configs/x.yaml: unknown option 'learning_rate' for Run; expected one of {names}")


def test_unknown_nested_key_names_dotted_path() -> None:
    message = _error({"grid": {"resolutoin": 32}})
    assert message == "configs/x.yaml: unknown option 'grid.resolutoin' for Grid; did you mean 'grid.resolution'?"
    assert _error({"grid": {"size": 32}}) == (
        "configs/x.yaml: unknown option 'grid.size' for Grid; expected one of ['resolution', 'step']")


@pytest.mark.parametrize(("values", "expected"), [
    ({"stpes": 3}, "unknown option 'stpes' for Run; did you mean 'steps'?"),
    ({"backgound": "white"}, "unknown option 'backgound' for Run; did you mean 'background'?"),
    ({"resolution": 8}, "unknown option 'resolution' for Run; did you mean 'grid.resolution'?"),  # one level too high
    ({"grid_step": 0.1}, "unknown option 'grid_step' for Run; did you mean 'grid.step'?"),
    ({"camera": {"fvo": [1, 2]}}, "unknown option 'camera.fvo' for Camera; did you mean 'camera.fov'?"),
    ({"tag": ["a"]}, "unknown option 'tag' for Run; did you mean 'tags'?"),
])
def test_unknown_keys_get_did_you_mean(values: dict[str, Any], expected: str) -> None:
    assert _error(values) == f"configs/x.yaml: {expected}"


@dataclass
class OldGrid(Grid):
    """A section that declares a key it inherits unused, and one an earlier version wrote."""

    unused_keys: ClassVar[dict[str, str]] = {"step": "this grid has a fixed step", "cascades": "never read"}


@dataclass
class Kind(Run):
    """A kind of run that does not read ``lr`` (inherited) nor ``legacy`` (written once)."""

    unused_keys: ClassVar[dict[str, str]] = {"lr": "this kind has no optimiser; 'lr' does nothing",
                                             "legacy": "an earlier key"}
    grid: OldGrid = field(default_factory=OldGrid)


def test_declared_unused_keys_are_rejected_with_their_reason() -> None:
    assert _error({"lr": 0.1}, cls=Kind) == "configs/x.yaml: lr: this kind has no optimiser; 'lr' does nothing"
    assert _error({"legacy": 1}, cls=Kind) == "configs/x.yaml: legacy: an earlier key"
    assert _error({"grid": {"step": 0.1}}, cls=Kind) == "configs/x.yaml: grid.step: this grid has a fixed step"
    assert "'lr'" not in _error({"lrr": 1}, cls=Kind)  # no suggestion of a key the kind does not use
    with pytest.raises(ValueError, match="^command line: lr: this kind has no optimiser"):
        load_config(Kind, None, {"lr": 0.5})
    plain = config_to_dict(build_config(Kind, {"steps": 3}, "s"))
    assert "lr" not in plain and "step" not in plain["grid"] and plain["steps"] == 3
    assert build_config(Kind, plain, "s") == build_config(Kind, {"steps": 3}, "s")


def test_stored_configs_drop_what_earlier_versions_wrote_with_one_warning() -> None:
    old = {**config_to_dict(Run(steps=4)), "legacy": 2, "grid": {"resolution": 8, "step": 0.5, "cascades": 2}}
    with pytest.warns(ConfigWarning) as caught:
        config = stored_config(Kind, old, "runs/a/run.json: config", {"steps": 9, "grid": {"resolution": 16}})
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("runs/a/run.json: config: left out 'lr', 'grid.step', 'grid.cascades', 'legacy'")
    assert (config.steps, config.grid.resolution, config.grid.step) == (9, 16, Grid().step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to drop: no warning
        assert stored_config(Kind, config_to_dict(config), "s") == config
    with pytest.raises(ValueError, match=r"^runs/a/run.json: unknown option 'stepz' for Kind; did you mean 'steps'\?"):
        stored_config(Kind, {"stepz": 1}, "runs/a/run.json")
    with pytest.raises(ValueError, match="^command line: unknown option 'stepz'"):
        stored_config(Kind, {}, "runs/a/run.json", {"stepz": 1})
    with pytest.raises(ValueError, match="^runs/a/run.json: expected a mapping of Kind options"):
        stored_config(Kind, [1], "runs/a/run.json")


def test_missing_required_option() -> None:
    assert _error({"count": 2}, cls=Required) == "configs/x.yaml: missing option 'path' for Required"
    assert build_config(Required, {"path": "a"}, "s") == Required(path="a")


def test_values_must_be_a_mapping() -> None:
    assert _error([1, 2], source="command line").startswith("command line: expected a mapping of Run options")


def test_build_needs_a_dataclass() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        build_config(dict, {}, "s")


def test_validate_hook_called_for_top_level_and_nested() -> None:
    VALIDATED.clear()
    build_config(Run, {"grid": {"resolution": 8}}, "configs/x.yaml")
    assert VALIDATED == ["configs/x.yaml: grid"]
    assert _error({"steps": 0}) == "configs/x.yaml: steps: expected at least 1, got 0"
    assert _error({"grid": {"resolution": 0}}) == "configs/x.yaml: grid: resolution: expected a positive integer, got 0"
    assert _error({"camera": {"device": "gpu"}}).startswith(
        "configs/x.yaml: camera: device: expected one of 'auto', 'cpu', 'cuda', 'cuda:N'")


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_check_device_accepts(device: str) -> None:
    check_device(device, "s")


@pytest.mark.parametrize("device", ["gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", 0, None])
def test_check_device_rejects(device: Any) -> None:
    with pytest.raises(ValueError) as info:
        check_device(device, "command line", key="train.device")
    assert str(info.value) == (
        f"command line: train.device: expected one of 'auto', 'cpu', 'cuda', 'cuda:N' (N a GPU index), got {device!r}")


def test_config_to_dict_is_plain_and_builds_back() -> None:
    config = build_config(Run, {"t_max": [0.9, 0.5], "camera": {"fov": [30, 35]}}, "s")
    values = config_to_dict(config)
    assert values["camera"]["fov"] == [30.0, 35.0] and values["t_max"] == [0.9, 0.5]
    assert values["grid"] == {"resolution": 64, "step": 0.01}
    assert json.loads(json.dumps(values)) == values
    assert build_config(Run, values, "s") == config
    with pytest.raises(TypeError):
        config_to_dict(Run)


def test_read_yaml(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("steps: 5\ngrid: {resolution: 8}\n")
    assert read_yaml(path) == {"steps": 5, "grid": {"resolution": 8}}
    path.write_text("# only a comment\n")
    assert read_yaml(str(path)) == {}


def test_read_yaml_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError) as info:
        read_yaml(path)
    assert str(info.value) == f"{path}: config file not found"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("steps: [1, 2\n", "malformed YAML ("), ("a: b: c\n", "malformed YAML ("),
     ("- 1\n- 2\n", "expected a mapping of options at the top level, got list"),
     ("just text\n", "expected a mapping of options at the top level, got str")],
)
def test_read_yaml_bad_file_names_it(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_yaml(path)
    assert str(info.value).startswith(f"{path}: {expected}")


def test_load_config_defaults_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("steps: 5\nlr: 0.1\ngrid: {resolution: 8}\n")
    assert load_config(Run, None) == Run()
    assert load_config(Run, None, {"steps": 7}).steps == 7
    config = load_config(Run, path, {"steps": None, "lr": 2, "name": None})
    assert (config.steps, config.lr, config.name, config.grid.resolution) == (5, 2.0, "run", 8)


def test_load_config_errors_name_their_source(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("background: whte\n")
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: background: expected one of")):
        load_config(Run, path)
    with pytest.raises(ValueError, match="^defaults: steps: expected at least 1"):
        load_config(Run, None, {"steps": 0})
    with pytest.raises(ValueError, match="^command line: steps: expected an integer, got 'many'"):
        load_config(Run, None, {"steps": "many"})
    with pytest.raises(ValueError, match="^command line: unknown option 'stepz' for Run"):
        load_config(Run, path, {"stepz": 3})
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(Run, tmp_path / "nope.yaml")


def test_module_example_runs() -> None:
    result = doctest.testmod(nerfgen.config)
    assert result.attempted >= 2 and result.failed == 0


def test_module_imports_without_torch() -> None:
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('cfg', {nerfgen.config.__file__!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "assert 'torch' not in sys.modules, 'nerfgen.config imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_set_overrides_reach_nested_sections_and_keep_the_rest(tmp_path):
    from nerfgen.config import load_config, parse_overrides
    from nerfgen.reconstruct import TrainConfig

    given = parse_overrides(["depth.weight=0.1", "camera_opt.mode=SO3xR3", "train_views=5", "lr=1e-3"])
    assert given == {"depth": {"weight": 0.1}, "camera_opt": {"mode": "SO3xR3"}, "train_views": 5, "lr": 1e-3}
    path = tmp_path / "c.yaml"
    path.write_text("depth: {sigma: 0.2}\nlr: 0.05\n")
    cfg = load_config(TrainConfig, path, given)
    assert (cfg.depth.weight, cfg.depth.sigma, cfg.camera_opt.mode, cfg.train_views, cfg.lr) == (0.1, 0.2, "SO3xR3", 5, 1e-3)
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides(["depth.weight"])
    with pytest.raises(ValueError, match="command line: unknown option 'depth.wieght' for DepthLossConfig"):
        load_config(TrainConfig, path, parse_overrides(["depth.wieght=1"]))
