"""A generalizable run end to end, tiny: trained on two captures, it renders a third scene (held-out
shapes and colours) from its source views better than it did untrained and better than the empty
background; the run directory reopens, renders through the command line, evaluates, fine-tunes
with ``nerfgen train --init`` and resumes."""

from __future__ import annotations

import json
import math

import pytest
import torch

import nerfgen
from nerfgen.engine.metrics import psnr
from nerfgen.generalize.evaluate import evaluate_capture
from nerfgen.generalize.sources import SourceViews
from nerfgen.scenes.multiview import MultiViewConfig, write_held_out

TINY = {"pixelnerf": {"encoder": {"widths": [8, 16]},
                      "field": {"width": 32, "blocks_before": 1, "blocks_after": 1, "frequencies": 4},
                      "sampler": {"n_samples": 24}},
        "scenes": {"views": 8, "size": 24, "supersample": 1}, "eval_every": 0, "eval_scenes": 1,
        "scenes_per_step": 2, "rays": 256, "lr": 3e-3, "lr_warmup_steps": 5, "checkpoint_every": 0}
SCENES = MultiViewConfig(views=8, size=24, supersample=1, tabletop_rate=0.0, composition_rate=0.0)


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    root = tmp_path_factory.mktemp("generalize")
    train = write_held_out(root / "train", 2, SCENES, sources=3, seed=1, split="train")
    held = write_held_out(root / "held", 1, SCENES, sources=3, seed=1)
    return root, train, held[0]


@pytest.fixture(scope="module")
def trained(captures):
    root, _, held = captures
    untrained = nerfgen.generalize_training(root / "train", root / "run0", max_steps=1, seed=0, **TINY).task.live_run(
        root / "run0")
    before = evaluate_capture(untrained, held, 3)["psnr"]
    run = nerfgen.train_generalizable(root / "train", root / "run", max_steps=150, seed=0, **TINY)
    return root, run, before


def test_a_tiny_model_learns_on_two_scenes_and_renders_a_third(captures, trained):
    _, _, held = captures
    root, run, before = trained
    after = evaluate_capture(run, held, 3)
    test = nerfgen.load_dataset(held, "test")
    empty = sum(psnr(torch.ones(24, 24, 3), test.image(i).float()[..., :3] / 255 * (test.image(i)[..., 3:] / 255)
                     + (1 - test.image(i)[..., 3:] / 255)) for i in range(len(test))) / len(test)
    assert after["psnr"] > before + 3, (before, after)
    assert after["psnr"] > empty + 1.5, (empty, after)  # it renders the object, not only the white behind it


def test_the_run_reopens_renders_from_any_sources_and_evaluates_on_the_command_line(captures, trained, capsys):
    _, _, held = captures
    root, run, _ = trained
    again = nerfgen.load_run(root / "run", device="cpu")
    assert isinstance(again, nerfgen.GeneralRun) and isinstance(again, nerfgen.Renderable)
    assert again.info.sources.capture == str((root / "run" / "held_out" / "scene_000").resolve())
    cams = again.orbit_cameras(4, 24)
    image = again.render(cams, 1)
    assert image.rgb.shape == (24, 24, 3) and bool(torch.isfinite(image.rgb).all())
    from nerfgen.cli import main

    with pytest.raises(SystemExit) as code:
        main(["generalize", "render", str(root / "run"), "--data", str(held), "--sources", "0", "2",
              "--targets", "0", "3", "--output", str(root / "pngs"), "--device", "cpu"])
    assert code.value.code == 0 and sorted(p.name for p in (root / "pngs").iterdir()) == ["000.png", "003.png"]
    with pytest.raises(SystemExit) as code:
        main(["generalize", "eval", str(root / "run"), "--data", str(root / "train"), "--k", "1", "3",
              "--device", "cpu"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{\"k\"")]
    assert code.value.code == 0 and [x["k"] for x in lines] == [1, 3] and all(math.isfinite(x["psnr"]) for x in lines)
    assert (root / "run" / "eval_generalize.json").is_file()
    with pytest.raises(SystemExit) as code:
        main(["generalize", "render", str(root / "run"), "--data", str(held), "--sources", "0", "9", "--orbit",
              "--output", str(root / "o.mp4"), "--device", "cpu"])
    assert code.value.code == 2
    assert f"{held.resolve()}: source view 9 out of range: the train split has 3 views" in capsys.readouterr().err


def left_out_psnr(run, capture) -> float:
    """PSNR of each of the capture's training views rendered from the other two: what fine-tuning
    fits (its held-out test views move by noise after a few steps of a model this small)."""
    train = nerfgen.load_dataset(capture, "train")
    total = 0.0
    for target in range(3):
        run.use_sources(SourceViews.from_dataset(train, [i for i in range(3) if i != target], run.background),
                        orbit=False)
        rgba = train.image(target).float() / 255
        with torch.no_grad():
            image = run.render(train.camera(target), 0)
        total += float(psnr(image.rgb, rgba[..., :3] * rgba[..., 3:] + run.background * (1 - rgba[..., 3:]))) / 3
    return total


def test_fine_tuning_from_the_run_improves_the_scene_and_resumes(captures, trained):
    _, _, held = captures
    root, run, _ = trained
    before = left_out_psnr(run, held)
    engine = nerfgen.reconstruction(held, root / "ft", init=root / "run", max_steps=40, seed=0, lr=1e-3)
    engine.run()
    tuned = nerfgen.load_run(root / "ft", device="cpu")
    assert tuned.info.sources.indices == [0, 1, 2] and tuned.info.config.finetune.init == str((root / "run").resolve())
    after = left_out_psnr(tuned, held)
    assert after > before + 0.3, (before, after)
    more = nerfgen.reconstruction(None, root / "ft", resume=True, max_steps=45)
    assert more.step == 40
    more.run()
    assert more.step == 45
    with pytest.raises(ValueError, match="takes none of field"):
        nerfgen.reconstruction(held, root / "ft2", init=root / "run", field="ngp")


def test_the_viewer_shows_the_source_views_and_renders_from_a_subset(captures, trained):
    pytest.importorskip("viser")
    from nerfgen.viewer import Viewer, ViewerScene
    from nerfgen.viewer.sources_panel import SourcesPanel

    root, _, _ = trained
    run = nerfgen.load_run(root / "run", device="cpu")
    scene = ViewerScene.from_run(run)
    assert len(scene.train_cameras) == 3 and scene.thumbnails[0].shape == (24, 24, 3) and "normals" not in scene.modes
    viewer = Viewer(scene, port=0, max_resolution=32)
    try:
        panel = viewer.sources_panel
        assert isinstance(panel, SourcesPanel) and len(panel.boxes) == 3
        cams = run.orbit_cameras(4, 24)
        all_three = run.render(cams, 0).rgb
        renders = []
        panel.changed = lambda: renders.append(run.render(cams, 0).rgb)
        panel.boxes[1].value = False  # viser calls the box's callback: the panel applies it
        panel.apply()
        assert len(run.features) == 2 and not torch.allclose(renders[-1], all_three)
        assert panel.status.content == "rendering from 2 of 3 source views"
        for box in panel.boxes:  # down to view 2 alone, then none: refused, view 2 stays
            box.value = False
        panel.apply()
        assert "at least one" in panel.status.content and len(run.features) == 1
        assert torch.equal(run.features.cameras.c2w, panel.views.cameras.c2w[2:])
    finally:
        viewer.stop()
