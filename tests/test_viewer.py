"""The viewer in a real browser (headless Debian chromium driven by Playwright), on a tiny run.

Frames on screen are compared with a direct ``render_camera`` of the browser's camera, built
independently from viser's look-at camera state with ``nerfgen.cameras.look_at``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

pytest.importorskip("viser")
playwright_api = pytest.importorskip("playwright.sync_api")

from nerfgen.scenes import render_dataset  # noqa: E402
from nerfgen.viewer import Viewer, ViewerScene  # noqa: E402

from nerfgen.api import reconstruction  # noqa: E402
from nerfgen.cameras import Cameras, look_at  # noqa: E402
from nerfgen.cli import main as nerfgen_main  # noqa: E402
from nerfgen.reconstruct import TrainConfig  # noqa: E402
from nerfgen.render import OccGridConfig  # noqa: E402
from nerfgen.kinds import load_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SMALL = dict(field_options={"log2_table_size": 14, "n_levels": 8, "max_resolution": 256},
             grid=OccGridConfig(resolution=32), target_samples=8192, eval_every=0, checkpoint_every=0)
MAX_SIDE = 96
"""Still-frame size in these tests (the canvas is ~400 px: the browser upsamples)."""
TOLERANCE = 0.05
"""Mean absolute difference (0-1 scale) allowed between the screen and a direct render, both at
the frame's resolution: JPEG (quality 90) and the browser's bilinear upsampling, then an area
downsample of the screenshot, stay well under it; a view 8 degrees off is several times over it."""

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = render_dataset(tmp_path_factory.mktemp("scene") / "tabletop", width=48, height=48,
                          n_train=30, n_val=2, n_test=4, samples_per_side=1)
    run = tmp_path_factory.mktemp("run") / "run"
    reconstruction(root, run, TrainConfig(max_steps=150, **SMALL)).run()
    return root, run


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 720, "height": 360})
        yield context
        context.close()


def _open(browser, viewer):
    page = browser.new_page()
    page.goto(viewer.url)
    page.get_by_text("Connected").wait_for(timeout=60_000)
    notice = page.locator(".mantine-Notification-root button")  # "software WebGL": it covers the canvas
    notice.first.click(timeout=30_000)
    notice.first.wait_for(state="detached", timeout=30_000)
    return page


def _settle(viewer, timeout=120.0):
    """Wait until every tab shows a full-resolution frame of its latest camera."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if viewer.renderers and all(r.settled() for r in viewer.renderers.values()):
            time.sleep(0.3)  # the frame's trip to the browser
            return
        time.sleep(0.05)
    raise TimeoutError("the viewer did not settle")


def _canvas_frame(page, size):
    """Screenshot of the 3D canvas (the rendered image fills it), area-downsampled to ``size``."""
    box = page.locator("canvas").first.bounding_box()
    shot = page.screenshot(clip=box)
    img = torch.from_numpy(iio.imread(shot)[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
    w, h = size
    return torch.nn.functional.interpolate(img, size=(h, w), mode="area")[0].permute(1, 2, 0)


def _browser_cameras(client, size, turn_degrees=0.0):
    """The tab's camera as nerfgen Cameras, from viser's look-at state (optionally turned about up)."""
    cam = client.camera
    eye, target, up = (torch.tensor(np.asarray(v), dtype=torch.float32) for v in (cam.position, cam.look_at,
                                                                                  cam.up_direction))
    if turn_degrees:
        a = math.radians(turn_degrees)
        k = up / up.norm()
        v = target - eye
        target = eye + v * math.cos(a) + torch.linalg.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))
    w, h = size
    focal = 0.5 * h / math.tan(0.5 * cam.fov)
    return Cameras(c2w=look_at(eye, target, up)[None], fx=torch.tensor([focal]), fy=torch.tensor([focal]),
                   cx=torch.tensor([w / 2]), cy=torch.tensor([h / 2]), width=w, height=h)


def _visible(frame):
    """Mask of the canvas not under the axes gizmo (bottom-left corner)."""
    h, w = frame.shape[:2]
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[int(h * 0.75):, : int(w * 0.2)] = False
    return mask


def _diff(a, b, mask):
    return float((a - b).abs().mean(-1)[mask].mean())


def test_view_matches_render_drag_and_depth_change_it(tiny_run, browser):
    _, run = tiny_run
    viewer = Viewer(ViewerScene.from_run(load_run(run)), port=0, max_resolution=MAX_SIDE)
    try:
        page = _open(browser, viewer)
        page.get_by_label("Training cameras").uncheck()  # frustums would cover the image
        _settle(viewer)
        (client,) = viewer.server.get_clients().values()
        renderer = viewer.renderers[client.client_id]
        size = renderer.last[1].shape[1::-1]
        shown = _canvas_frame(page, size)
        direct = viewer.scene.run.render(_browser_cameras(client, size), 0, viewer.scene.background).rgb
        turned = viewer.scene.run.render(_browser_cameras(client, size, 8.0), 0, viewer.scene.background).rgb
        mask = _visible(shown)
        err, wrong = _diff(shown, direct, mask), _diff(shown, turned, mask)
        assert float(direct.std()) > 0.05, "the direct render is blank: nothing to compare"
        assert err < TOLERANCE and err < 0.5 * wrong, (err, wrong)

        box = page.locator("canvas").first.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 100, y)
        page.mouse.down()
        page.mouse.move(box["x"] + 200, y, steps=8)
        page.mouse.up()
        _settle(viewer)
        dragged = _canvas_frame(page, size)
        again = viewer.scene.run.render(_browser_cameras(client, size), 0, viewer.scene.background).rgb
        moved, err = _diff(dragged, shown, mask), _diff(dragged, again, mask)
        assert err < TOLERANCE and moved > 3 * err, (err, moved)

        page.get_by_role("combobox", name="Mode").click()
        page.get_by_role("option", name="depth").click()
        _settle(viewer)
        assert viewer.settings.mode == "depth"
        depth = _canvas_frame(page, size)
        assert _diff(depth, dragged, mask) > 3 * TOLERANCE

        cams = viewer.scene.train_cameras  # what a click on frustum 3 does: the browser comes back with its pose
        viewer.jump_to_training_camera(client, 3)
        end = time.monotonic() + 60
        while time.monotonic() < end and not np.allclose(renderer.last[0].position, cams.c2w[3, :, 3], atol=1e-3):
            time.sleep(0.05)
        _settle(viewer)
        assert torch.allclose(renderer.last[0].c2w(), cams.c2w[3], atol=1e-3)
        assert renderer.last[0].fov == pytest.approx(2 * math.atan(0.5 * cams.height / float(cams.fy[3])), abs=1e-4)
    finally:
        viewer.stop()


def test_camera_path_renders_from_the_viewer_and_the_cli(tiny_run, browser, tmp_path):
    _, run = tiny_run
    viewer = Viewer(ViewerScene.from_run(load_run(run)), port=0, max_resolution=32)
    try:
        page = _open(browser, viewer)
        panel = viewer.path_panel
        # 5 frames held 0.5 s each: the browser reports every camera the preview sets (at 10 fps a
        # loaded CI machine coalesced the middle one)
        panel.seconds.value, panel.fps.value, panel.width.value, panel.height.value = 2.5, 2, 48, 32
        page.get_by_text("Camera path").click()
        page.get_by_role("button", name="Add keyframe").click()
        box = page.locator("canvas").first.bounding_box()
        page.mouse.move(box["x"] + 100, box["y"] + 200)
        page.mouse.down()
        page.mouse.move(box["x"] + 180, box["y"] + 200, steps=6)
        page.mouse.up()
        page.get_by_role("button", name="Add keyframe").click()
        page.get_by_text("2 keyframes").wait_for(timeout=30_000)

        (client,) = viewer.server.get_clients().values()
        renderer, seen = viewer.renderers[client.client_id], []
        update = renderer.update
        renderer.update = lambda view: (seen.append(view.c2w()), update(view))  # the cameras the browser reports
        page.get_by_role("button", name="Play preview").click()
        path = panel.path()
        end = time.monotonic() + 60
        while time.monotonic() < end and not (seen and torch.allclose(seen[-1], path.c2w[-1], atol=1e-3)):
            time.sleep(0.05)
        assert any(torch.allclose(c2w, path.c2w[0], atol=1e-3) for c2w in seen)  # flew from the first keyframe
        assert any(torch.allclose(c2w, path.c2w[2], atol=1e-3) for c2w in seen)  # through the middle
        assert torch.allclose(seen[-1], path.c2w[-1], atol=1e-3)  # to the last

        page.get_by_role("button", name="Render video").click()
        page.get_by_text("wrote").wait_for(timeout=120_000)
    finally:
        viewer.stop()
    video, path_file = run / "renders" / "camera_path.mp4", run / "renders" / "camera_path.json"
    frames = iio.imread(video)
    assert frames.shape == (5, 32, 48, 3)
    keyframes = json.loads(path_file.read_text())["keyframes"]
    assert len(keyframes) == 2 and keyframes[0]["matrix"] != keyframes[1]["matrix"]
    out = tmp_path / "cli.mp4"
    with pytest.raises(SystemExit) as done:
        nerfgen_main(["render", str(run), "--camera-path", str(path_file), "--output", str(out)])
    assert done.value.code == 0
    cli_frames = iio.imread(out)
    assert cli_frames.shape == frames.shape
    assert np.abs(cli_frames.astype(float) - frames.astype(float)).mean() < 3  # same code; mp4 noise only
    with pytest.raises(SystemExit) as both:
        nerfgen_main(["render", str(run), "--orbit", "--camera-path", str(path_file), "--output", str(out)])
    assert both.value.code == 2


@contextlib.contextmanager
def _training(viewer, engine):
    """``viewer.train(engine)`` on a thread; at exit the loop ends after its current step and the
    viewer stops. Yields a dict that gets the run's summary under ``done``."""
    summary = {}
    training = threading.Thread(target=lambda: summary.update(done=viewer.train(engine)))
    training.start()
    try:
        yield summary
    finally:
        engine.config.max_steps = 0  # ends the loop after the current step
        viewer.gate.resume()
        training.join(timeout=120)
        viewer.stop()


def test_live_training_pause_and_resume(tiny_run, browser, tmp_path):
    root, _ = tiny_run
    trainer = reconstruction(root, tmp_path / "live", TrainConfig(max_steps=10**6, **SMALL))
    scene = ViewerScene.from_run(trainer.task.live_run(tmp_path / "live"), trainer.task.dataset)
    viewer = Viewer(scene, port=0, max_resolution=32, training=True)
    with _training(viewer, trainer) as summary:
        page = _open(browser, viewer)
        page.get_by_text("rays/s").first.wait_for(timeout=60_000)
        page.get_by_text("PSNR").first.wait_for(timeout=60_000)
        _settle(viewer)
        page.get_by_role("button", name="Pause training").click()
        page.get_by_role("button", name="Resume training").wait_for(timeout=30_000)
        time.sleep(0.5)
        paused_at = trainer.step
        box = page.locator("canvas").first.bounding_box()
        page.mouse.move(box["x"] + 100, box["y"] + 200)
        page.mouse.down()
        page.mouse.move(box["x"] + 160, box["y"] + 200, steps=4)
        page.mouse.up()
        _settle(viewer)  # renders go on while training is paused
        assert trainer.step == paused_at and viewer.gate.paused
        page.get_by_text(f"step {paused_at:,}").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Resume training").click()
        end = time.monotonic() + 60
        while trainer.step <= paused_at + 3 and time.monotonic() < end:
            time.sleep(0.1)
        assert trainer.step > paused_at + 3
    assert summary["done"].steps == trainer.step and (tmp_path / "live" / "model.safetensors").is_file()


def test_live_generation_shows_the_object_forming(browser, tmp_path):
    """``nerfgen generate --viewer``: the panel follows the generation's own figures, the view
    renders the field being optimised, and the run ends with its products."""
    from nerfgen.api import generation
    from nerfgen.generate import GenerateConfig
    from tests.toy_priors import BoxTargetPrior

    prior = BoxTargetPrior(half=0.45, fov=40.0, resolution=32)
    engine = generation("a red cube", tmp_path / "cube", GenerateConfig(), loaded_prior=prior, max_steps=10**6,
                        eval_every=0, orbit_frames=2, orbit_resolution=16, mesh_resolution=0,
                        camera={"resolution": 32, "fov": [40.0, 40.0]})
    viewer = Viewer(ViewerScene.from_run(engine.task.live_run(tmp_path / "cube")), port=0, max_resolution=32,
                    training=True)
    with _training(viewer, engine) as summary:
        page = _open(browser, viewer)
        page.get_by_text("sds").first.wait_for(timeout=60_000)
        page.get_by_text("images/s").first.wait_for(timeout=60_000)
        _settle(viewer)
        assert viewer.scene.train_cameras is None  # a generated object has no training images
    assert summary["done"].steps == engine.step > 0 and (tmp_path / "cube" / "orbit.mp4").is_file()


def test_a_run_whose_dataset_moved_shows_without_training_cameras(tiny_run, tmp_path):
    _, run = tiny_run
    moved = tmp_path / "run"
    moved.mkdir()
    info = json.loads((run / "run.json").read_text())
    info["data"] = str(tmp_path / "gone")
    (moved / "run.json").write_text(json.dumps(info))
    (moved / "model.safetensors").symlink_to(run / "model.safetensors")
    with pytest.warns(UserWarning, match="training cameras not shown.*gone"):
        scene = ViewerScene.from_run(load_run(moved))
    assert scene.train_cameras is None and scene.thumbnails is None
    assert ViewerScene.from_run(load_run(run)).train_cameras is not None


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_view_command_serves_only_the_viewer_and_warns_when_exposed(tiny_run):
    _, run = tiny_run
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "nerfgen", "view", str(run), "--port", "0", "--host", "0.0.0.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        url = None
        end = time.monotonic() + 120
        while url is None and time.monotonic() < end:
            line = proc.stdout.readline()
            if line.startswith("nerfgen viewer: http://"):
                url = line.split()[-1].replace("0.0.0.0", "127.0.0.1")
        assert url is not None, "no URL printed"
        status, body = _get(url)
        assert status == 200 and b"<html" in body.lower()
        for other in ("/config.json", "/model.safetensors", "/../config.json", "/etc/passwd"):
            assert _get(url + other)[0] == 404, other
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "warning" in err and "0.0.0.0" in err and "no authentication" in err
