"""nerfgen.files: atomic writes whose files and folders get the modes the user's umask gives."""

from __future__ import annotations

import contextlib
import os
import stat

import numpy as np
import pytest
import torch
from nerfgen.scenes import render_dataset
from nerfgen.scenes.object_views import ObjectViewsConfig, render_object_views

from nerfgen.files import (
    atomic_write,
    make_temp_dir,
    make_temp_file,
    read_json,
    read_tensors,
    write_json,
    write_tensors,
)


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=oct)
def test_write_json_follows_the_umask(tmp_path, mask, expected):
    path = tmp_path / "run" / "meta.json"
    with umask(mask):
        write_json(path, {"a": 1})
    assert mode(path) == expected
    assert read_json(path) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["meta.json"], "temporary file left behind"


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600)], ids=oct)
def test_write_tensors_follows_the_umask(tmp_path, mask, expected):
    path = tmp_path / "model.safetensors"
    with umask(mask):  # safetensors itself would leave a fresh 0o600 file whatever the umask
        write_tensors(path, {"w": torch.arange(3.0)})
    assert mode(path) == expected
    assert torch.equal(read_tensors(path)["w"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_temp_file_and_folder_are_hidden_siblings_with_umask_modes(tmp_path):
    with umask(0o022):
        file, folder = make_temp_file(tmp_path / "orbit.mp4"), make_temp_dir(tmp_path / "tabletop")
    assert file.parent == folder.parent == tmp_path
    assert file.name.startswith(".orbit.mp4.") and file.suffix == ".mp4" and file.stat().st_size == 0
    assert folder.name.startswith(".tabletop.tmp-") and folder.is_dir()
    assert (mode(file), mode(folder)) == (0o644, 0o755)
    assert make_temp_file(tmp_path / "orbit.mp4") != file, "a second temp file needs a fresh name"


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "meta.json"
    write_json(path, {"old": True})

    def half_write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write('{"new": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_write)
    assert read_json(path) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=["umask022", "umask077"])  # 077: a fixed chmod(0o755) fails
def test_rendered_dataset_folder_follows_the_umask(tmp_path, mask):
    with umask(mask):
        root = render_dataset(tmp_path / "tabletop", width=8, height=8, n_train=2, n_val=1, n_test=1,
                              samples_per_side=1)
    assert mode(root) == 0o777 & ~mask  # 0o755 under umask 022
    assert mode(root / "transforms_train.json") == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["tabletop"], "temporary folder left behind"


def test_object_views_cache_follows_the_umask(tmp_path):
    config = ObjectViewsConfig(n_objects=1, views_per_object=1, resolution=8, supersample=1)
    path = tmp_path / "views.npz"
    with umask(0o022):
        views = render_object_views(path, config)
    assert mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["views.npz"]
    with np.load(path) as f:
        assert str(f["config"]) == config.stamp()
        np.testing.assert_array_equal(f["images"], views.images)
