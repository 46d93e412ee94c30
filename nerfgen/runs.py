"""Run directories of radiance fields (reconstruction, generation, and a scene's objects): what one
holds (:class:`RunInfo`, written and read here only) and :class:`Run`, which renders cameras.

A run directory holds ``run.json`` (the :class:`RunInfo`) and ``model.safetensors`` (the model's
tensors); training adds ``checkpoints/`` (to resume: :mod:`nerfgen.engine.checkpoint`) and
``tensorboard/``. Directories written before run.json existed (``config.json`` with ``train`` and
``scene``) still load. :func:`nerfgen.load_run` opens a run of any kind (:mod:`nerfgen.kinds`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from nerfgen.cameras import Cameras, Orbit
from nerfgen.config import build_config, config_to_dict
from nerfgen.fields import Conditioning
from nerfgen.files import load_state, read_tensors, write_json, write_tensors
from nerfgen.kinds import RUN_FILE, RunKind, described_by
from nerfgen.render import ImageOutput, ModelSpec, OccGridConfig, RadianceModel, background_color
from nerfgen.renderable import RenderTraits, VideoRenders

MODEL_FILE = "model.safetensors"
FORMAT = 1
"""Version of ``run.json``'s layout."""


RADIANCE_KINDS = (RunKind.RECONSTRUCTION, RunKind.GENERATION, RunKind.SCENE)
"""The kinds whose ``run.json`` is a :class:`RunInfo`."""


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RunInfo:
    """Everything a run directory says about its run, besides the tensors.

    Attributes:
        kind: what trained it: :attr:`~nerfgen.kinds.RunKind.RECONSTRUCTION` (posed images),
            ``GENERATION`` (a prompt) or ``SCENE`` (a prompt of several objects:
            :class:`~nerfgen.generate.scene_run.SceneRun`).
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

    kind: RunKind
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

    def __post_init__(self) -> None:
        self.kind = RunKind.parse(self.kind)
        if self.kind not in RADIANCE_KINDS:
            raise ValueError(f"RunInfo: kind {self.kind.value!r} is not a radiance-field run "
                             f"({', '.join(k.value for k in RADIANCE_KINDS)})")

    def to_dict(self) -> dict:
        """The contents of ``run.json``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"format": FORMAT, **d, "kind": self.kind.value, "model": config_to_dict(self.model),
                "orbit": self.orbit.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> RunInfo:
        """Inverse of :meth:`to_dict`, with errors naming ``source``."""
        if d.get("format") != FORMAT:
            raise ValueError(f"{source}: run format {d.get('format')!r} is not {FORMAT} (written by another nerfgen?)")
        try:
            values = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
            values["model"] = build_config(ModelSpec, d["model"], f"{source}: model")
            values["orbit"] = Orbit.from_dict(d["orbit"], source)
            info = cls(**values)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{source}: missing or malformed entry ({exc}); not a nerfgen run directory") from exc
        info.check(source)
        return info

    def check(self, source: str) -> None:
        """One ValueError naming ``source`` unless every entry holds what it must."""
        def bad(key: str, expected: str) -> ValueError:
            return ValueError(f"{source}: {key}: expected {expected}, got {getattr(self, key)!r}")

        aabb = self.aabb
        if not (isinstance(aabb, list) and len(aabb) == 6 and all(_finite(v) for v in aabb)
                and all(aabb[i + 3] > aabb[i] for i in range(3))):
            raise bad("aabb", "6 finite numbers [xmin, ymin, zmin, xmax, ymax, zmax] with max > min")
        for key, low, high in (("cascades", 1, 16), ("width", 1, 1 << 16), ("height", 1, 1 << 16)):
            value = getattr(self, key)
            if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
                raise bad(key, f"an integer in [{low}, {high}]")
        if self.background not in ("white", "black"):
            raise bad("background", "'white' or 'black'")
        if not (_finite(self.downscale) and self.downscale >= 1):
            raise bad("downscale", "a finite number >= 1")
        for key in ("data", "train_background"):
            if not isinstance(getattr(self, key), str):
                raise bad(key, "a string")
        if not isinstance(self.config, dict):
            raise bad("config", "a mapping")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise bad("prompt", "a string or null")

    @classmethod
    def from_legacy(cls, d: dict, source: str) -> RunInfo:
        """A :class:`RunInfo` from the untyped ``config.json`` of earlier versions."""
        try:
            train, scene = d["train"], d["scene"]
            spec = ModelSpec(field=train["field"], field_options=dict(train.get("field_options", {})),
                             sampler="occupancy", grid=build_config(OccGridConfig, train.get("grid", {}), f"{source}: grid"))
            generated = str(scene["data"]).startswith("generated:")
            return cls(RunKind.GENERATION if generated else RunKind.RECONSTRUCTION, spec, list(scene["aabb"]),
                       int(scene["cascades"]), str(scene["data"]), "white" if scene["white_background"] else "black",
                       str(scene.get("train_background", "auto")), int(scene["width"]), int(scene["height"]),
                       Orbit.from_dict(scene["orbit"], source), train, float(train.get("downscale", 1.0)))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{source}: missing key {exc}; not a nerfgen run directory") from exc


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
    load_state(model, tensors, path, "the model its run.json describes")


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
        self.traits = RenderTraits(training_cameras=info.kind is RunKind.RECONSTRUCTION, previews=True)

    @property
    def background(self) -> Tensor:
        """``[3]`` the colour the run is shown on."""
        return background_color(self.info.background)

    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond: Conditioning | None = None, chunk: int = 1 << 14, time: float | None = None,
               preview: bool = False) -> ImageOutput:
        """Render camera ``index`` of ``cameras`` (on the run's background unless given); the image
        comes back on the CPU. A static run has no ``time``: asking for one is an error. ``preview``:
        march with the sampler's coarser preview (:meth:`~nerfgen.render.Sampler.preview`), for
        frames shown while a viewer's camera moves."""
        if time is not None:
            raise ValueError(f"{self.path}: a {self.info.kind.value} run is static: it has no time to render at "
                             f"(asked for time {time}); times belong to dynamic runs")
        bg = self.background if background is None else background
        model = self.model
        if preview and isinstance(model, RadianceModel):
            model = RadianceModel.assembled(model.spec, model.field, model.sampler.preview())
        return model.render_camera(cameras, index, bg, chunk=chunk, normals=normals, cond=cond)

    def export_mesh(self, output: str | Path, **options) -> dict:
        """Write the surface as a coloured mesh file (``nerfgen.mesh.MeshOptions`` keywords)."""
        from nerfgen.mesh import MeshOptions
        from nerfgen.mesh.export import export_mesh

        return export_mesh(self.model, torch.tensor(self.info.aabb), self.info.orbit, output, MeshOptions(**options))


def open_run(run_dir: str | Path, info: RunInfo, device: str) -> Run:
    """Open the reconstruction or generation run in ``run_dir`` (described by ``info``) on
    ``device``: what :func:`nerfgen.load_run` does for these kinds."""
    with described_by(run_dir):
        model = build_model(info)
    load_model_tensors(model, run_dir)
    return Run(info, model.to(device).eval(), run_dir)
