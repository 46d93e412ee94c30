"""Run directories: what one holds (:class:`RunInfo`, written and read here only) and :func:`load_run`,
which opens any run (reconstruction, generation) as a :class:`Run` that renders cameras.

A run directory holds ``run.json`` (the :class:`RunInfo`) and ``model.safetensors`` (the model's
tensors); training adds ``train_state.safetensors`` + ``state.json`` (to resume) and
``tensorboard/``. Directories written before run.json existed (``config.json`` with ``train`` and
``scene``) still load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from nerfgen.cameras import CameraPath, Cameras, Orbit, read_camera_path
from nerfgen.config import build_config, config_to_dict
from nerfgen.engine.config import resolve_device
from nerfgen.engine.task import Task
from nerfgen.fields import Conditioning
from nerfgen.files import read_json, read_tensors, write_json, write_tensors
from nerfgen.render import ImageOutput, ModelSpec, OccGridConfig, RadianceModel, background_color

RUN_FILE = "run.json"
MODEL_FILE = "model.safetensors"
LEGACY_FILE = "config.json"
"""What described a run before ``run.json`` (read, never written)."""
FORMAT = 1
"""Version of ``run.json``'s layout."""


@dataclass
class RunInfo:
    """Everything a run directory says about its run, besides the tensors.

    Attributes:
        kind: what trained it: ``reconstruction`` (posed images), ``generation`` (a prompt) or
            ``scene`` (a prompt of several objects: :class:`~nerfgen.generate.scene_run.SceneRun`).
        model: how to rebuild the model (field, sampler and their settings).
        aabb: ``[6]`` the scene box (the finest cascade's).
        cascades: occupancy-grid cascades.
        data: the dataset folder it trained on, or ``generated: <prompt>``.
        background: ``white`` or ``black``, what the run is shown and evaluated on.
        train_background: the background training composited on (``random``, ``mlp``, ...).
        width, height: image size it trained at (after ``downscale``).
        orbit: the circle its videos and the viewer start from.
        config: the full config of the run (its kind's config dataclass, as a dict).
        downscale: how much the dataset's images were shrunk.
        prompt: the text a generation run was given.
    """

    kind: Literal["reconstruction", "generation", "scene"]
    model: ModelSpec
    aabb: list[float]
    cascades: int
    data: str
    background: Literal["white", "black"]
    train_background: str
    width: int
    height: int
    orbit: Orbit
    config: dict[str, Any]
    downscale: float = 1.0
    prompt: str | None = None

    def to_dict(self) -> dict:
        """The contents of ``run.json``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"format": FORMAT, **d, "model": config_to_dict(self.model), "orbit": self.orbit.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> RunInfo:
        """Inverse of :meth:`to_dict`, with errors naming ``source``."""
        if d.get("format") != FORMAT:
            raise ValueError(f"{source}: run format {d.get('format')!r} is not {FORMAT} (written by another nerfgen?)")
        try:
            values = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
            values["model"] = build_config(ModelSpec, d["model"], f"{source}: model")
            values["orbit"] = Orbit.from_dict(d["orbit"], source)
            return cls(**values)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: missing or malformed entry ({exc}); not a nerfgen run directory") from exc


def _legacy_info(d: dict, source: str) -> RunInfo:
    """A :class:`RunInfo` from the untyped ``config.json`` of earlier versions."""
    try:
        train, scene = d["train"], d["scene"]
        spec = ModelSpec(field=train["field"], field_options=dict(train.get("field_options", {})), sampler="occupancy",
                         grid=build_config(OccGridConfig, train.get("grid", {}), f"{source}: grid"))
        generated = str(scene["data"]).startswith("generated:")
        return RunInfo("generation" if generated else "reconstruction", spec, list(scene["aabb"]), int(scene["cascades"]),
                       str(scene["data"]), "white" if scene["white_background"] else "black",
                       str(scene.get("train_background", "auto")), int(scene["width"]), int(scene["height"]),
                       Orbit.from_dict(scene["orbit"], source), train, float(train.get("downscale", 1.0)))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{source}: missing key {exc}; not a nerfgen run directory") from exc


def read_run_info(run_dir: str | Path) -> RunInfo:
    """The :class:`RunInfo` of ``run_dir`` (``run.json``, or an earlier version's ``config.json``)."""
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILE).is_file() or not (run_dir / LEGACY_FILE).is_file():
        return RunInfo.from_dict(read_json(run_dir / RUN_FILE), str(run_dir / RUN_FILE))
    return _legacy_info(read_json(run_dir / LEGACY_FILE), str(run_dir / LEGACY_FILE))


def write_run(run_dir: str | Path, info: RunInfo, model: RadianceModel) -> None:
    """Write ``model.safetensors`` and ``run.json`` into ``run_dir`` (each atomically)."""
    run_dir = Path(run_dir)
    write_tensors(run_dir / MODEL_FILE, model.state_dict())
    write_json(run_dir / RUN_FILE, info.to_dict())


def build_model(info: RunInfo) -> RadianceModel:
    """An untrained model of the shape ``info`` describes."""
    return RadianceModel(info.model, torch.tensor(info.aabb, dtype=torch.float32), info.cascades)


def load_model_tensors(model: torch.nn.Module, run_dir: str | Path) -> None:
    """Load ``run_dir/model.safetensors`` into ``model`` (a RadianceModel or SceneModel; earlier versions'
    ``estimator.`` keys included)."""
    path = Path(run_dir) / MODEL_FILE
    tensors = {("sampler." + k[len("estimator."):] if k.startswith("estimator.") else k): v
               for k, v in read_tensors(path).items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: does not match the run's model (missing {missing}, unexpected {unexpected})")


def _kind(run_dir: str | Path) -> str | None:
    """The ``kind`` ``run_dir/run.json`` names, None when there is none to read."""
    path = Path(run_dir) / RUN_FILE
    return read_json(path).get("kind") if path.is_file() else None


class VideoRenders:
    """Videos of whatever a run's :meth:`render` shows, around its ``info.orbit`` or along a camera
    path: what every kind of run (:class:`Run`, :class:`~nerfgen.gan.run.GanRun`,
    :class:`~nerfgen.generate.scene_run.SceneRun`) shares."""

    def orbit_cameras(self, frames: int, width: int | None = None, height: int | None = None) -> Cameras:
        """``frames`` cameras around the scene on the run's :class:`Orbit` (at the run's image size
        unless given; one side given keeps the aspect)."""
        return self.info.orbit.cameras(frames, width, height)

    def render_video(self, cameras: Cameras, output: str | Path, depth: bool = False, fps: float = 30) -> int:
        """Render every camera into ``output`` (.mp4 or .gif; colour-mapped depth with ``depth``);
        returns the frames written."""
        from nerfgen.render.display import colorize_depth
        from nerfgen.video import write_video

        def frames():
            for i in range(len(cameras)):
                image = self.render(cameras, i)
                frame = colorize_depth(image.depth, image.opacity) if depth else image.rgb
                yield (frame.clamp(0, 1) * 255 + 0.5).byte().numpy()

        return write_video(frames(), output, fps)

    def render_orbit(self, output: str | Path, frames: int = 120, width: int | None = None, height: int | None = None,
                     depth: bool = False, fps: float = 30) -> int:
        """A 360-degree orbit video (:meth:`orbit_cameras`)."""
        return self.render_video(self.orbit_cameras(frames, width, height), output, depth, fps)

    def render_path(self, path: CameraPath | str | Path, output: str | Path, width: int | None = None,
                    height: int | None = None, depth: bool = False, fps: float | None = None) -> int:
        """A video along a camera path (a :class:`CameraPath` or a nerfstudio ``camera_path.json``),
        at the path's size and frame rate unless given."""
        path = read_camera_path(path) if not isinstance(path, CameraPath) else path
        return self.render_video(path.cameras(width, height), output, depth, fps or path.fps)


class Run(VideoRenders):
    """A trained or generated scene, ready to render: what :func:`load_run` gives (and what a
    training run shows live).

    Attributes:
        info: the :class:`RunInfo`.
        model: the field and its sampler (on the device it was loaded to).
        path: the run directory.

    >>> run = load_run("runs/demo/run")                          # doctest: +SKIP
    >>> image = run.render(run.orbit_cameras(8), 3)              # doctest: +SKIP
    >>> run.render_orbit("orbit.mp4", frames=60)                 # doctest: +SKIP
    """

    def __init__(self, info: RunInfo, model: RadianceModel, path: str | Path) -> None:
        self.info, self.model, self.path = info, model, Path(path)

    @property
    def background(self) -> Tensor:
        """``[3]`` the colour the run is shown on."""
        return background_color(self.info.background)

    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond: Conditioning | None = None, chunk: int = 1 << 14) -> ImageOutput:
        """Render camera ``index`` of ``cameras`` (on the run's background unless given); the image
        comes back on the CPU."""
        bg = self.background if background is None else background
        return self.model.render_camera(cameras, index, bg, chunk=chunk, normals=normals, cond=cond)

    def export_mesh(self, output: str | Path, **options) -> dict:
        """Write the surface as a coloured mesh file (``nerfgen.mesh.MeshOptions`` keywords)."""
        from nerfgen.mesh import MeshOptions
        from nerfgen.mesh.export import export_mesh

        return export_mesh(self.model, torch.tensor(self.info.aabb), self.info.orbit, output, MeshOptions(**options))


def load_run(run_dir: str | Path, device: str = "auto"):
    """Open the run in ``run_dir`` on ``device`` (``cpu``, ``cuda[:n]``, ``auto``) for rendering: a
    :class:`Run`, a :class:`~nerfgen.gan.run.GanRun` for a GAN run (``run.json`` kind ``gan``) or a
    :class:`~nerfgen.generate.scene_run.SceneRun` for a generated scene (kind ``scene``)."""
    device = resolve_device(device)  # an unusable device fails before anything is read
    kind = _kind(run_dir)
    if kind == "gan":
        from nerfgen.gan.run import load_gan_run

        return load_gan_run(run_dir, device)
    if kind == "scene":
        from nerfgen.generate.scene_run import load_scene_run

        return load_scene_run(run_dir, device)
    info = read_run_info(run_dir)
    model = build_model(info)
    load_model_tensors(model, run_dir)
    return Run(info, model.to(device).eval(), run_dir)


class SceneTask(Task):
    """A task whose product is a run directory of a :class:`RadianceModel` (``self.model``), as
    :meth:`info` describes it: saved, loaded to resume, and shown live as a :class:`Run`."""

    model: RadianceModel

    def info(self) -> RunInfo:
        """What the run directory says about this run."""
        raise NotImplementedError

    def live_run(self, output: str | Path) -> Run:
        """The model being trained, as a :class:`Run` (what the viewer shows live)."""
        return Run(self.info(), self.model, output)

    def save(self, output: Path, step: int, seconds: float) -> None:
        write_run(output, self.info(), self.model)

    def load(self, output: Path) -> None:
        load_model_tensors(self.model, output)
