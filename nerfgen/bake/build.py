r"""Baking a radiance field into a sparse voxel grid (PlenOctrees' conversion, on SNeRG's blocks).

1. **Where**: the run's occupancy grid (or, for samplers without one, the density on a coarse
   grid) names the regions that may hold anything; each region is one block of :math:`B^3`
   voxels, and the blocks next to occupied ones are taken too (the grid's cells are coarse).
2. **Which voxels**: the field's density at every voxel centre of those blocks; a voxel is
   *significant* when its opacity over one voxel, :math:`1 - e^{-\sigma \Delta}`, exceeds
   ``min_alpha``. The voxels kept are the significant ones and their 26 neighbours, so that the
   trilinear interpolation around every significant voxel reads the field's own values; the
   cells marching samples are those same voxels' cells.
3. **Values**: the raw (log) density, and the colour seen from ``directions`` view directions
   (a Fibonacci sphere) fitted by least squares with ``sh_degree`` spherical harmonics in logit
   space (the grid shows ``sigmoid`` of the SH sum, PlenOctrees' choice).

>>> baked = bake_model(run.model, BakeConfig(resolution=512))    # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.bake.grid import BakedGrid, BakedShading
from nerfgen.ops.baked import MAX_SH_DEGREE, SparseGrid, sh_basis_torch
from nerfgen.render import OccupancyGrid, RadianceModel


@dataclass
class BakeConfig:
    """How a run is baked (``nerfgen bake`` options)."""

    resolution: int = 512
    """Voxels per axis of each level (a multiple of the occupancy grid's resolution)."""
    sh_degree: int = 2
    """Degree of the colour's spherical harmonics (0: one colour per voxel; at most 3)."""
    min_alpha: float = 0.01
    """Opacity over one voxel above which a voxel is significant (it and its neighbours are kept)."""
    directions: int = 32
    """View directions the colour of each voxel is fitted to."""
    step_ratio: float = 0.5
    """Marching step, in voxels of the finest level."""
    early_stop_eps: float = 1e-3
    """Transmittance below which a baked render stops a ray."""
    empty_raw: float = -10.0
    """Raw density of absent voxels (their density is exp of it)."""
    finetune_seconds: float = 0.0
    """Seconds of fine-tuning the baked values against the training images (0: none)."""
    finetune_steps: int = 0
    """Steps of fine-tuning instead (0: as many as ``finetune_seconds`` allow)."""
    finetune_lr: float = 0.01
    """Adam's learning rate for fine-tuning."""
    finetune_rays: int = 8192
    """Rays per fine-tuning step."""

    def validate(self, source: str) -> None:
        if self.resolution < 1 or self.resolution > 4096:
            raise ValueError(f"{source}: resolution: expected 1..4096, got {self.resolution}")
        if not 0 <= self.sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"{source}: sh_degree: expected 0..{MAX_SH_DEGREE}, got {self.sh_degree}")
        if self.directions < (self.sh_degree + 1) ** 2:
            raise ValueError(f"{source}: directions: need at least {(self.sh_degree + 1) ** 2} for SH degree "
                             f"{self.sh_degree}, got {self.directions}")
        if not (0 < self.min_alpha < 1 and self.step_ratio > 0 and 0 <= self.early_stop_eps < 1
                and self.finetune_seconds >= 0 and self.finetune_steps >= 0 and self.finetune_lr > 0
                and self.finetune_rays >= 1):
            raise ValueError(f"{source}: expected 0 < min_alpha < 1, step_ratio > 0, 0 <= early_stop_eps < 1, "
                             "finetune_seconds >= 0, finetune_lr > 0 and finetune_rays >= 1")


def fibonacci_directions(n: int) -> Tensor:
    """``[n, 3]`` unit directions spread evenly over the sphere."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (3 - math.sqrt(5)) * i
    r = (1 - z * z).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], -1).float()


def radiance_at(field, positions: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
    """``sigma [n]`` and ``rgb [n, m, 3]`` of ``field`` at ``positions [n, 3]`` seen along each of
    ``directions [m, 3]``: the field's own ``radiance_at`` when it has one (the density network
    once), else one call per direction."""
    own = getattr(field, "radiance_at", None)
    if own is not None:
        return own(positions, directions)
    outs = [field(positions, d.expand_as(positions)) for d in directions]
    return outs[0].sigma, torch.stack([o.rgb for o in outs], 1)


def coarse_occupancy(model: RadianceModel, chunk: int) -> tuple[Tensor, Tensor]:
    """``[L, G, G, G]`` bool regions that may hold anything and their boxes ``[L, 6]``: the
    occupancy grid's, or (other samplers) the density at 8 points a cell of a 64^3 grid."""
    sampler = model.sampler
    if isinstance(sampler, OccupancyGrid):
        return sampler.binaries.clone(), sampler.aabbs.clone()
    aabb = sampler.outer_aabb[None].clone()
    res = 64
    lo, hi = aabb[0, :3], aabb[0, 3:]
    axis = (torch.arange(2 * res, device=aabb.device) + 0.5) / (2 * res)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    sigma = torch.cat([model.field.density(lo + p * (hi - lo)) for p in grid.split(chunk)])
    cell = float((hi - lo).max()) / res
    alpha = 1 - torch.exp(-sigma * cell)
    return F.max_pool3d(alpha.view(1, 1, *(2 * res,) * 3), 2)[0] > 0.01, aabb


def dilate_dense(mask: Tensor) -> Tensor:
    """``[L, G, G, G]`` bool grown by one cell in every direction (per level)."""
    return F.max_pool3d(mask.float()[:, None], 3, stride=1, padding=1)[:, 0] > 0


def neighbours(coords: Tensor, block_map: Tensor, axis: int, step: int) -> Tensor:
    """``[n]`` index of each block's neighbour ``step`` blocks along ``axis`` (-1: none)."""
    c = coords.clone()
    c[:, 1 + axis] += step
    G = block_map.shape[1]
    inside = (c[:, 1:] >= 0).all(-1) & (c[:, 1:] < G).all(-1)
    c = c.clamp(min=0)
    c[:, 1:] = c[:, 1:].clamp(max=G - 1)
    return torch.where(inside, block_map[c[:, 0], c[:, 1], c[:, 2], c[:, 3]], -1)


def dilate_voxels(mask: Tensor, coords: Tensor, block_map: Tensor) -> Tensor:
    """``mask [n, B, B, B]`` of the voxels of blocks ``coords [n, 4]`` (level, i, j, k), grown by one
    voxel in every direction across block faces (blocks not in ``block_map`` take nothing)."""
    out = mask
    B = mask.shape[1]
    for axis in range(3):
        dim = axis + 1
        before, after = neighbours(coords, block_map, axis, -1), neighbours(coords, block_map, axis, 1)
        last, first = out.select(dim, B - 1), out.select(dim, 0)  # [n, B, B]
        pad_lo = (last[before.clamp(min=0)] & (before >= 0)[:, None, None]).unsqueeze(dim)
        pad_hi = (first[after.clamp(min=0)] & (after >= 0)[:, None, None]).unsqueeze(dim)
        padded = torch.cat([pad_lo, out, pad_hi], dim)
        out = padded.narrow(dim, 0, B) | padded.narrow(dim, 1, B) | padded.narrow(dim, 2, B)
    return out


def voxel_centres(coords: Tensor, aabbs: Tensor, block_size: int, resolution: int) -> Tensor:
    """``[n, B, B, B, 3]`` world centres of the voxels of blocks ``coords [n, 4]``."""
    B = block_size
    local = torch.stack(torch.meshgrid(*(torch.arange(B, device=coords.device),) * 3, indexing="ij"), -1)  # [B,B,B,3]
    ijk = coords[:, None, None, None, 1:] * B + local[None]  # [n, B, B, B, 3]
    box = aabbs[coords[:, 0]]  # [n, 6]
    lo, hi = box[:, None, None, None, :3], box[:, None, None, None, 3:]
    return lo + (ijk.float() + 0.5) / resolution * (hi - lo)


def kept_centres(kept: Tensor, coords: Tensor, aabbs: Tensor, resolution: int) -> Tensor:
    """``[n_rows, 3]`` world centres of the kept voxels of ``kept [n, B, B, B]`` in row order."""
    index = torch.nonzero(kept)  # [n_rows, 4]: block, local voxel
    block = coords[index[:, 0]]
    ijk = block[:, 1:] * kept.shape[1] + index[:, 1:]
    box = aabbs[block[:, 0]]
    return box[:, :3] + (ijk.float() + 0.5) / resolution * (box[:, 3:] - box[:, :3])


def _log(say: Callable[[str], None] | None, message: str) -> None:
    if say is not None:
        say(message)


@torch.no_grad()
def bake_model(model: RadianceModel, config: BakeConfig, say: Callable[[str], None] | None = None,
               chunk: int = 1 << 16) -> BakedGrid:
    """Bake ``model`` (a radiance field in a box: any sampler, NDC included; not scene
    contraction) into a :class:`BakedGrid` (see the module)."""
    config.validate("bake")
    field = model.field
    if field.contraction != "none":
        raise ValueError("baking needs a field in a box; this run contracts space (an unbounded capture's "
                         "proposal sampler), which the baked grid does not model")
    start = time.perf_counter()
    coarse, aabbs = coarse_occupancy(model, chunk)
    G = coarse.shape[1]
    if config.resolution % G:
        raise ValueError(f"bake: resolution {config.resolution} is not a multiple of the occupancy grid's {G}")
    B, R = config.resolution // G, config.resolution
    candidate = dilate_dense(coarse)
    coords = torch.nonzero(candidate)  # [n, 4]
    block_map = torch.full(candidate.shape, -1, dtype=torch.long, device=coords.device)
    block_map[candidate] = torch.arange(coords.shape[0], device=coords.device)
    _log(say, f"bake: {coords.shape[0]} candidate blocks of {B}^3 voxels ({int(coarse.sum())} occupied regions)")
    raw = torch.empty(coords.shape[0], B, B, B, device=coords.device)
    per_chunk = max(1, chunk // B**3)
    for i in range(0, coords.shape[0], per_chunk):
        centres = voxel_centres(coords[i:i + per_chunk], aabbs, B, R)
        sigma = field.density(centres.reshape(-1, 3))
        raw[i:i + per_chunk] = torch.log(sigma.clamp(min=1e-30)).clamp(min=config.empty_raw).view(-1, B, B, B)
    size = (aabbs[coords[:, 0], 3:] - aabbs[coords[:, 0], :3]).max(-1).values / R  # [n] voxel edge
    significant = 1 - torch.exp(-torch.exp(raw) * size[:, None, None, None]) > config.min_alpha
    kept = dilate_voxels(significant, coords, block_map)
    used = kept.flatten(1).any(1)
    coords, kept, raw = coords[used], kept[used], raw[used]
    block_ids = torch.full(candidate.shape, -1, dtype=torch.int32, device=coords.device)
    block_ids[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] = torch.arange(
        coords.shape[0], dtype=torch.int32, device=coords.device)
    voxel_rows = torch.full(kept.shape, -1, dtype=torch.int32, device=coords.device)
    n_rows = int(kept.sum())
    voxel_rows[kept] = torch.arange(n_rows, dtype=torch.int32, device=coords.device)
    grid = SparseGrid(block_ids, voxel_rows, kept.clone(), aabbs.float().contiguous())
    _log(say, f"bake: {n_rows} voxels kept ({int(significant.sum())} significant) in {coords.shape[0]} blocks; "
              f"fitting colour from {config.directions} directions")
    positions = kept_centres(kept, coords, aabbs, R)  # [n_rows, 3], in row order
    values = torch.empty(n_rows, 1 + 3 * (config.sh_degree + 1) ** 2, device=coords.device)
    values[:, 0] = raw[kept]
    values[:, 1:] = fit_colours(field, positions, config, chunk)
    sampler = model.sampler
    shading = BakedShading(
        sh_degree=config.sh_degree, empty_raw=config.empty_raw,
        step_size=float((aabbs[0, 3:] - aabbs[0, :3]).max()) / R * config.step_ratio,
        cone_angle=getattr(sampler, "cone_angle", 0.0),
        near_plane=getattr(getattr(sampler, "config", None), "near_plane", 0.0) if isinstance(sampler, OccupancyGrid)
        else 0.0, early_stop_eps=config.early_stop_eps)
    stats = {"resolution": R, "block_size": B, "blocks": int(coords.shape[0]), "voxels": n_rows,
             "significant_voxels": int(significant.sum()), "directions": config.directions,
             "min_alpha": config.min_alpha, "bake_seconds": round(time.perf_counter() - start, 2)}
    return BakedGrid(grid, values, shading, stats)


def fit_colours(field, positions: Tensor, config: BakeConfig, chunk: int) -> Tensor:
    """``[n, 3 K]`` SH coefficients (red, green, blue) fitted in logit space to the field's colour
    at ``positions [n, 3]`` seen from ``config.directions`` directions (least squares)."""
    dirs = fibonacci_directions(config.directions).to(positions.device)
    basis = sh_basis_torch(dirs, config.sh_degree)  # [m, K]
    solve = torch.linalg.pinv(basis.double()).float()  # [K, m]
    out = []
    per_chunk = max(1, chunk // config.directions)
    for part in positions.split(per_chunk):
        _, rgb = radiance_at(field, part, dirs)  # [n, m, 3]
        logits = torch.logit(rgb.clamp(1e-3, 1 - 1e-3))
        coefs = torch.einsum("km,nmc->nck", solve, logits)  # [n, 3, K]
        out.append(coefs.reshape(part.shape[0], -1))
    return torch.cat(out) if out else positions.new_zeros(0, 3 * (config.sh_degree + 1) ** 2)
