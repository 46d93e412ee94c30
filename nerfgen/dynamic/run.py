"""Dynamic runs (kind ``dynamic``): what their ``run.json`` says (:class:`DynamicInfo`) and
:class:`DynamicRun`, which renders any camera at any time, and makes videos in which time runs:
along an orbit, at a fixed camera (a time sweep), around a stopped instant (bullet time) or along a
camera path whose frames carry times.

>>> run = nerfgen.load_run("runs/dyn")                                  # doctest: +SKIP
>>> image = run.render(run.orbit_cameras(8), 3, time=0.25)              # doctest: +SKIP
>>> run.render_orbit("bullet.mp4", time=0.5)                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nerfgen.cameras import CameraPath, Cameras, read_camera_path
from nerfgen.fields import Conditioning, RadianceField
from nerfgen.kinds import RunKind, described_by
from nerfgen.render import ImageOutput, RadianceModel, TimeOccupancyGrid
from nerfgen.renderable import RenderTraits
from nerfgen.runs import Run, RunInfo, build_model, load_model_tensors


def check_time(value: Any, what: str = "time") -> float:
    """``value`` as an instant in ``[0, 1]``, or one error saying what a time is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{what} must be in [0, 1] (the capture's first frame at 0, its last at 1), got {value!r}")
    return float(value)


@dataclass
class DynamicInfo(RunInfo):
    """A dynamic run's ``run.json``: a radiance-field run's entries (:class:`~nerfgen.runs.RunInfo`) and

    Attributes:
        times: the instants the run was trained on, ascending, in ``[0, 1]``.
        capture: what the training cameras formed (``multi-view: ...`` or ``monocular: ...``).
    """

    times: list[float] = field(default_factory=list)
    capture: str = ""

    def __post_init__(self) -> None:
        self.kind = RunKind.parse(self.kind)
        if self.kind is not RunKind.DYNAMIC:
            raise ValueError(f"DynamicInfo: kind {self.kind.value!r} is not 'dynamic'")

    def check(self, source: str) -> None:
        super().check(source)
        if not (isinstance(self.times, list) and self.times
                and all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in self.times)):
            raise ValueError(f"{source}: times: expected a non-empty list of instants in [0, 1], got {self.times!r}")
        if not isinstance(self.capture, str):
            raise ValueError(f"{source}: capture: expected a string, got {self.capture!r}")


class FrozenTime(RadianceField):
    """A dynamic field seen at one instant: a static field (what meshing one instant needs)."""

    def __init__(self, inner: RadianceField, time: float) -> None:
        super().__init__(inner.aabb)
        self.inner, self.time = inner, time
        self.accepts = inner.accepts - {"time"}
        self.out_channels = inner.out_channels

    def _cond(self, cond: Conditioning | None) -> Conditioning:
        self.check(cond)
        base = cond or Conditioning()
        return dataclasses.replace(base, time=self.aabb.new_full((1,), self.time))

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        return self.inner.density(positions, self._cond(cond))

    def forward(self, positions: Tensor, directions: Tensor, cond: Conditioning | None = None):
        return self.inner(positions, directions, self._cond(cond))


class DynamicRun(Run):
    """A trained dynamic scene, ready to render at any time: what :func:`nerfgen.load_run` gives
    for kind ``dynamic`` (a :class:`~nerfgen.renderable.TimeConditioned`
    :class:`~nerfgen.renderable.Renderable`).

    Attributes:
        time: the instant a render shows when it names none (the first training instant at first).
    """

    def __init__(self, info: DynamicInfo, model: RadianceModel, path: str | Path) -> None:
        super().__init__(info, model, path)
        self.traits = RenderTraits(training_cameras=True)
        self.time = float(info.times[0])

    @property
    def times(self) -> Tensor:
        """``[k]`` the instants the run was trained on, ascending."""
        return torch.tensor(self.info.times, dtype=torch.float32)

    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond: Conditioning | None = None, chunk: int = 1 << 14, time: float | None = None) -> ImageOutput:
        """Render camera ``index`` of ``cameras`` at ``time`` (default :attr:`time`)."""
        t = self.time if time is None else check_time(time)
        cond = dataclasses.replace(cond or Conditioning(), time=torch.tensor([t]))
        return super().render(cameras, index, background, normals, cond, chunk)

    def render_video(self, cameras: Cameras, output: str | Path, depth: bool = False, fps: float = 30,
                     times: Tensor | list[float] | None = None) -> int:
        """Render every camera into ``output``, camera ``i`` at ``times[i]`` (default: all at :attr:`time`)."""
        from nerfgen.render.display import colorize_depth
        from nerfgen.video import write_video

        when = [self.time] * len(cameras) if times is None else [check_time(float(t)) for t in times]
        if len(when) != len(cameras):
            raise ValueError(f"render_video: {len(cameras)} cameras but {len(when)} times")

        def frames():
            for i in range(len(cameras)):
                image = self.render(cameras, i, time=when[i])
                frame = colorize_depth(image.depth, image.opacity) if depth else image.rgb
                yield (frame.clamp(0, 1) * 255 + 0.5).byte().numpy()

        return write_video(frames(), output, fps)

    def render_orbit(self, output: str | Path, frames: int = 120, width: int | None = None, height: int | None = None,
                     depth: bool = False, fps: float = 30, time: float | None = None) -> int:
        """An orbit video: time running from 0 to 1 as the camera goes round, or bullet time
        (the scene stopped at ``time`` while the camera goes round)."""
        cameras = self.orbit_cameras(frames, width, height)
        times = torch.linspace(0, 1, frames) if time is None else torch.full((frames,), check_time(time))
        return self.render_video(cameras, output, depth, fps, times)

    def render_sweep(self, output: str | Path, frames: int = 60, width: int | None = None, height: int | None = None,
                     depth: bool = False, fps: float = 30, camera: int = 0) -> int:
        """A time sweep: time running from 0 to 1 seen from camera ``camera`` of a 
        ``frames``-camera orbit (the orbit's start by default)."""
        orbit = self.orbit_cameras(max(frames, camera + 1), width, height)
        fixed = orbit[[camera] * frames]
        return self.render_video(fixed, output, depth, fps, torch.linspace(0, 1, frames))

    def render_path(self, path: CameraPath | str | Path, output: str | Path, width: int | None = None,
                    height: int | None = None, depth: bool = False, fps: float | None = None,
                    time: float | None = None) -> int:
        """A video along a camera path: at the path's own frame times when it has them
        (``render_time``), else stopped at ``time``, else with time running from 0 to 1 along it."""
        path = read_camera_path(path) if not isinstance(path, CameraPath) else path
        if path.times is not None and time is None:
            times = path.times
        elif time is not None:
            times = torch.full((len(path),), check_time(time))
        else:
            times = torch.linspace(0, 1, len(path))
        return self.render_video(path.cameras(width, height), output, depth, fps or path.fps, times)

    def at_time(self, time: float) -> RadianceModel:
        """The scene stopped at ``time``: a static model sharing this run's field (for meshes)."""
        t = check_time(time)
        sampler = self.model.sampler
        grid = sampler.at_time(t) if isinstance(sampler, TimeOccupancyGrid) else sampler
        return RadianceModel.assembled(self.model.spec, FrozenTime(self.model.field, t), grid)

    def export_mesh(self, output: str | Path, time: float | None = None, **options) -> dict:
        """Mesh the scene at ``time`` (default :attr:`time`) as :meth:`Run.export_mesh` does."""
        from nerfgen.mesh import MeshOptions
        from nerfgen.mesh.export import export_mesh

        t = self.time if time is None else check_time(time)
        made = export_mesh(self.at_time(t), torch.tensor(self.info.aabb), self.info.orbit, output, MeshOptions(**options))
        return {**made, "time": t}


def open_dynamic(run_dir: str | Path, info: DynamicInfo, device: str) -> DynamicRun:
    """Open the dynamic run in ``run_dir`` on ``device`` (what :func:`nerfgen.load_run` does for it)."""
    with described_by(run_dir):
        model = build_model(info)
    load_model_tensors(model, run_dir)
    return DynamicRun(info, model.to(device).eval(), run_dir)
