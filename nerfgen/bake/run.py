"""Baked runs: :func:`bake` turns a run's radiance field into a sparse voxel grid written into the
run directory (``baked.safetensors`` + ``baked.json``), :func:`load_baked` opens it as a
:class:`BakedRun` that renders any camera from the grid alone (the same cameras and compositing
as the run, a different sampler and lookup), in milliseconds on a CPU.

>>> stats = bake("runs/lego")                       # doctest: +SKIP
>>> run = load_baked("runs/lego")                   # doctest: +SKIP
>>> image = run.render(run.orbit_cameras(8), 3)     # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nerfgen.bake.build import BakeConfig, bake_model
from nerfgen.bake.grid import INFO_FILE, TENSORS_FILE, BakedGrid
from nerfgen.cameras import Cameras, Rays, image_rays
from nerfgen.cameras.ndc import NDCConfig, ndc_rays
from nerfgen.engine.config import resolve_device
from nerfgen.engine.metrics import psnr
from nerfgen.kinds import RunKind, load_run, read_info
from nerfgen.render import ImageOutput, background_color
from nerfgen.renderable import RenderTraits, VideoRenders


class BakedRun(VideoRenders):
    """A run shown from its bake: what ``--baked`` opens (:class:`~nerfgen.renderable.Renderable`).

    Attributes:
        info: the run's :class:`~nerfgen.runs.RunInfo` (cameras, orbit, background).
        baked: the :class:`BakedGrid`.
        path: the run directory.
        ndc: the run's normalised device coordinates (forward-facing captures), or disabled.
    """

    def __init__(self, info: Any, baked: BakedGrid, path: str | Path, ndc: NDCConfig, device: str = "cpu") -> None:
        self.info, self.baked, self.path, self.ndc = info, baked, Path(path), ndc
        self.device = device
        # bands of 4x a field's rays: a bake renders them in tens of milliseconds, and fewer calls
        # save their fixed costs (lego's 800x800 still in 10 bands rather than 40)
        self.traits = RenderTraits(normals=False, training_cameras=info.kind is RunKind.RECONSTRUCTION, previews=True,
                                   band_rays=1 << 16)
        self._field_run = None

    @property
    def background(self) -> Tensor:
        """``[3]`` the colour the run is shown on."""
        return background_color(self.info.background)

    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond: Any = None, chunk: int = 1 << 14, preview: bool = False) -> ImageOutput:
        """Camera ``index`` of ``cameras`` rendered from the bake (one pass over all pixels; ``chunk``
        is not needed); the image comes back on the CPU. ``preview``: the bake's coarser march
        (:meth:`~nerfgen.bake.grid.BakedShading.preview`), for frames shown while a viewer's camera
        moves."""
        if normals:
            raise ValueError(f"{self.path}: a baked run renders no normals (render the run itself)")
        if cond is not None:
            raise ValueError(f"{self.path}: a baked run takes no conditioning")
        bg = (self.background if background is None else background).to(self.baked.device)
        rays = camera_rays(cameras.to(self.baked.device), index)
        if self.ndc.enabled:
            rays = ndc_rays(rays, self.ndc)
        out = self.baked.render(rays.origins, rays.directions, preview)
        rgb = out.color + (1 - out.opacity[:, None]) * bg
        depth = out.depth / out.opacity.clamp(min=1e-6)
        h, w = cameras.height, cameras.width
        return ImageOutput(rgb.view(h, w, 3).cpu(), depth.view(h, w).cpu(), out.opacity.view(h, w).cpu())

    def refined(self):
        """The run itself (its full field), for views where sharpness matters more than time
        (loaded on first use)."""
        if self._field_run is None:
            self._field_run = load_run(self.path, self.device)
        return self._field_run

    def export_mesh(self, output: str | Path, **options: Any) -> dict:
        raise ValueError(f"{self.path}: export the run itself (`nerfgen export {self.path}`); the bake holds no "
                         "more than its field")

    def profile_stages(self) -> list[tuple[Any, str, str]]:
        """(owner, attribute, stage) of the calls ``bench/stages.py`` times."""
        from nerfgen.bake import run as this

        return [(this, "camera_rays", "rays"), (BakedGrid, "render", "render_kernel")]


def camera_rays(cameras: Cameras, index: int) -> Rays:
    """Rays through all pixel centres of camera ``index``, row-major, as
    :func:`~nerfgen.cameras.image_rays` makes them (to float rounding); for a pinhole camera without
    distortion in a few passes over the image instead of a 3x3 product per pixel (a viewer frame's
    rays in a fraction of a millisecond)."""
    if any(cameras.lenses):
        return image_rays(cameras, index)
    i = index % len(cameras)
    c2w = cameras.c2w[i]  # [3, 4]
    rot = c2w[:, :3]
    device, dtype = c2w.device, c2w.dtype
    x = (torch.arange(cameras.width, device=device, dtype=dtype) + 0.5 - cameras.cx[i]) / cameras.fx[i]  # [W]
    y = (torch.arange(cameras.height, device=device, dtype=dtype) + 0.5 - cameras.cy[i]) / cameras.fy[i]  # [H]
    # camera direction (x, -y, -1) rotated to the world: x R0 - (y R1 + R2)
    across = y[:, None, None] * rot[:, 1] + rot[:, 2]  # [H, 1, 3]
    directions = (x[None, :, None] * rot[:, 0] - across).view(-1, 3)
    directions = directions / torch.linalg.vector_norm(directions, dim=-1, keepdim=True)
    return Rays(origins=c2w[:, 3].expand(directions.shape[0], 3).contiguous(), directions=directions)


def _open_field_run(run_dir: Path, device: str):
    run = load_run(run_dir, device)
    if not hasattr(run, "model") or not hasattr(run.model, "field"):
        raise ValueError(f"{run_dir}: a {run.info.kind.value} run has no single radiance field to bake "
                         "(bake reconstruction or generation runs)")
    return run


def bake(run_dir: str | Path, config: BakeConfig | None = None, device: str = "auto",
         say: Callable[[str], None] | None = None) -> dict:
    """Bake the run in ``run_dir`` (see :mod:`nerfgen.bake.build`), fine-tune it against the training
    images when ``config.finetune_seconds`` > 0 (reconstruction runs), and write it into the run
    directory. Returns what ``baked.json`` records: voxels, seconds, bytes, and the fidelity of
    the bake to the field (PSNR between their renders of four orbit views)."""
    from nerfgen.bake.finetune import finetune

    config = config or BakeConfig()
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    run_dir = Path(run_dir)
    device = resolve_device(device)
    run = _open_field_run(run_dir, device)
    start = time.perf_counter()
    baked = bake_model(run.model, config, say)
    if config.finetune_seconds > 0 or config.finetune_steps > 0:
        if run.info.kind is not RunKind.RECONSTRUCTION:
            raise ValueError(f"{run_dir}: fine-tuning needs the training images of a reconstruction run; this is a "
                             f"{run.info.kind.value} run (bake it without --finetune)")
        baked.stats["finetune"] = finetune(baked, run, config, say)
    baked.stats["seconds"] = round(time.perf_counter() - start, 2)
    baked.stats["fidelity_psnr"] = round(fidelity(run, BakedRun(run.info, baked, run_dir, run.model.spec.ndc)), 2)
    size = baked.save(run_dir)
    baked.stats["bytes"] = size
    say(f"bake: wrote {run_dir / TENSORS_FILE} ({size / 2**20:.1f} MB) and {run_dir / INFO_FILE} in "
        f"{baked.stats['seconds']:.1f} s; {baked.stats['voxels']} voxels, renders the field's orbit views at "
        f"{baked.stats['fidelity_psnr']:.1f} dB")
    return baked.stats


@torch.no_grad()
def fidelity(run, baked: BakedRun, views: int = 4, side: int = 96) -> float:
    """Mean PSNR of the bake's renders against the field's on ``views`` orbit views."""
    cams = run.orbit_cameras(views, side)
    scores = [psnr(baked.render(cams, i).rgb, run.render(cams, i).rgb) for i in range(views)]
    return sum(scores) / len(scores)


def load_baked(run_dir: str | Path, device: str = "auto") -> BakedRun:
    """Open the bake of the run in ``run_dir`` (written by :func:`bake` / ``nerfgen bake``)."""
    run_dir = Path(run_dir)
    device = resolve_device(device)
    info = read_info(run_dir)
    if not BakedGrid.exists(run_dir):
        raise FileNotFoundError(f"{run_dir}: no bake ({TENSORS_FILE}); make one with `nerfgen bake {run_dir}`")
    ndc = getattr(getattr(info, "model", None), "ndc", None) or NDCConfig()
    return BakedRun(info, BakedGrid.load(run_dir, device), run_dir, ndc, device)


def compare_with_field(field_report: Path, per_view: list[dict]) -> dict:
    """How a baked evaluation's ``per_view`` compares with the field's report of the same split
    (``eval_{split}.json``, from ``nerfgen eval`` without ``--baked``) on the views both cover:
    ``field_psnr``, ``baked_psnr`` and ``psnr_drop`` over them; nothing when there is no such report."""
    from nerfgen.files import read_json

    if not field_report.is_file():
        return {}
    field = {v.get("view"): v.get("psnr") for v in read_json(field_report).get("per_view", [])}
    shared = [(v["psnr"], field[v["view"]]) for v in per_view if isinstance(field.get(v["view"]), (int, float))]
    if not shared:
        return {}
    baked_psnr = sum(b for b, _ in shared) / len(shared)
    field_psnr = sum(f for _, f in shared) / len(shared)
    return {"field_report": field_report.name, "shared_views": len(shared), "field_psnr": field_psnr,
            "baked_psnr": baked_psnr, "psnr_drop": field_psnr - baked_psnr}
