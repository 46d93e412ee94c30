"""`nerfgen eval` as a person runs it: LPIPS from local weight files beside PSNR/SSIM (none without
them), one clear error for a bad weights file, and Python warnings printed as one line each."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from nerfgen.scenes import render_dataset

from nerfgen.api import reconstruction
from nerfgen.cli import main
from nerfgen.data import load_dataset
from nerfgen.reconstruct.lpips import load_lpips_weights, lpips
from nerfgen.reconstruct.task import composite, shown_on
from nerfgen.render import OccGridConfig, background_color
from nerfgen.kinds import load_run
from tests.test_lpips import backbone_state, linear_state

SMALL = {"field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 128},
         "grid": OccGridConfig(resolution=16), "target_samples": 4096, "eval_every": 0, "checkpoint_every": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run on a rendered tabletop (48x48 images: LPIPS needs 31 pixels a side) and random
    LPIPS weights in both real file formats."""
    root = tmp_path_factory.mktemp("eval")
    data = render_dataset(root / "tabletop", width=48, height=48, n_train=6, n_val=1, n_test=3, samples_per_side=1)
    reconstruction(data, root / "run", "ngp", max_steps=10, **SMALL).run()
    torch.save(backbone_state(), root / "alexnet-owt-7be5be79.pth")
    torch.save(linear_state(), root / "alex.pth")
    return data, root / "run", (root / "alexnet-owt-7be5be79.pth", root / "alex.pth")


def _nerfgen(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def test_eval_with_lpips_weights_reports_lpips_beside_psnr_and_ssim(trained, capfd):
    data, run, (backbone, linear) = trained
    assert _nerfgen("eval", str(run), "--device", "cpu", "--lpips-weights", str(backbone), str(linear)) == 0
    out = capfd.readouterr().out
    report = json.loads((run / "eval_test.json").read_text())
    assert f"LPIPS {report['lpips']:.4f}" in out and "PSNR" in out and "SSIM" in out, out
    assert report["views"] == 3 and len(report["per_view"]) == 3 and 0 < report["lpips"] < 2
    assert report["lpips"] == pytest.approx(sum(v["lpips"] for v in report["per_view"]) / 3)
    assert report["lpips_weights"] == [str(backbone), str(linear)]

    dataset = load_dataset(data, "test")  # the number is LPIPS of the render against the ground truth
    bg = background_color(shown_on(dataset))
    image = load_run(run, "cpu").render(dataset.camera(0), 0, bg).rgb
    expected = lpips(image, composite(dataset.image(0), bg), load_lpips_weights(backbone, linear))
    assert report["per_view"][0]["lpips"] == pytest.approx(expected, rel=1e-5)

    assert _nerfgen("eval", str(run), "--device", "cpu") == 0  # without the option: nothing about LPIPS
    out = capfd.readouterr().out
    report = json.loads((run / "eval_test.json").read_text())
    assert "LPIPS" not in out and "lpips" not in json.dumps(report)


def test_a_bad_lpips_file_is_one_error_before_anything_is_rendered(trained, tmp_path, capfd):
    _, run, (backbone, linear) = trained
    bad = tmp_path / "alex.pth"
    torch.save({"lin0.model.1.weight": torch.zeros(1, 32, 1, 1)}, bad)
    assert _nerfgen("eval", str(run), "--split", "val", "--lpips-weights", str(backbone), str(bad)) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"nerfgen eval: error: {bad}: expected the lpips package's linear layers"), err
    assert "'lin0.model.1.weight' of shape [1, 64, 1, 1], got [1, 32, 1, 1]" in err and "Traceback" not in err
    assert not (run / "eval_val.json").exists()
    assert _nerfgen("eval", str(run), "--lpips-weights", str(tmp_path / "none.pth"), str(linear)) == 2
    assert f"{tmp_path / 'none.pth'}: LPIPS weights not found" in capfd.readouterr().err


def test_warnings_are_printed_as_one_line_each(trained, tmp_path, capfd):
    data, run, _ = trained
    copy = tmp_path / "tabletop"
    shutil.copytree(data, copy)
    frames = json.loads((copy / "transforms_test.json").read_text())["frames"]
    missing = frames[1]["file_path"]
    (copy / f"{missing}.png").unlink()
    shown = warnings.showwarning
    assert _nerfgen("eval", str(run), "--data", str(copy), "--device", "cpu") == 0
    assert warnings.showwarning is shown  # the library's warnings stay Python warnings outside the command
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "warning" in line.lower()]
    assert lines == [f"nerfgen: warning: {copy / 'transforms_test.json'}: skipping 1 of 3 frames whose image "
                     f"file is missing: {missing}"], err
    assert "DatasetWarning" not in err and ".py:" not in err
