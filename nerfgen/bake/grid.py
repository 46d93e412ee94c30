"""A baked field: a sparse voxel grid of density and spherical-harmonic colour, and how it is
marched (:class:`BakedGrid`), written to and read from ``baked.safetensors`` + ``baked.json``.

>>> grid = BakedGrid.load("runs/lego")                                        # doctest: +SKIP
>>> out = grid.render(rays.origins, rays.directions)                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nerfgen.config import build_config, config_to_dict
from nerfgen.files import read_json, read_tensors, write_json, write_tensors
from nerfgen.ops.baked import (
    MAX_SH_DEGREE,
    BakedMarchSettings,
    BakedRender,
    MarchAccel,
    SparseGrid,
    baked_render,
    half_rows,
    march_accel,
)
from nerfgen.render.occupancy import PREVIEW_EARLY_STOP

TENSORS_FILE = "baked.safetensors"
INFO_FILE = "baked.json"
FORMAT = 1
"""Version of ``baked.json``'s layout."""
PREVIEW_STEP = 4.0
"""How many times longer a bake's preview steps are (:meth:`BakedShading.preview`): a bake marches
half a voxel a step (lego at 512^3: 5x finer than its field's 342 steps across the box), so four
of them still sample every voxel; 46 dB against the full march on lego's orbit at 256x256."""


@dataclass
class BakedShading:
    """How a baked grid is marched and shaded (stored in ``baked.json``)."""

    sh_degree: int = 2
    """Degree of the spherical harmonics of the colour (0: no view dependence; at most 3)."""
    empty_raw: float = -10.0
    """Raw (log) density of absent voxels."""
    step_size: float = 0.0
    """Marching step (world units, or NDC units for forward-facing runs)."""
    cone_angle: float = 0.0
    """Step growth with distance (the run's, for cascaded scenes)."""
    near_plane: float = 0.0
    """Closest sample to the camera."""
    early_stop_eps: float = 1e-3
    """Transmittance below which a ray stops."""

    def validate(self, source: str) -> None:
        if not 0 <= self.sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"{source}: sh_degree: expected 0..{MAX_SH_DEGREE}, got {self.sh_degree}")
        if not self.step_size > 0 or self.cone_angle < 0 or self.near_plane < 0 or not 0 <= self.early_stop_eps < 1:
            raise ValueError(f"{source}: expected step_size > 0, cone_angle >= 0, near_plane >= 0 and early_stop_eps "
                             f"in [0, 1), got {self.step_size}, {self.cone_angle}, {self.near_plane}, {self.early_stop_eps}")

    @property
    def channels(self) -> int:
        """Values per voxel: raw density and (degree + 1)^2 coefficients per colour channel."""
        return 1 + 3 * (self.sh_degree + 1) ** 2

    def march(self) -> BakedMarchSettings:
        return BakedMarchSettings(self.sh_degree, self.empty_raw, self.near_plane, 1e10, self.step_size,
                                  self.cone_angle, self.early_stop_eps)

    def preview(self) -> BakedMarchSettings:
        """The march of frames shown while a viewer's camera moves: steps :data:`PREVIEW_STEP`
        times longer, rays stopped at transmittance ``PREVIEW_EARLY_STOP`` (as a field's preview,
        :meth:`~nerfgen.render.OccupancyGrid.preview`)."""
        return dataclasses.replace(self.march(), step_size=self.step_size * PREVIEW_STEP,
                                   early_stop_eps=max(self.early_stop_eps, PREVIEW_EARLY_STOP))


@dataclass
class BakedGrid:
    """A sparse grid and its values, ready to render rays.

    Attributes:
        grid: the index structure (:class:`~nerfgen.ops.baked.SparseGrid`).
        values: ``[n_rows, 1 + 3 K]`` rows of present voxels: float32 as baked (and fine-tuned),
            float16 as loaded (the file's values, in rows padded for the renderer: :func:`half_rows`).
        shading: SH degree, absent density and the march.
        stats: what the bake measured (voxels, seconds, ...), written to ``baked.json``.
        accel: what marching reuses from call to call (:func:`~nerfgen.ops.baked.march_accel`),
            derived from ``grid`` when the grid is made or loaded, never stored.
    """

    grid: SparseGrid
    values: Tensor
    shading: BakedShading
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    accel: MarchAccel = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.accel = march_accel(self.grid)

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device: torch.device | str) -> BakedGrid:
        values = self.values.to(device)
        if values.dtype == torch.float16:
            values = half_rows(values)
        return BakedGrid(self.grid.to(device), values, self.shading, dict(self.stats))

    def render(self, origins: Tensor, directions: Tensor, preview: bool = False) -> BakedRender:
        """Render rays (no background; see :func:`~nerfgen.ops.baked.baked_render`); ``preview``:
        with the coarser march of :meth:`BakedShading.preview`."""
        if preview:  # rows counted from bits: a moving frame's rays, pixels apart, rarely meet a voxel twice
            return baked_render(origins, directions, self.grid, self.values, self.shading.preview(), self.accel)
        # a still's half-voxel steps and close pixels revisit voxels: voxel_rows stays in cache, and
        # counting rows costs more than it saves there (lego's 800x800 still: 0.84 s counted, 0.80-0.82 s read)
        return baked_render(origins, directions, self.grid, self.values, self.shading.march(),
                            self.accel.reading_voxel_rows())

    def nbytes(self) -> int:
        """Bytes the grid holds in memory (its march's reused data included)."""
        extra = [t for t in (self.accel.cell_bits, self.accel.coarse) if t is not None]
        return sum(t.untyped_storage().nbytes() for t in (*self.grid.tensors(), self.values, *extra))

    # -- files -------------------------------------------------------------------------------------
    def save(self, run_dir: str | Path, half: bool = True) -> int:
        """Write ``baked.safetensors`` (values as float16 unless ``half`` is False) and
        ``baked.json`` into ``run_dir``, each atomically; returns the tensors file's size in bytes."""
        run_dir = Path(run_dir)
        g = self.grid
        tensors = {"block_ids": g.block_ids, "voxel_rows": g.voxel_rows, "cell_occupied": g.cell_occupied,
                   "aabbs": g.aabbs, "values": self.values.half() if half else self.values}
        write_tensors(run_dir / TENSORS_FILE, {k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        size = (run_dir / TENSORS_FILE).stat().st_size
        write_json(run_dir / INFO_FILE, {"format": FORMAT, "shading": config_to_dict(self.shading),
                                         "stats": {**self.stats, "bytes": size}})
        return size

    @classmethod
    def exists(cls, run_dir: str | Path) -> bool:
        return (Path(run_dir) / TENSORS_FILE).is_file() and (Path(run_dir) / INFO_FILE).is_file()

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> BakedGrid:
        """Read a bake written by :meth:`save`; a missing or malformed file is one error naming it."""
        run_dir = Path(run_dir)
        info_path, tensors_path = run_dir / INFO_FILE, run_dir / TENSORS_FILE
        if not cls.exists(run_dir):
            raise FileNotFoundError(f"{run_dir}: no bake ({INFO_FILE} and {TENSORS_FILE}); make one with "
                                    f"`nerfgen bake {run_dir}`")
        info = read_json(info_path)
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise ValueError(f"{info_path}: expected a bake description of format {FORMAT}, got "
                             f"{info.get('format') if isinstance(info, dict) else type(info).__name__!r}")
        shading = build_config(BakedShading, info.get("shading", {}), f"{info_path}: shading")
        t = read_tensors(tensors_path)
        missing = {"block_ids", "voxel_rows", "cell_occupied", "aabbs", "values"} - set(t)
        if missing:
            raise ValueError(f"{tensors_path}: missing tensors {sorted(missing)}; not a nerfgen bake")
        grid = SparseGrid(t["block_ids"], t["voxel_rows"], t["cell_occupied"], t["aabbs"])
        grid.check(str(tensors_path))
        values = t["values"]
        if values.dtype not in (torch.float16, torch.float32):
            raise ValueError(f"{tensors_path}: values must be float16 or float32, got {values.dtype}")
        rows = int(grid.voxel_rows.max()) + 1 if grid.voxel_rows.numel() else 0
        if values.dim() != 2 or values.shape[1] != shading.channels or values.shape[0] < rows:
            raise ValueError(f"{tensors_path}: values must be [>= {rows}, {shading.channels}] for SH degree "
                             f"{shading.sh_degree}, got {tuple(values.shape)}")
        stats = info.get("stats", {})
        values = values.to(device)  # made on the device at once (the march's reused data derived once), padded there
        return cls(grid.to(device), half_rows(values) if values.dtype == torch.float16 else values, shading,
                   dict(stats) if isinstance(stats, dict) else {})
