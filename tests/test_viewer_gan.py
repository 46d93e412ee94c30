"""The viewer on GAN runs (GRAF and GIRAFFE): the objects panel edits the scene the run renders,
whole frames render in one call, and a headless browser sees the panel and the edited frames.

The runs are tiny untrained generators written with ``write_gan_run`` (no training); GIRAFFE's
weights are nudged so that its objects show: dense cubes of bright features on a dark background.
"""

from __future__ import annotations

import contextlib
import os
import time

import imageio.v3 as iio
import pytest
import torch

viser = pytest.importorskip("viser")

from nerfgen.viewer import Viewer, ViewerScene  # noqa: E402
from nerfgen.viewer.frames import ViewCamera, render_view, viser_pose  # noqa: E402
from nerfgen.viewer.objects_panel import ObjectsPanel, PoseRanges  # noqa: E402
from nerfgen.viewer.panels import RenderPanel  # noqa: E402
from nerfgen.viewer.render_loop import RenderSettings  # noqa: E402
from nerfgen.viewer.scene_edits import posed, present_slots, with_object  # noqa: E402

from nerfgen.cameras import look_at  # noqa: E402
from nerfgen.gan.config import CameraPrior, FieldSize, GanConfig, ObjectPrior  # noqa: E402
from nerfgen.gan.generator import build_generator  # noqa: E402
from nerfgen.gan.priors import mode_centres  # noqa: E402
from nerfgen.gan.run import GanRunInfo, write_gan_run  # noqa: E402
from nerfgen.kinds import load_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def write_tiny_gan(run_dir, model: str = "giraffe", ground: bool = True, **options):
    """A tiny untrained GAN run in ``run_dir`` (16 px, 4x upsampling, 8 samples a ray; ``options``
    more :class:`GanConfig` values)."""
    torch.manual_seed(0)
    cfg = GanConfig(model=model, size=16, upsample=4, features=8, shape_latent=4, appearance_latent=4,
                    field=FieldSize(2, 16, 2, 1), background_field=FieldSize(1, 16, 2, 1), renderer_width=16,
                    aabb=(-3.0, -3.0, -0.2, 3.0, 3.0, 1.0),
                    camera=CameraPrior(fov=56, distance=(4.5, 4.5), elevation=(40, 40), azimuth=(0, 0)),
                    objects=ObjectPrior(count=(1, 3), scale=(0.4, 0.6), ground=ground), **options)
    cfg.sampler.n_samples = 8
    g = build_generator(cfg)
    if model == "giraffe":
        with torch.no_grad():
            g.object_field.sigma_head.bias.fill_(4.0)
            g.object_field.color_head[2].bias.fill_(3.0)
            g.background_field.color_head[2].bias.fill_(-3.0)
            for conv in g.renderer.to_rgb:
                conv.weight.zero_()
                conv.bias.zero_()
            g.renderer.to_rgb[0].weight.normal_(0, 0.3)
    write_gan_run(run_dir, GanRunInfo(cfg, "none"), {"generator": g, "ema": g, "discriminator": g})
    return run_dir


@pytest.fixture(scope="module")
def giraffe_dir(tmp_path_factory):
    return write_tiny_gan(tmp_path_factory.mktemp("giraffe"))


@pytest.fixture
def giraffe(giraffe_dir):
    return load_run(giraffe_dir, "cpu")


@pytest.fixture(scope="module")
def server():
    s = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield s
    s.stop()


class Counter:
    """A ``changed`` callback that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def _camera(run, width=37, height=29):
    wxyz, position = viser_pose(look_at((3.5, 0.0, 2.9), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)))
    return ViewCamera(tuple(position), tuple(wxyz), fov=0.9, aspect=width / height).cameras(width, height)


def test_pose_sliders_move_turn_and_scale_an_object_and_re_render(giraffe, server):
    changed = Counter()
    panel = ObjectsPanel(server.gui, giraffe, changed)
    folder = panel.objects[0]
    assert folder.z is None  # on the ground: no height slider
    cams = _camera(giraffe)
    before = giraffe.render(cams).rgb
    folder.x.value = 0.9
    assert float(giraffe.scene.translation[0, 0, 0]) == pytest.approx(0.9) and changed.calls == 1
    folder.y.value = -0.7
    assert float(giraffe.scene.translation[0, 0, 1]) == pytest.approx(-0.7) and changed.calls == 2
    folder.rotation.value = 90.0
    assert float(giraffe.scene.rotation[0, 0]) == pytest.approx(90.0) and changed.calls == 3
    folder.scale.value = 0.55
    assert float(giraffe.scene.scale[0, 0]) == pytest.approx(0.55) and changed.calls == 4
    assert float(giraffe.scene.translation[0, 0, 2]) == pytest.approx(0.55)  # resting on z = 0
    assert float((giraffe.render(cams).rgb - before).abs().mean()) > 0.005  # the frame shows the move
    others = giraffe.scene.translation[0, 1:]
    folder.x.value = -0.4
    assert torch.equal(giraffe.scene.translation[0, 1:], others)  # only object 0 moved


def test_off_the_ground_objects_get_a_height_slider(tmp_path, server):
    run = load_run(write_tiny_gan(tmp_path / "run", ground=False), "cpu")
    panel = ObjectsPanel(server.gui, run, Counter())
    folder = panel.objects[0]
    assert folder.z is not None
    folder.z.value = 0.3
    folder.scale.value = 0.5
    assert float(run.scene.translation[0, 0, 2]) == pytest.approx(0.3)  # scale no longer sets the height


def test_resampling_changes_only_the_chosen_code(giraffe, server):
    changed = Counter()
    panel = ObjectsPanel(server.gui, giraffe, changed)
    start = giraffe.scene.clone()
    panel.objects[1].shape.value = True  # a click
    after = giraffe.scene
    assert not torch.equal(after.shape[0, 1], start.shape[0, 1]) and changed.calls == 1
    assert torch.equal(after.shape[0, [0, 2]], start.shape[0, [0, 2]])
    assert torch.equal(after.appearance, start.appearance) and torch.equal(after.translation, start.translation)
    panel.objects[2].appearance.value = True
    assert not torch.equal(giraffe.scene.appearance[0, 2], start.appearance[0, 2])
    assert torch.equal(giraffe.scene.appearance[0, :2], start.appearance[0, :2])
    panel.background.value = True
    assert not torch.equal(giraffe.scene.background_shape, start.background_shape)
    assert not torch.equal(giraffe.scene.background_appearance, start.background_appearance)
    assert torch.equal(giraffe.scene.shape[0, 2], after.shape[0, 2]) and changed.calls == 3


def test_objects_are_added_beyond_the_trained_slots_and_removed(giraffe, server):
    changed = Counter()
    panel = ObjectsPanel(server.gui, giraffe, changed)
    assert giraffe.slots == 3 and present_slots(giraffe.scene) == [0, 1, 2]  # seed 0 draws three objects
    panel.add.value = True
    assert giraffe.scene.slots == 4 and bool(giraffe.scene.present[0, 3]) and changed.calls == 1
    assert sorted(panel.objects) == [0, 1, 2, 3] and "4 objects in 4 slots" in panel.status.content
    lo, hi = giraffe.config.objects.scale
    assert lo <= float(giraffe.scene.scale[0, 3]) <= hi  # drawn from the prior
    cams = _camera(giraffe)
    four = giraffe.render(cams).rgb
    panel.objects[1].remove.value = True
    assert not bool(giraffe.scene.present[0, 1]) and sorted(panel.objects) == [0, 2, 3] and changed.calls == 2
    assert float((giraffe.render(cams).rgb - four).abs().mean()) > 0  # a different picture
    assert panel.add_object() == 1 and giraffe.scene.slots == 4  # the empty slot is reused
    assert changed.calls == 3


def test_a_new_scene_is_the_priors_scene_of_the_next_seed(giraffe, server):
    changed = Counter()
    panel = ObjectsPanel(server.gui, giraffe, changed)
    panel.add_object()
    panel.new_scene_button.value = True
    assert panel.seed.value == 1 and changed.calls == 2
    expected = giraffe.codes(1, seed=1)
    assert giraffe.scene.slots == giraffe.slots and torch.equal(giraffe.scene.shape, expected.shape)
    assert sorted(panel.objects) == present_slots(expected)
    panel.seed.value = 5  # typed in
    assert torch.equal(giraffe.scene.translation, giraffe.codes(1, seed=5).translation) and changed.calls == 3


def test_scene_edits_leave_their_input_alone(giraffe):
    codes = giraffe.scene
    moved = posed(codes, 0, x=0.25)
    assert float(codes.translation[0, 0, 0]) != 0.25 and float(moved.translation[0, 0, 0]) == 0.25
    grown, k = with_object(codes, giraffe.codes(1, seed=3, slots=1))
    assert (k, grown.slots, codes.slots) == (3, 4, 3)
    with pytest.raises(ValueError, match="slot 7 does not exist"):
        posed(codes, 7, x=0.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        posed(codes, 0, scale=0.0)


def test_graf_has_one_object_with_codes_only(tmp_path, server):
    run = load_run(write_tiny_gan(tmp_path / "graf", model="graf", appearance_modes=3, appearance_spread=0.05), "cpu")
    changed = Counter()
    panel = ObjectsPanel(server.gui, run, changed)
    (folder,) = panel.objects.values()
    assert folder.x is None and folder.rotation is None and folder.scale is None and folder.remove is None
    assert panel.add is None and panel.background is None
    start = run.scene.clone()
    folder.shape.value = True
    assert not torch.equal(run.scene.shape, start.shape) and torch.equal(run.scene.appearance, start.appearance)
    folder.appearance.value = True
    assert not torch.equal(run.scene.appearance, start.appearance) and changed.calls == 2
    # a new appearance comes from the run's prior: near one of its modes, as the trained codes were
    assert torch.cdist(run.scene.appearance[0], mode_centres(3, 4)).min() < 0.5
    cams = _camera(run, 12, 9)
    assert torch.equal(render_view(run, cams, run.background).rgb, run.render(cams).rgb)


def test_gan_frames_render_whole_at_any_size_without_normals(giraffe, server, tmp_path):
    cams = _camera(giraffe)  # 37 x 29: not a multiple of the 4x upsampling
    bands = []
    render = giraffe.render
    giraffe.render = lambda *a, **k: bands.append(a[0].height) or render(*a, **k)
    image = render_view(giraffe, cams, giraffe.background, band_rays=64)
    giraffe.render = render
    direct = giraffe.render(cams)
    assert bands == [29] and image.rgb.shape == (29, 37, 3)  # one call, the whole frame
    for name in ("rgb", "depth", "opacity"):
        assert torch.equal(getattr(image, name), getattr(direct, name)), name
    assert render_view(giraffe, cams, giraffe.background, cancelled=lambda: True) is None

    scene = ViewerScene.from_run(giraffe)
    assert scene.generated and scene.train_cameras is None and "normals" not in scene.modes
    panel = RenderPanel(server.gui, RenderSettings(), lambda: None, scene.modes)
    assert "normals" not in panel.mode.options and "normals" not in panel.split_mode.options

    frames = giraffe.render_video(giraffe.orbit_cameras(3, 20, 12), tmp_path / "path.gif", fps=10)
    assert frames == 3 and iio.imread(tmp_path / "path.gif").shape == (3, 12, 20, 3)


def test_pose_ranges_widen_the_prior_inside_the_box(giraffe):
    r = PoseRanges.of(giraffe.config)
    assert r.x == (-2.0, 2.0) and r.y == (-2.0, 2.0) and r.z == (-0.2, 1.0)
    assert r.scale == pytest.approx((0.2, 0.9))


def _unit(frame):
    """A uint8 ``[H, W, 3]`` frame in [0, 1]."""
    return torch.from_numpy(frame).float() / 255


@contextlib.contextmanager
def _chromium(profile):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.test_viewer import FLAGS

    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                       args=FLAGS, viewport={"width": 720, "height": 360})
        try:
            yield context
        finally:
            context.close()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_browser_shows_the_objects_panel_and_edited_frames(giraffe_dir, tmp_path):
    from tests.test_viewer import _canvas_frame, _diff, _open, _settle, _visible

    viewer = Viewer(ViewerScene.from_run(load_run(giraffe_dir, "cpu")), port=0, max_resolution=64)
    try:
        with _chromium(tmp_path / "profile") as browser:
            page = _open(browser, viewer)
            _settle(viewer)
            page.get_by_text("Objects", exact=True).wait_for(timeout=30_000)
            page.get_by_role("button", name="Re-sample shape").first.wait_for(timeout=30_000)
            (client,) = viewer.server.get_clients().values()
            renderer = viewer.renderers[client.client_id]
            first = renderer.last[1]
            size = first.shape[1::-1]
            shown = _canvas_frame(page, size)

            viewer.objects_panel.objects[0].x.value = -1.5  # the server-side handle, as a drag would set it
            _settle(viewer)
            moved = renderer.last[1]
            assert moved.shape == first.shape and abs(moved.astype(float) - first).mean() > 1.0
            after, mask = _canvas_frame(page, size), _visible(shown)
            to_new, to_old = _diff(after, _unit(moved), mask), _diff(after, _unit(first), mask)
            assert to_new < 0.7 * to_old and _diff(after, shown, mask) > 0.01, (to_new, to_old)  # the page got it

            page.get_by_role("button", name="Add object").click()  # from the page
            page.get_by_text("Object 4", exact=True).wait_for(timeout=30_000)
            end = time.monotonic() + 30
            while viewer.objects_panel.run.scene.slots < 4 and time.monotonic() < end:
                time.sleep(0.05)
            _settle(viewer)
            assert viewer.scene.run.scene.slots == 4 and not (renderer.last[1] == moved).all()
    finally:
        viewer.stop()
