"""The viewer on generated scenes (runs of kind ``scene``): the layout panel moves, turns, scales
and hides the objects of the run's layout and the frame shows it at once; reset and save; scene
frames render in bands, normals included; a headless browser sees the panel and the edited frame.

The run is a two-step scene generation against a toy prior ("a red cube left of a blue sphere"):
its objects are still the fields' initial density blobs, one in each box, which is all an edit
needs to show.
"""

from __future__ import annotations

import math
import os
import time

import pytest
import torch

viser = pytest.importorskip("viser")

from nerfgen.viewer import Viewer, ViewerScene  # noqa: E402
from nerfgen.viewer.frames import MODES, render_view  # noqa: E402
from nerfgen.viewer.layout_panel import EDITED_FILE, LayoutPanel  # noqa: E402

import nerfgen  # noqa: E402
from nerfgen.cameras import Cameras, look_at  # noqa: E402
from nerfgen.config import load_config  # noqa: E402
from nerfgen.generate.config import GenerateConfig  # noqa: E402
from tests.test_viewer_gan import CHROMIUM, Counter, _chromium, _unit  # noqa: E402
from tests.toy_priors import BoxTargetPrior  # noqa: E402

PROMPT = "a red cube left of a blue sphere"  # side by side along y: cube at y < 0, sphere at y > 0
SAME = 1e-4
"""Largest colour change allowed where an edit should change nothing."""


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    cfg = load_config(GenerateConfig, None, {
        "max_steps": 2, "eval_every": 0, "checkpoint_every": 0, "orbit_frames": 0, "mesh_resolution": 0,
        "seed": 0, "device": "cpu", "blob_radius": 0.8, "blob_density": 10.0,
        "camera": {"fov": [40.0, 40.0], "resolution": 16, "distance": [3.2, 3.6], "batch": 1},
        "grid": {"resolution": 16, "render_step_size": 0.02},
        "field_options": {"log2_table_size": 12, "n_levels": 4, "max_resolution": 64},
        "scene": {"batch": 1, "object_batch": 1, "grid_resolution": 32},
    })
    out = tmp_path_factory.mktemp("scene") / "pair"
    nerfgen.generate_scene(PROMPT, out, cfg, loaded_prior=BoxTargetPrior(resolution=16))
    return out


@pytest.fixture
def run(scene_dir):
    """The scene, opened afresh for each test (edits do not carry over)."""
    return nerfgen.load_run(scene_dir, "cpu")


@pytest.fixture(scope="module")
def server():
    s = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield s
    s.stop()


def top_camera(width: int = 48, height: int = 40) -> Cameras:
    """Looking straight down on the scene from 4 units above: image rows follow x, columns y."""
    focal = 0.5 * height / math.tan(0.45)
    c2w = look_at(torch.tensor([0.0, 0.0, 4.0]), torch.zeros(3), torch.tensor([1.0, 0.0, 0.0]))
    return Cameras(c2w=c2w[None], fx=torch.tensor([focal]), fy=torch.tensor([focal]), cx=torch.tensor([width / 2]),
                   cy=torch.tensor([height / 2]), width=width, height=height)


def _pixels(mask, threshold: float = 0.5):
    return mask > threshold


def test_the_scene_has_two_objects_apart_in_the_top_view(run):
    # What the other tests lean on: each object covers pixels of its own, away from the other.
    assert run.info.kind == "scene" and [o.name for o in run.layout.objects] == ["cube", "sphere"]
    shot = run.render_objects(top_camera())
    cube, sphere = _pixels(shot.masks[..., 0]), _pixels(shot.masks[..., 1])
    assert cube.sum() > 20 and sphere.sum() > 20 and not (cube & sphere).any()
    assert (shot.masks[..., 0][sphere] < 1e-6).float().mean() > 0.8  # the cube does not reach the sphere


def test_selecting_an_object_shows_its_values_without_an_edit(run, server):
    run.layout = run.layout.edited(1, rotation=-30.0, size=0.45)
    opened = run.layout
    changed = Counter()
    panel = LayoutPanel(server.gui, run, changed)
    assert panel.object.options == ("cube", "sphere") and panel.object.value == "cube" and panel.k == 0
    cube, sphere = opened.objects
    assert (panel.x.value, panel.y.value, panel.z.value) == pytest.approx(cube.center)
    assert panel.size.value == pytest.approx(cube.size) and not panel.hidden.value
    b = run.config.scene.box
    assert (panel.x.min, panel.x.max, panel.size.min, panel.size.max) == (-b, b, 0.05, b)

    panel.object.value = "sphere"  # as the dropdown sets it
    assert panel.k == 1 and (panel.x.value, panel.y.value, panel.z.value) == pytest.approx(sphere.center)
    assert panel.rotation.value == pytest.approx(330.0) and panel.size.value == pytest.approx(0.45)
    assert "a blue sphere" in panel.prompt.content
    assert changed.calls == 0 and run.layout == opened  # showing values edits nothing


def test_moving_an_object_edits_only_it_and_re_renders_only_where_it_was_and_is(run, server):
    changed = Counter()
    panel = LayoutPanel(server.gui, run, changed)
    cam = top_camera()
    before = run.render_objects(cam)
    cube0, sphere0 = run.layout.objects

    panel.x.value = -0.7
    cube, sphere = run.layout.objects
    assert cube.center == pytest.approx((-0.7, *cube0.center[1:])) and sphere == sphere0 and changed.calls == 1
    after = run.render_objects(cam)
    assert float((after.masks[..., 0] - before.masks[..., 0]).abs().max()) > 0.5  # it moved in the frame
    assert float((after.image.rgb - before.image.rgb).abs().max()) > 0.2
    assert torch.equal(_pixels(after.masks[..., 1]), _pixels(before.masks[..., 1]))
    far = (before.masks[..., 0] < 1e-6) & (after.masks[..., 0] < 1e-6)  # where the cube neither was nor is
    assert far[_pixels(before.masks[..., 1])].float().mean() > 0.8  # most of the sphere
    assert float((after.image.rgb - before.image.rgb).abs()[far].max()) <= SAME
    assert float((after.image.depth - before.image.depth).abs()[far].max()) <= SAME

    panel.x.value = -0.7  # no change: no edit, no render
    assert changed.calls == 1
    panel.y.value, panel.z.value, panel.rotation.value, panel.size.value = -0.6, 0.1, 45.0, 0.4
    cube = run.layout.objects[0]
    assert cube.center == pytest.approx((-0.7, -0.6, 0.1)) and (cube.rotation, cube.size) == pytest.approx((45, 0.4))
    assert run.layout.objects[1] == sphere0 and changed.calls == 5

    panel.object.value = "sphere"
    panel.y.value = 0.9  # the sphere now
    assert run.layout.objects[1].center[1] == pytest.approx(0.9) and run.layout.objects[0] == cube
    assert changed.calls == 6


def test_hiding_an_object_removes_its_pixels_and_showing_it_puts_them_back(run, server):
    changed = Counter()
    panel = LayoutPanel(server.gui, run, changed)
    cam = top_camera()
    before = run.render_objects(cam)
    panel.hidden.value = True
    assert run.layout.objects[0].hidden and not run.layout.objects[1].hidden and changed.calls == 1
    hidden = run.render_objects(cam)
    assert float(hidden.masks[..., 0].max()) < 1e-6  # (the composition's eps, 1e-10, leaves a trace)
    cube = _pixels(before.masks[..., 0])
    assert float(hidden.image.opacity[cube].max()) < 0.05  # background where the cube was
    sphere = _pixels(before.masks[..., 1])
    assert float((hidden.image.rgb - before.image.rgb).abs()[sphere & (before.masks[..., 0] < 1e-6)].max()) <= SAME
    panel.hidden.value = False
    back = run.render_objects(cam)
    assert changed.calls == 2 and torch.allclose(back.image.rgb, before.image.rgb, atol=1e-6)


def test_reset_restores_the_opened_layout_and_the_controls(run, server):
    opened = run.layout
    changed = Counter()
    panel = LayoutPanel(server.gui, run, changed)
    cam = top_camera()
    before = run.render(cam)
    panel.x.value, panel.size.value = 0.9, 0.3
    panel.object.value = "sphere"
    panel.hidden.value = True
    assert changed.calls == 3 and run.layout != opened
    panel.reset_button.value = True  # a click
    assert run.layout == opened and changed.calls == 4
    assert panel.k == 1 and not panel.hidden.value and panel.x.value == pytest.approx(opened.objects[1].center[0])
    assert torch.allclose(run.render(cam).rgb, before.rgb, atol=1e-6)
    panel.reset()  # nothing to undo: no re-render
    assert changed.calls == 4


def test_save_writes_the_layout_shown_for_nerfgen_render(run, server):
    panel = LayoutPanel(server.gui, run, Counter())
    panel.x.value = 0.5
    panel.rotation.value = 90.0
    panel.save_button.value = True  # a click
    path = run.path / EDITED_FILE
    assert nerfgen.read_layout(path) == run.layout and str(path) in panel.status.content
    assert "--layout" in panel.status.content
    again = nerfgen.load_run(run.path, "cpu")  # what `nerfgen render RUN --layout FILE` does
    again.open_layout(path)
    cam = top_camera()
    assert torch.allclose(again.render(cam).rgb, run.render(cam).rgb, atol=1e-6)


def test_scene_frames_render_in_bands_with_every_mode(run, server):
    scene = ViewerScene.from_run(run)
    assert scene.layout_editable and not scene.generated and scene.modes == MODES and scene.train_cameras is None
    cam = top_camera(37, 29)
    bands = []
    render = run.render
    run.render = lambda *a, **k: bands.append(a[0].height) or render(*a, **k)
    image = render_view(run, cam, scene.background, normals=True, band_rays=37 * 8)
    run.render = render
    direct = run.render(cam, 0, scene.background, normals=True)
    assert bands == [8, 8, 8, 5]
    for name in ("rgb", "depth", "opacity", "normals"):
        assert torch.allclose(getattr(image, name), getattr(direct, name), atol=1e-5), name
    assert bool(image.normals.isfinite().all()) and float(image.normals.abs().max()) > 0.1

    viewer = Viewer(scene, port=0, max_resolution=64)
    try:
        assert isinstance(viewer.layout_panel, LayoutPanel) and viewer.objects_panel is None
    finally:
        viewer.stop()
    trained = Viewer(ViewerScene.from_run(run), port=0, max_resolution=64, training=True)
    try:
        assert trained.layout_panel is None  # the training owns the layout while it runs
    finally:
        trained.stop()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_browser_shows_the_objects_and_the_edited_frame(scene_dir, tmp_path):
    from tests.test_viewer import _canvas_frame, _diff, _open, _settle, _visible

    viewer = Viewer(ViewerScene.from_run(nerfgen.load_run(scene_dir, "cpu")), port=0, max_resolution=64)
    try:
        with _chromium(tmp_path / "profile") as browser:
            page = _open(browser, viewer)
            _settle(viewer)
            page.get_by_text("Objects", exact=True).wait_for(timeout=30_000)
            page.get_by_role("button", name="Save layout").wait_for(timeout=30_000)
            choice = page.get_by_role("combobox", name="Object")
            assert choice.input_value() == "cube"
            choice.click()
            page.get_by_role("option", name="sphere").click()  # the objects are listed; pick the sphere
            end = time.monotonic() + 30
            while viewer.layout_panel.k != 1 and time.monotonic() < end:
                time.sleep(0.05)
            assert viewer.layout_panel.k == 1
            (client,) = viewer.server.get_clients().values()
            renderer = viewer.renderers[client.client_id]
            first = renderer.last[1]
            size = first.shape[1::-1]
            shown = _canvas_frame(page, size)

            page.get_by_label("Hidden").check()  # from the page: the sphere goes
            end = time.monotonic() + 30
            while not viewer.scene.run.layout.objects[1].hidden and time.monotonic() < end:
                time.sleep(0.05)
            assert viewer.scene.run.layout.objects[1].hidden and not viewer.scene.run.layout.objects[0].hidden
            _settle(viewer)
            edited = renderer.last[1]
            region = torch.from_numpy(abs(edited.astype(float) - first).mean(-1) > 25) & _visible(shown)
            assert edited.shape == first.shape and region.sum() >= 4  # the frame changed where the sphere was
            after = _canvas_frame(page, size)
            to_new, to_old = _diff(after, _unit(edited), region), _diff(after, _unit(first), region)
            assert to_new < 0.5 * to_old, (to_new, to_old)  # and the page shows the new frame
    finally:
        viewer.stop()
