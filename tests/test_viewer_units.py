"""The viewer's pieces without a browser: camera paths (nerfstudio format), camera conversion,
banded rendering, render modes, frame sizing and the training/render gate."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
import torch

pytest.importorskip("viser")

from nerfgen.viewer.frames import ViewCamera, compose, frame_size, preview_side, render_view, viser_pose  # noqa: E402
from nerfgen.viewer.gate import (
    ModelGate,  # noqa: E402
    TrainStats,  # noqa: E402
)
from nerfgen.viewer.path_panel import video_target  # noqa: E402

from nerfgen.cameras import (  # noqa: E402
    Keyframe,
    Orbit,
    interpolate,
    look_at,  # noqa: E402
    matrix_from_quaternion,
    path_from_keyframes,
    quaternion_from_matrix,
    read_camera_path,
    write_camera_path,
)
from nerfgen.cameras.paths import camera_path_to_dict  # noqa: E402
from nerfgen.render import ImageOutput, ModelSpec, OccGridConfig, RadianceModel  # noqa: E402
from nerfgen.renderable import RenderTraits  # noqa: E402
from nerfgen.runs import Run, RunInfo  # noqa: E402


def _keyframes() -> list[Keyframe]:
    eyes = [(4.0, 0.0, 1.0), (0.0, 4.0, 2.0), (-4.0, 0.0, 1.0)]
    return [Keyframe(look_at(eye, (0.0, 0.0, 0.0)), fov, 1.5) for eye, fov in zip(eyes, (40.0, 50.0, 60.0))]


def test_quaternions_round_trip_rotations():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        q = torch.randn(4, generator=g, dtype=torch.float64)
        rot = matrix_from_quaternion(q)
        assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(matrix_from_quaternion(quaternion_from_matrix(rot)), rot, atol=1e-10)


def test_interpolation_passes_through_the_keyframes_and_stays_a_rotation():
    kfs = _keyframes()
    c2w, fov = interpolate(kfs, 9)  # frames 0, 4, 8 sit on the keyframes
    for frame, kf in zip((0, 4, 8), kfs):
        assert torch.allclose(c2w[frame], kf.c2w, atol=1e-5)
        assert fov[frame] == pytest.approx(kf.fov)
    rots = c2w[:, :, :3].double()
    assert torch.allclose(rots @ rots.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(9, 3, 3), atol=1e-5)
    looped, _ = interpolate(kfs, 12, loop=True)  # 3 segments of 4 frames; the last heads back to the first
    assert torch.allclose(looped[0], kfs[0].c2w, atol=1e-5) and torch.allclose(looped[8], kfs[2].c2w, atol=1e-5)
    assert float((looped[11, :, 3] - kfs[0].c2w[:, 3]).norm()) < float((looped[8, :, 3] - kfs[0].c2w[:, 3]).norm())


def test_camera_path_file_round_trips_in_nerfstudio_layout(tmp_path):
    path = path_from_keyframes(_keyframes(), seconds=2.0, fps=5, width=64, height=48)
    assert len(path) == 10
    write_camera_path(tmp_path / "camera_path.json", path)
    doc = json.loads((tmp_path / "camera_path.json").read_text())
    assert doc["camera_type"] == "perspective" and doc["render_width"] == 64 and doc["render_height"] == 48
    assert len(doc["camera_path"]) == 10 and len(doc["camera_path"][0]["camera_to_world"]) == 16
    assert len(doc["keyframes"]) == 3 and len(doc["keyframes"][0]["matrix"]) == 16
    back = read_camera_path(tmp_path / "camera_path.json")
    assert torch.allclose(back.c2w, path.c2w, atol=1e-6) and torch.allclose(back.fov, path.fov)
    assert (back.width, back.height, back.fps, len(back.keyframes)) == (64, 48, 5.0, 3)
    cams = back.cameras()
    assert (cams.width, cams.height) == (64, 48)
    assert float(cams.fy[0]) == pytest.approx(0.5 * 48 / math.tan(math.radians(40.0) / 2), rel=1e-5)
    assert back.cameras(width=32).height == 24


def test_reads_a_file_written_by_nerfstudio(tmp_path):
    pose = torch.cat([look_at((3.0, 1.0, 1.0), (0.0, 0.0, 0.0)), torch.tensor([[0.0, 0, 0, 1]])])
    doc = {  # the keys nerfstudio's viewer writes (sizes as floats, extra keys it keeps)
        "default_fov": 75.0, "default_transition_sec": 2.0, "keyframes": [], "camera_type": "perspective",
        "render_height": 480.0, "render_width": 640.0, "fps": 24.0, "seconds": 1.0, "is_cycle": False,
        "smoothness_value": 0.5, "crop": None,
        "camera_path": [{"camera_to_world": pose.flatten().tolist(), "fov": 75.0, "aspect": 1.333}] * 3,
    }
    (tmp_path / "ns.json").write_text(json.dumps(doc))
    path = read_camera_path(tmp_path / "ns.json")
    assert (len(path), path.width, path.height) == (3, 640, 480)
    assert torch.allclose(path.c2w[0], pose[:3], atol=1e-6)


@pytest.mark.parametrize("edit,expected", [
    (lambda d: d.pop("camera_path"), "'camera_path' must be a non-empty list"),
    (lambda d: d.update(render_width=0), "render_width"),
    (lambda d: d["camera_path"][0].update(camera_to_world=[1, 2, 3]), r"camera_path\[0\].camera_to_world"),
    (lambda d: d["camera_path"][0].update(fov=200), r"camera_path\[0\].fov"),
    (lambda d: d.update(camera_type="fisheye"), "only 'perspective'"),
])
def test_bad_camera_path_files_name_the_file(tmp_path, edit, expected):
    doc = camera_path_to_dict(path_from_keyframes(_keyframes(), 1.0, 2, 16, 16))
    edit(doc)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=f"bad.json.*{expected}"):
        read_camera_path(tmp_path / "bad.json")


def test_view_camera_converts_between_viser_and_opengl_axes():
    c2w = look_at((2.0, -3.0, 1.5), (0.2, 0.1, 0.0))
    wxyz, position = viser_pose(c2w)
    view = ViewCamera(tuple(position), tuple(wxyz), fov=math.radians(50), aspect=2.0)
    assert torch.allclose(view.c2w(), c2w, atol=1e-6)
    # viser's camera looks down its +z (OpenCV): that is nerfgen's -z
    rot_cv = matrix_from_quaternion(torch.tensor(wxyz))
    assert torch.allclose(rot_cv[:, 2].float(), -c2w[:, 2], atol=1e-6)
    cams = view.cameras(200, 100)
    assert float(cams.fy[0]) == pytest.approx(50 / math.tan(math.radians(25)), rel=1e-6)


def test_frame_sizes_follow_the_measured_speed():
    assert frame_size(2.0, 128) == (128, 64) and frame_size(0.5, 128) == (64, 128)
    side = preview_side(rays_per_second=1.6e5, seconds=0.1, aspect=1.0, max_side=512)
    assert side == 126  # 16000 pixels in a square
    assert preview_side(1e9, 0.1, 1.0, max_side=512) == 512 and preview_side(10, 0.1, 1.0, 512) == 32


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    spec = ModelSpec(field_options={"log2_table_size": 12, "n_levels": 4, "max_resolution": 64},
                     grid=OccGridConfig(resolution=16))
    model = RadianceModel(spec, torch.tensor([-1.0, -1, -1, 1, 1, 1])).eval()
    orbit = Orbit((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), 3.0, 1.0, 20.0, 20.0, 16, 16)
    info = RunInfo("reconstruction", spec, [-1.0, -1, -1, 1, 1, 1], 1, "", "white", "white", 16, 16, orbit, {})
    return Run(info, model, ".")


def test_banded_render_equals_one_render_and_cancels(random_model):
    wxyz, position = viser_pose(look_at((2.5, 0.5, 0.8), (0.0, 0.0, 0.0)))
    view = ViewCamera(tuple(position), tuple(wxyz), fov=0.8, aspect=1.25)
    cams = view.cameras(16, 12)
    bg = torch.ones(3)
    whole = random_model.render(cams, 0, bg, normals=True)
    bands = render_view(random_model, cams, bg, normals=True, band_rays=40)  # 2 rows a band
    assert float(whole.opacity.max()) > 0.05  # the random field is not empty
    for name in ("rgb", "depth", "opacity", "normals"):
        assert torch.allclose(getattr(bands, name), getattr(whole, name), atol=1e-5), name
    calls = []
    assert render_view(random_model, cams, bg, cancelled=lambda: calls.append(1) or len(calls) > 2, band_rays=40) is None
    assert len(calls) == 3


def test_bands_follow_the_runs_traits_unless_asked():
    """render_view's bands hold about the run's traits.band_rays rays (a bake asks for larger ones)."""
    cams = ViewCamera((0.0, 0.0, 3.0), (1.0, 0.0, 0.0, 0.0), fov=0.8, aspect=1.0).cameras(100, 50)
    model = _SlowModel(0.0)
    render_view(model, cams, torch.zeros(3))
    assert model.bands == [(100, 50)]  # 5000 rays: one band of the default 16384
    model.bands, model.traits = [], RenderTraits(band_rays=1000)
    render_view(model, cams, torch.zeros(3))
    assert model.bands == [(100, 10)] * 5
    model.bands = []
    render_view(model, cams, torch.zeros(3), band_rays=2500)
    assert model.bands == [(100, 25)] * 2


def test_render_modes_and_split():
    h, w = 4, 10
    depth = torch.linspace(1, 2, w).expand(h, w)
    opacity = torch.ones(h, w)
    opacity[:, 0] = 0
    normals = torch.tensor([0.0, 0.0, 1.0]).expand(h, w, 3) * opacity[..., None]
    image = ImageOutput(rgb=torch.full((h, w, 3), 0.25), depth=depth, opacity=opacity, normals=normals)
    assert (compose(image, "rgb") == 64).all()
    acc = compose(image, "accumulation")
    assert (acc[:, 0] == 0).all() and (acc[:, 1:] == 255).all()
    deep = compose(image, "depth")
    assert (deep[:, 0] == 0).all() and deep[0, 1, 0] > deep[0, -1, 0] and deep[0, 1, 2] < deep[0, -1, 2]
    assert (compose(image, "normals")[:, 1:] == [128, 128, 255]).all()
    split = compose(image, "rgb", "accumulation", split=0.5)
    assert (split[:, :5] == 64).all() and (split[:, 5] == 255).all() and (split[:, 6:] == 255).all()
    with pytest.raises(ValueError, match="unknown render mode"):
        compose(image, "albedo")


def test_video_names_stay_inside_the_run(tmp_path):
    assert video_target(tmp_path, "a.mp4") == tmp_path / "renders" / "a.mp4"
    for bad in ("../a.mp4", "/tmp/a.mp4", "a.txt", ".hidden.mp4", ""):
        with pytest.raises(ValueError, match="plain file name"):
            video_target(tmp_path, bad)


def test_gate_serialises_training_and_renders_and_pauses():
    gate = ModelGate(train_share=0.5)
    inside, overlaps, steps = [], [], []
    stop = threading.Event()

    def train():
        with gate.training():
            while not stop.is_set():
                inside.append("train")
                overlaps.append(len(inside) > 1)
                time.sleep(0.01)  # a step
                inside.remove("train")
                steps.append(1)
                gate.between_steps(TrainStats(len(steps), {"loss": 0.01, "psnr": 20.0}, {"rays/s": 1000.0}))

    trainer = threading.Thread(target=train)
    trainer.start()
    time.sleep(0.05)
    renders = 0
    start = time.perf_counter()
    while time.perf_counter() - start < 0.5:
        with gate.render():
            inside.append("render")
            overlaps.append(len(inside) > 1)
            time.sleep(0.005)
            inside.remove("render")
            renders += 1
    assert renders > 10 and len(steps) > 10 and not any(overlaps)
    assert gate.stats.step == len(steps) and gate.stats.figures["psnr"] == pytest.approx(20.0)
    gate.pause()
    time.sleep(0.05)
    paused_at = len(steps)
    with gate.render():  # renders go on while training waits
        time.sleep(0.1)
    assert len(steps) == paused_at and gate.paused
    gate.resume()
    time.sleep(0.1)
    assert len(steps) > paused_at
    stop.set()
    trainer.join(timeout=5)
    assert not trainer.is_alive() and gate.stats.done


def test_view_and_render_commands_explain_themselves_and_fail_clearly(tmp_path, capsys):
    from nerfgen.cli import main

    for command, option in (("view", "--host"), ("render", "--camera-path"), ("train", "--viewer")):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0 and option in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["view", str(tmp_path / "norun")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error") == 1 and "norun" in err and "run.json" in err


class _SlowModel:
    """Stands in for a Run: takes ``seconds_per_ray`` per pixel and records each band."""

    background = torch.zeros(3)
    traits = RenderTraits()

    def __init__(self, seconds_per_ray: float) -> None:
        self.seconds_per_ray, self.bands = seconds_per_ray, []

    def render(self, cameras, index, background, normals=False, chunk=1 << 14):
        h, w = cameras.height, cameras.width
        time.sleep(h * w * self.seconds_per_ray)
        self.bands.append((w, h))
        return ImageOutput(torch.zeros(h, w, 3), torch.zeros(h, w), torch.zeros(h, w), None)


def _renderer(model, max_side):
    from nerfgen.viewer.render_loop import ClientRenderer, RenderSettings
    from nerfgen.viewer.scene import ViewerScene

    scene = ViewerScene(model)
    frames = []
    renderer = ClientRenderer(lambda image: None, scene, ModelGate(), RenderSettings(max_side=max_side, moving_fps=10),
                              frames.append)
    return renderer, frames


def _views(n):
    wxyz, position = viser_pose(look_at((3.0, 0.0, 1.0), (0.0, 0.0, 0.0)))
    return [ViewCamera((float(position[0]), float(position[1]) + 0.01 * i, float(position[2])), tuple(wxyz), 0.8, 1.0)
            for i in range(n)]


def _wait_settled(renderer, timeout=10.0):
    end = time.monotonic() + timeout
    while not renderer.settled() and time.monotonic() < end:
        time.sleep(0.01)
    assert renderer.settled()


def test_moving_frames_are_small_and_only_the_newest_camera_renders():
    renderer, frames = _renderer(_SlowModel(1e-4), max_side=64)  # 10k rays/s: a 64x64 still takes 0.4 s
    try:
        views = _views(30)
        for view in views:
            renderer.update(view)
            time.sleep(0.02)
        _wait_settled(renderer)
        moving = [f for f in frames if not f.still]
        assert moving and len(frames) < len(views)  # updates during a render replace each other
        assert all(f.width < 64 for f in moving)  # sized for 10 fps at the measured speed
        assert frames[-1].still and frames[-1].width == 64 and renderer.last[0] == views[-1]
    finally:
        renderer.stop()


def test_a_full_resolution_render_is_dropped_when_the_camera_moves():
    model = _SlowModel(5e-6)  # a 256x256 still renders in 4 bands of 0.08 s
    renderer, frames = _renderer(model, max_side=256)
    try:
        first, second = _views(2)
        renderer.update(first)
        end = time.monotonic() + 5
        while not any(w == 256 for w, _ in model.bands) and time.monotonic() < end:
            time.sleep(0.005)  # the still render of the first camera has begun
        renderer.update(second)
        _wait_settled(renderer)
        stills = [f for f in frames if f.width == 256]
        assert len(stills) == 1 and renderer.last[0] == second  # the first camera's still never showed
        assert sum(1 for w, _ in model.bands if w == 256) < 8  # and it stopped part-way
    finally:
        renderer.stop()


class _Refinable(_SlowModel):
    """A fast run (a bake) whose stills are refined by a slower one (its field)."""

    def __init__(self) -> None:
        super().__init__(1e-6)
        self.field = _SlowModel(2e-5)

    def refined(self):
        return self.field


def test_a_refinable_run_shows_its_own_still_then_the_refined_one():
    run = _Refinable()
    renderer, frames = _renderer(run, max_side=64)
    try:
        renderer.update(_views(1)[0])
        _wait_settled(renderer)
        stills = [f for f in frames if f.still]
        assert [f.refined for f in stills] == [False, True]  # the bake's still first, then the field's
        assert run.field.bands and all(w == 64 for w, _ in run.field.bands)  # the field draws stills only
        renderer.settings.refine_stills = False
        renderer.refresh()
        _wait_settled(renderer)
        assert not frames[-1].refined
    finally:
        renderer.stop()
