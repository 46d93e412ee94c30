"""Generalizable run directories (kind ``generalizable``): ``run.json`` (:class:`GeneralRunInfo`:
the model, its config, what it learnt from, its default source views) and ``model.safetensors``,
opened as a :class:`GeneralRun` that renders any camera of any scene from that scene's source
views, with no per-scene training.

>>> run = nerfgen.load_run("runs/pixelnerf")                                        # doctest: +SKIP
>>> run.use_sources(SourceViews.from_capture("data/mug", [0, 4, 9]))                # doctest: +SKIP
>>> run.render_orbit("mug.mp4", frames=60)                                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nerfgen.cameras import Cameras, Orbit, image_rays
from nerfgen.config import build_config, config_to_dict, stored_config
from nerfgen.fields import Conditioning
from nerfgen.files import load_state, read_tensors, write_json, write_tensors
from nerfgen.generalize.sources import SceneFeatures, SourceViews
from nerfgen.kinds import RUN_FILE, RunKind, described_by
from nerfgen.render import ImageOutput, RenderOutput, background_color, render_rays, render_rays_chunked
from nerfgen.renderable import RenderTraits, VideoRenders

MODEL_FILE = "model.safetensors"
FORMAT = 1
RENDER_CHUNK = 1 << 11
"""Rays rendered at once at most (each ray's samples are projected into every source view)."""
CHUNK_SAMPLES = 1 << 17
"""Samples rendered at once at most (the rays of a chunk are this over the samples per ray)."""


@dataclass
class SourceRecord:
    """Where a run's default source views are: views ``indices`` of split ``split`` of the capture
    ``capture``, shrunk by ``downscale``."""

    capture: str
    indices: list[int]
    split: str = "train"
    downscale: float = 1.0

    def check(self, source: str) -> SourceRecord:
        """This record, or a ValueError naming ``source`` (where it was read) and the bad entry."""
        if not (isinstance(self.downscale, (int, float)) and math.isfinite(self.downscale) and self.downscale >= 1):
            raise ValueError(f"{source}: downscale must be a finite number >= 1, got {self.downscale!r}")
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.indices):
            raise ValueError(f"{source}: indices must be view numbers (ints >= 0), got {self.indices!r}")
        return self

    def load(self, background: Tensor) -> SourceViews:
        if not Path(self.capture).exists():
            raise FileNotFoundError(f"{self.capture}: the run's source views are not there (give others: "
                                    "--data CAPTURE --sources I J K)")
        return SourceViews.from_capture(self.capture, self.indices, self.split, self.downscale, background)


@dataclass
class GeneralRunInfo:
    """What a generalizable run directory says about its run besides the tensors.

    Attributes:
        model: ``pixelnerf`` or ``mvsnerf``.
        config: the model's config (:class:`~nerfgen.generalize.config.GeneralizeConfig` or
            :class:`~nerfgen.generalize.mvsnerf.MVSNeRFConfig`).
        data: what it learnt from (a collection folder, ``procedural``, a checkpoint file).
        sources: its default source views, or None.
        background: what empty space renders as.
        orbit: the circle videos and the viewer start from.
    """

    model: str
    config: Any
    data: str
    sources: SourceRecord | None
    background: str
    orbit: Orbit
    kind: RunKind = RunKind.GENERALIZABLE
    downscale: float = 1.0

    @property
    def width(self) -> int:
        return self.orbit.width

    @property
    def height(self) -> int:
        return self.orbit.height

    def to_dict(self) -> dict:
        return {"format": FORMAT, "kind": self.kind.value, "model": self.model, "data": self.data,
                "background": self.background, "config": config_to_dict(self.config),
                "sources": None if self.sources is None else dataclasses.asdict(self.sources),
                "orbit": self.orbit.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> GeneralRunInfo:
        from nerfgen.generalize.models import config_class

        if d.get("format") != FORMAT or d.get("kind") != RunKind.GENERALIZABLE.value:
            raise ValueError(f"{source}: not a generalizable run (format {d.get('format')!r}, kind {d.get('kind')!r})")
        try:
            model = str(d["model"])
            config = stored_config(config_class(model, source), d["config"], f"{source}: config")
            record = d.get("sources")
            sources = None if record is None else build_config(SourceRecord, record, f"{source}: sources").check(f"{source}: sources")
            if d["background"] not in ("white", "black"):
                raise ValueError(f"{source}: background: expected 'white' or 'black', got {d['background']!r}")
            return cls(model, config, str(d["data"]), sources, d["background"], Orbit.from_dict(d["orbit"], source))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{source}: missing or malformed entry {exc}; not a nerfgen generalizable run") from exc


def write_general_run(run_dir: str | Path, info: GeneralRunInfo, model: nn.Module) -> None:
    """Write ``model.safetensors`` and ``run.json`` (each atomically)."""
    run_dir = Path(run_dir)
    write_tensors(run_dir / MODEL_FILE, model.state_dict())
    write_json(run_dir / RUN_FILE, info.to_dict())


def scene_rays_render(model: nn.Module, features: SceneFeatures, rays, background: Tensor,
                      stratified: bool = False) -> RenderOutput:
    """Render ``rays`` of the scene ``features`` describe (differentiable)."""
    return render_rays(model.field, model.sampler_for(features), rays, background, Conditioning(views=features),
                       stratified)


@torch.no_grad()
def render_image(model: nn.Module, features: SceneFeatures, cameras: Cameras, index: int, background: Tensor,
                 chunk: int = RENDER_CHUNK) -> ImageOutput:
    """Every pixel of camera ``index`` of ``cameras``; the image comes back on the CPU."""
    device = next(model.parameters()).device
    rays = image_rays(cameras.to(device), index)
    sampler = model.sampler_for(features)
    chunk = max(64, min(chunk, CHUNK_SAMPLES // sampler.config.n_samples))
    out = render_rays_chunked(model.field, sampler, rays, background.to(device), Conditioning(views=features), chunk)
    h, w = cameras.height, cameras.width
    return ImageOutput(out.rgb.view(h, w, 3).cpu(), out.depth.view(h, w).cpu(), out.opacity.view(h, w).cpu())


class GeneralRun(VideoRenders):
    """A generalizable model with the scene it shows: its source views (the run's own, or any
    given to :meth:`use_sources`), encoded once.

    Attributes:
        info: the :class:`GeneralRunInfo`.
        model: the network (encoder, field, sampler), in eval mode.
        path: the run directory.
    """

    def __init__(self, info: GeneralRunInfo, model: nn.Module, path: str | Path) -> None:
        self.info, self.model, self.path = info, model, Path(path)
        self.traits = RenderTraits(normals=False)
        self.sources: SourceViews | None = None
        self.features: SceneFeatures | None = None

    @property
    def background(self) -> Tensor:
        return background_color(self.info.background)

    def use_sources(self, sources: SourceViews, orbit: bool = True) -> None:
        """Show the scene of ``sources`` from now on (features computed here, once); with
        ``orbit`` the run's orbit goes round them."""
        from nerfgen.generalize.models import orbit_of

        with torch.no_grad():
            self.features = self.model.encode(sources)
        self.sources = sources
        if orbit:
            self.info = dataclasses.replace(self.info, orbit=orbit_of(sources, self.model))

    def scene(self) -> SceneFeatures:
        """The features of the scene shown (the run's default sources, loaded on first use)."""
        if self.features is None:
            if self.info.sources is None:
                raise ValueError(f"{self.path}: the run has no source views; give some (run.use_sources, or "
                                 "--data CAPTURE --sources I J K)")
            self.use_sources(self.info.sources.load(self.background), orbit=False)
        return self.features

    def source_views(self) -> SourceViews:
        """The source views the scene is rendered from."""
        self.scene()
        return self.sources

    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond=None, chunk: int = RENDER_CHUNK) -> ImageOutput:
        """Camera ``index`` of ``cameras`` seen through the source views; ``normals`` and ``cond``
        are not used."""
        bg = self.background if background is None else background
        return render_image(self.model, self.scene(), cameras, index, bg, min(chunk, RENDER_CHUNK))

    def export_mesh(self, output: str | Path, **options) -> dict:
        raise ValueError(f"{self.path}: a generalizable run renders scenes from their photos; train a per-scene "
                         "run (nerfgen train CAPTURE --init RUN) to export a mesh")


def open_general_run(run_dir: str | Path, info: GeneralRunInfo, device: str) -> GeneralRun:
    """Open the generalizable run in ``run_dir`` on ``device``."""
    from nerfgen.generalize.models import build_model

    with described_by(run_dir):
        model = build_model(info.model, info.config)
    path = Path(run_dir) / MODEL_FILE
    load_state(model, read_tensors(path), path, f"the {info.model} model its run.json describes")
    return GeneralRun(info, model.to(device).eval(), run_dir)


def import_mvsnerf(checkpoint: str | Path, output: str | Path, config=None, capture: str | Path | None = None,
                   sources: list[int] | None = None) -> GeneralRun:
    """A run directory ``output`` holding MVSNeRF's published weights (``checkpoint``, checked
    tensor by tensor) in nerfgen's implementation; its source views are views ``sources`` of
    ``capture``'s training split (the first three when not given), or none."""
    from nerfgen.generalize.models import orbit_of
    from nerfgen.generalize.mvsnerf import MVSNeRF, MVSNeRFConfig, load_mvsnerf_checkpoint

    output = Path(output)
    if (output / RUN_FILE).exists():
        raise FileExistsError(f"{output}: already holds a run; pick another --output")
    config = config or MVSNeRFConfig()
    model = MVSNeRF(config)
    load_mvsnerf_checkpoint(model, checkpoint)
    record, views = None, None
    if capture is not None:
        record = SourceRecord(str(Path(capture).resolve()), list(sources) if sources else [0, 1, 2])
        views = record.load(background_color("black"))
    elif sources:
        raise ValueError("--sources needs --data CAPTURE")
    orbit = orbit_of(views, model) if views is not None else Orbit.around_origin(4.0, 30.0, 40.0, 400)
    info = GeneralRunInfo("mvsnerf", config, str(Path(checkpoint).resolve()), record, "black", orbit)
    write_general_run(output, info, model)
    run = GeneralRun(info, model.eval(), output)
    if views is not None:
        run.use_sources(views, orbit=False)
    return run


__all__ = ["GeneralRun", "GeneralRunInfo", "SourceRecord", "import_mvsnerf", "open_general_run", "render_image",
           "scene_rays_render", "write_general_run"]
