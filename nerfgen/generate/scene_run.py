"""A generated scene, opened for rendering and editing: :class:`SceneRun` (what
:func:`nerfgen.load_run` gives for a run of kind ``scene``).

Its :attr:`SceneRun.layout` is an input: assign an edited one (move, turn, scale or hide an
object; :meth:`~nerfgen.generate.layout.Layout.edited`) and the next render shows it, nothing
retrained. :meth:`SceneRun.export_mesh` writes each object's mesh placed as in the scene.

>>> run = nerfgen.load_run("runs/stack")                                      # doctest: +SKIP
>>> run.layout = run.layout.edited(0, center=(0.0, 0.4, 0.2))                 # doctest: +SKIP
>>> run.render_orbit("moved.mp4", frames=60)                                  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch
import trimesh
from torch import Tensor

from nerfgen.cameras import Cameras
from nerfgen.config import stored_config
from nerfgen.files import atomic_write
from nerfgen.generate.config import SceneConfig
from nerfgen.generate.layout import LAYOUT_FILE, Layout, read_layout
from nerfgen.generate.scene_model import UNIT_BOX, SceneImage, SceneModel
from nerfgen.kinds import RunKind, described_by
from nerfgen.render import ImageOutput, background_color
from nerfgen.renderable import RenderTraits, VideoRenders
from nerfgen.runs import Run, RunInfo, load_model_tensors

SCENE_FORMATS = (".glb", ".gltf")
"""Mesh files that keep one node per object; other mesh formats get the objects merged into one."""
CALIBRATION_VIEWS = 8
"""Views around each object its mesh's density level is calibrated against."""


class SceneRun(VideoRenders):
    """A scene of object fields placed by a layout.

    Attributes:
        info: the :class:`RunInfo` (kind ``scene``).
        model: the :class:`SceneModel`.
        path: the run directory.
    """

    traits = RenderTraits()

    def __init__(self, info: RunInfo, model: SceneModel, layout: Layout, path: str | Path) -> None:
        self.info, self.model, self.path = info, model, Path(path)
        self.layout = layout

    @property
    def layout(self) -> Layout:
        """Where the objects are; assigning one re-derives the scene's occupancy grid."""
        return self._layout

    @layout.setter
    def layout(self, layout: Layout) -> None:
        self.model.refresh_grid(layout)
        self._layout = layout

    def open_layout(self, path: str | Path) -> None:
        """Place the objects by the layout file ``path`` (an edited copy of ``layout.json``)."""
        layout = read_layout(path)
        if len(layout.objects) != len(self.layout.objects):
            raise ValueError(f"{path}: has {len(layout.objects)} objects but the scene in {self.path} has "
                             f"{len(self.layout.objects)}")
        self.layout = layout

    @property
    def background(self) -> Tensor:
        return background_color(self.info.background)

    @functools.cached_property
    def config(self) -> SceneConfig:
        """The run's config (read once from ``run.json``)."""
        return stored_config(SceneConfig, self.info.config, f"{self.path / 'run.json'}: config")

    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond=None, chunk: int = 1 << 14) -> ImageOutput:
        """The scene seen by camera ``index`` (on the run's background unless given)."""
        if cond is not None:
            raise ValueError("a scene run is conditioned by its layout, not by a Conditioning")
        return self.render_objects(cameras, index, background, normals, chunk).image

    def render_objects(self, cameras: Cameras, index: int = 0, background: Tensor | None = None,
                       normals: bool = False, chunk: int = 1 << 14) -> SceneImage:
        """The scene and, from the same pass, each object's mask and colour as seen in it."""
        bg = self.background if background is None else background
        return self.model.render_camera(cameras, index, self.layout, bg, chunk, normals)

    def object_run(self, k: int) -> Run:
        """Object ``k`` alone in its own frame (its box ``[-1, 1]^3``), as a generation run."""
        if not 0 <= k < len(self.model.objects):
            raise ValueError(f"object {k} does not exist; the scene has objects 0 to {len(self.model.objects) - 1}")
        o = self.layout.objects[k]
        info = RunInfo(RunKind.GENERATION, self.info.model, list(UNIT_BOX), 1, f"generated: {o.prompt}",
                       self.info.background, self.info.train_background, self.info.width, self.info.height,
                       self.info.orbit, self.info.config, prompt=o.prompt)
        return Run(info, self.model.objects[k], self.path)

    def export_mesh(self, output: str | Path | list[str | Path], **options) -> dict:
        """Each shown object's surface (``nerfgen.mesh.MeshOptions`` keywords; the density level
        calibrated per object against views around it) placed by the layout: one named node per
        object in a .glb/.gltf file (textured in a .glb), one merged mesh in any other mesh format.
        ``output`` may name several files: the objects are meshed once and written to each."""
        from nerfgen.mesh import MeshOptions
        from nerfgen.mesh.export import FORMATS, mesh_outputs, textured_surface
        from nerfgen.mesh.extract import extract_mesh

        outputs = mesh_outputs(output, sorted(set(FORMATS + SCENE_FORMATS)))
        if options.get("box") is not None:
            raise ValueError("a scene's objects are each meshed in their own box; --box does not apply")
        start, opts = time.perf_counter(), MeshOptions(**options)
        surfaces, nodes = [], []
        for k, o in enumerate(self.layout.objects):
            if o.hidden:
                continue
            run = self.object_run(k)
            made = extract_mesh(run.model, torch.tensor(UNIT_BOX), opts, run.orbit_cameras(CALIBRATION_VIEWS, 96))
            if len(made.mesh.faces) == 0:
                raise ValueError(f"{outputs[0]}: object {o.name!r} has no surface at density {made.threshold:g}")
            surfaces.append((k, o.name, textured_surface(run.model, made.mesh, opts, outputs)))
            nodes.append({"name": o.name, "vertices": len(made.mesh.vertices), "faces": len(made.mesh.faces),
                          "threshold": round(made.threshold, 3), "watertight": bool(made.mesh.is_watertight)})
        if not nodes:
            raise ValueError(f"{outputs[0]}: every object of the scene is hidden; nothing to export")
        for path in outputs:
            self._write_scene(path, surfaces)
        return {"output": str(outputs[0]) if len(outputs) == 1 else [str(p) for p in outputs], "objects": nodes,
                "vertices": sum(n["vertices"] for n in nodes), "faces": sum(n["faces"] for n in nodes),
                "seconds": round(time.perf_counter() - start, 2)}

    def _write_scene(self, output: Path, surfaces: list) -> None:
        """``surfaces`` (object index, name, Surface) placed by the layout into ``output``."""
        suffix = output.suffix.lower()
        scene = trimesh.Scene()
        to_world = self.layout.object_to_world().numpy()
        for k, name, surface in surfaces:
            mesh = surface.textured if suffix == ".glb" and surface.textured is not None else surface.mesh
            scene.add_geometry(mesh, node_name=name, geom_name=name, transform=to_world[k])
        if suffix in SCENE_FORMATS:
            atomic_write(output, lambda tmp: scene.export(tmp, file_type=suffix[1:]))
        else:
            merged = scene.to_geometry() if hasattr(scene, "to_geometry") else scene.dump(concatenate=True)
            atomic_write(output, lambda tmp: merged.export(tmp, file_type=suffix[1:]))


def open_scene_run(run_dir: str | Path, info: RunInfo, device: str) -> SceneRun:
    """Open the scene run in ``run_dir`` (described by ``info``) on ``device``, placed by its
    ``layout.json``: what :func:`nerfgen.load_run` does for a run of kind ``scene``."""
    run_dir = Path(run_dir)
    saved = read_layout(run_dir / LAYOUT_FILE)
    config = stored_config(SceneConfig, info.config, f"{run_dir / 'run.json'}: config")
    with described_by(run_dir):
        model = SceneModel(info.model, len(saved.objects), config.scene.box, config.scene.grid_resolution)
    load_model_tensors(model, run_dir)
    return SceneRun(info, model.to(device).eval(), saved, run_dir)
