r"""Baked fields: a sparse voxel grid of density and spherical-harmonic colour (compiled kernels
and their pure-torch twins).

A :class:`SparseGrid` has ``L`` nested levels (the occupancy grid's cascades), each of :math:`R^3`
voxels (:math:`R = G B`) stored in blocks of :math:`B^3`; only blocks where something is hold
voxel rows, and only some voxels of a block are present. Values sit at voxel centres and are
interpolated trilinearly; absent voxels contribute nothing:

.. math:: s_c(x) = \sum_i w_i\, p_i\, v_{r_i, c}, \qquad p(x) = \sum_i w_i\, p_i .

A baked radiance field reads a row as ``[raw density, K SH coefficients of red, green, blue]``
(:math:`K = (\text{degree} + 1)^2`): :math:`\sigma = \exp(\min(s_0 + (1 - p)\,\rho_\emptyset, 15))`
(0 where :math:`p = 0`) and :math:`c = \mathrm{sigmoid}(\sum_k Y_k(d)\, s_{1+k} / p)` per channel.

* :func:`sparse_interp`: :math:`s, p` at points, differentiable in the values (fine-tuning);
* :func:`baked_traverse`: the samples of a march through the occupied cells (as
  :func:`~nerfgen.ops.traverse_grids`, regions without a block skipped whole);
* :func:`baked_render`: march, shade and composite in one pass with early termination (viewing),
  from float32 rows or float16 ones (:func:`half_rows`: half the bytes a sample reads);
* :func:`march_accel`: what marching a grid reuses from call to call (the occupancy bit-packed,
  empty regions of blocks, a box around every block), computed once per grid.

Each runs the C++/OpenMP kernel (``cuda/src/baked_cpu.cpp``; ``baked.cu`` in a CUDA build) when it
serves the tensors, else its ``*_torch`` twin (same signature, same results to float rounding;
marching keeps exactly the twin's samples with uniform steps).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.ops import _backend
from nerfgen.ops.intersect import ray_aabb_intersect_torch
from nerfgen.ops.march import _steps_to, _t_of_step
from nerfgen.ops.packed import RaySamples
from nerfgen.ops.volrend import volume_render_torch

MAX_SH_DEGREE = 3
RAW_MAX = 15.0
"""Largest raw density a baked grid shows (as the fields' truncated exponential)."""


@dataclass
class SparseGrid:
    """The index structure of a baked grid (the values live beside it).

    Attributes:
        block_ids: ``[L, G, G, G]`` int32, the block of each region or -1.
        voxel_rows: ``[n_blocks, B, B, B]`` int32, the value row of each voxel or -1 (absent).
        cell_occupied: ``[n_blocks, B, B, B]`` bool, whether a sample in a voxel's cell may see
            density (what marching samples).
        aabbs: ``[L, 6]`` float32 nested boxes, level 0 the finest.
    """

    block_ids: Tensor
    voxel_rows: Tensor
    cell_occupied: Tensor
    aabbs: Tensor

    @property
    def block_size(self) -> int:
        return self.voxel_rows.shape[1]

    @property
    def resolution(self) -> int:
        """Voxels per axis of each level, ``G B``."""
        return self.block_ids.shape[1] * self.block_size

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.block_ids, self.voxel_rows, self.cell_occupied, self.aabbs

    def to(self, device: torch.device | str) -> SparseGrid:
        return SparseGrid(*(t.to(device) for t in self.tensors()))

    def check(self, source: str = "SparseGrid") -> None:
        """One ValueError naming ``source`` unless the tensors fit together."""
        b, v, o, a = self.tensors()
        ok = (b.dim() == 4 and b.shape[1] == b.shape[2] == b.shape[3] and b.dtype == torch.int32
              and v.dim() == 4 and v.shape[1] >= 1 and v.shape[1] == v.shape[2] == v.shape[3] and v.dtype == torch.int32
              and o.shape == v.shape and o.dtype == torch.bool and a.shape == (b.shape[0], 6) and a.dtype == torch.float32)
        if not ok:
            raise ValueError(f"{source}: expected block_ids int32 [L, G, G, G], voxel_rows int32 and cell_occupied bool "
                             f"[n_blocks, B, B, B], aabbs float32 [L, 6]; got {[(t.dtype, tuple(t.shape)) for t in (b, v, o, a)]}")
        if b.numel() and int(b.max()) >= v.shape[0]:
            raise ValueError(f"{source}: block_ids name block {int(b.max())} of {v.shape[0]}")


COARSE_FACTOR = 4
"""Blocks per axis of a region :func:`march_accel` marks empty or not (grids of at least 8 blocks a side)."""


@dataclass(frozen=True, eq=False)
class MarchAccel:
    """What the marching kernels reuse from call to call for one grid (:func:`march_accel`).

    Attributes:
        cell_bits: ``[n_blocks, W]`` uint8, ``cell_occupied`` bit-packed: cell ``c`` of a block
            (flat, ``(i B + j) B + k``) is bit ``c & 7`` of byte ``c >> 3``; ``W`` a multiple of 8
            (64 bytes, one cache line, at ``B = 8``).
        present_bits: ``[n_blocks, W]`` int64, ``voxel_rows >= 0`` bit-packed alike (voxel ``v`` is
            bit ``v & 63`` of word ``v >> 6``), and
        row_base: ``[n_blocks, W]`` int32, the row of each word's first present voxel: where each
            block's rows run in voxel order (as a bake writes them), the row of present voxel ``v``
            is ``row_base[v >> 6]`` plus the present voxels below it in its word, read from 1.5 MB
            of bits instead of lego's 32 MB of ``voxel_rows``; None otherwise.
        coarse: ``[L, G / 4, G / 4, G / 4]`` bool, whether any block lies in each region of
            :data:`COARSE_FACTOR`:sup:`3` blocks (marching skips empty ones whole), or None.
        bounds: a box ``(x0, y0, z0, x1, y1, z1)`` around every block of every level (grown by a
            hair against rounding): marching starts and ends each ray there.
    """

    cell_bits: Tensor
    present_bits: Tensor | None
    row_base: Tensor | None
    coarse: Tensor | None
    bounds: tuple[float, ...]

    def reading_voxel_rows(self) -> MarchAccel:
        """The same, rows read from ``voxel_rows`` rather than counted from bits."""
        return dataclasses.replace(self, present_bits=None, row_base=None)

    def args(self) -> tuple:
        """The kernels' ``cell_bits, present_bits, row_base, coarse, bounds`` arguments."""
        return self.cell_bits, self.present_bits, self.row_base, self.coarse, list(self.bounds)


def pack_cell_bits(cell_occupied: Tensor) -> Tensor:
    """``cell_occupied [n_blocks, B, B, B]`` bool -> ``[n_blocks, W]`` uint8 bits (see :class:`MarchAccel`)."""
    n = cell_occupied.shape[0]
    cells = cell_occupied.reshape(n, math.prod(cell_occupied.shape[1:]))
    width = -(-cells.shape[1] // 64) * 8  # bytes, whole 64-bit words
    bits = torch.zeros(n, width * 8, dtype=torch.uint8, device=cells.device)
    bits[:, : cells.shape[1]] = cells
    weights = torch.tensor([1 << b for b in range(8)], dtype=torch.uint8, device=cells.device)
    return (bits.view(n, width, 8) * weights).sum(-1, dtype=torch.uint8)


def unpack_cell_bits(cell_bits: Tensor, block_size: int) -> Tensor:
    """The inverse of :func:`pack_cell_bits`: ``[n_blocks, B, B, B]`` bool."""
    n = cell_bits.shape[0]
    shifts = torch.arange(8, dtype=torch.uint8, device=cell_bits.device)
    cells = ((cell_bits[..., None] >> shifts) & 1).view(n, cell_bits.shape[1] * 8)[:, : block_size**3]
    return cells.bool().view(n, block_size, block_size, block_size)


def _ranked_rows(voxel_rows: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """``present_bits, row_base`` of :class:`MarchAccel` where the rows run in voxel order, block after
    block (``voxel_rows[voxel_rows >= 0]`` is ``0, 1, 2, ...``), else ``None, None``."""
    n = voxel_rows.shape[0]
    present = voxel_rows >= 0
    rows = voxel_rows[present]
    if not torch.equal(rows, torch.arange(rows.shape[0], dtype=rows.dtype, device=rows.device)):
        return None, None
    bits = pack_cell_bits(present).view(torch.int64)  # [n, W]
    cells = present.reshape(n, math.prod(present.shape[1:]))
    padded = torch.zeros(n, bits.shape[1] * 64, dtype=torch.int32, device=cells.device)
    padded[:, : cells.shape[1]] = cells
    per_word = padded.view(-1, 64).sum(-1, dtype=torch.int64)  # [n W]
    row_base = (torch.cumsum(per_word, 0) - per_word).to(torch.int32).view(n, bits.shape[1])
    return bits, row_base


def _block_bounds(grid: SparseGrid) -> tuple[float, ...]:
    """A box around every block of every level, grown by a hair (a point box when there is none)."""
    lo, hi = [math.inf] * 3, [-math.inf] * 3
    G = grid.block_ids.shape[1]
    for level in range(grid.block_ids.shape[0]):
        where = (grid.block_ids[level] >= 0).nonzero()
        if where.shape[0] == 0:
            continue
        first, last = where.min(0).values.tolist(), where.max(0).values.tolist()
        box = grid.aabbs[level].tolist()
        for a in range(3):
            cell = (box[a + 3] - box[a]) / G
            lo[a], hi[a] = min(lo[a], box[a] + cell * first[a]), max(hi[a], box[a] + cell * (last[a] + 1))
    out = [0.0] * 6
    for a in range(3):
        if not lo[a] <= hi[a]:
            lo[a] = hi[a] = 0.0  # no block: a point box no ray crosses with any length
        margin = 1e-4 * (abs(lo[a]) + abs(hi[a]) + (hi[a] - lo[a])) + 1e-6
        out[a], out[a + 3] = lo[a] - margin, hi[a] + margin
    return tuple(out)


def march_accel(grid: SparseGrid) -> MarchAccel:
    """What the marching kernels reuse for ``grid`` (:class:`MarchAccel`), on its device: compute
    it once per grid (a loaded bake does, :class:`~nerfgen.bake.grid.BakedGrid`) rather than per call.

    >>> accel = march_accel(grid)                                   # doctest: +SKIP
    >>> out = baked_render(origins, directions, grid, values, settings, accel)   # doctest: +SKIP
    """
    L, G = grid.block_ids.shape[:2]
    coarse = None
    if G % COARSE_FACTOR == 0 and G >= 2 * COARSE_FACTOR:
        r, f = G // COARSE_FACTOR, COARSE_FACTOR
        coarse = (grid.block_ids >= 0).view(L, r, f, r, f, r, f).any(6).any(4).any(2).contiguous()
    return MarchAccel(pack_cell_bits(grid.cell_occupied), *_ranked_rows(grid.voxel_rows), coarse, _block_bounds(grid))


def _serves(*tensors: Tensor, dtypes=(torch.float32,)) -> bool:
    return _backend.kernels_serve(*tensors, dtypes=dtypes)


# --- interpolation --------------------------------------------------------------------------------


def _levels(positions: Tensor, aabbs: Tensor) -> tuple[Tensor, Tensor]:
    """Finest level whose box holds each point (float32 tests, as the kernel), and whether any does."""
    x = positions.float()[:, None]
    inside = ((x >= aabbs[:, :3]) & (x < aabbs[:, 3:])).all(-1)  # [n, L]
    found = inside.any(-1)
    return torch.where(found, inside.int().argmax(-1), aabbs.shape[0] - 1), found


def _at_block(table: Tensor, block: Tensor, local: Tensor, missing) -> Tensor:
    """``table [n_blocks, B, B, B]`` at blocks ``block [...]`` (-1: ``missing``) and local voxels ``[..., 3]``."""
    if table.shape[0] == 0:
        return torch.full(block.shape, missing, dtype=table.dtype, device=table.device)
    found = table[block.clamp(min=0), local[..., 0], local[..., 1], local[..., 2]]
    return torch.where(block >= 0, found, torch.full_like(found, missing))


def voxel_corners_torch(positions: Tensor, grid: SparseGrid) -> tuple[Tensor, Tensor]:
    """Rows ``[n, 8]`` (long, -1 absent) and trilinear weights ``[n, 8]`` of the voxels around
    each point; vertex ``c`` has offset bits ``(c >> 2 & 1, c >> 1 & 1, c & 1)``."""
    level, found = _levels(positions, grid.aabbs)
    box = grid.aabbs[level].to(positions.dtype)  # [n, 6]
    res = grid.resolution
    u = (positions - box[:, :3]) / (box[:, 3:] - box[:, :3]) * res - 0.5
    corner = torch.floor(u)
    frac = u - corner
    base = torch.where(torch.isnan(corner), -2.0, corner.clamp(-2, res)).long()  # [n, 3]
    bits = torch.tensor([[c >> 2 & 1, c >> 1 & 1, c & 1] for c in range(8)], device=positions.device)  # [8, 3]
    v = base[:, None, :] + bits[None]  # [n, 8, 3]
    w_axis = torch.stack([1 - frac, frac], -1)  # [n, 3, 2]
    weights = (w_axis[:, 0][:, bits[:, 0]] * w_axis[:, 1][:, bits[:, 1]] * w_axis[:, 2][:, bits[:, 2]])  # [n, 8]
    valid = ((v >= 0) & (v < res)).all(-1) & found[:, None]
    vc = v.clamp(0, res - 1)
    B = grid.block_size
    blk = vc // B
    block = grid.block_ids[level[:, None], blk[..., 0], blk[..., 1], blk[..., 2]].long()  # [n, 8]
    loc = vc % B
    rows = _at_block(grid.voxel_rows, block, loc, -1).long()
    rows = torch.where(valid & (block >= 0), rows, -1)
    weights = torch.where(found[:, None], weights, torch.zeros_like(weights))
    return rows, weights


def sparse_interp_torch(positions: Tensor, values: Tensor, grid: SparseGrid) -> tuple[Tensor, Tensor]:
    """The pure-torch twin of :func:`sparse_interp`."""
    rows, weights = voxel_corners_torch(positions, grid)
    present = rows >= 0
    w = weights * present
    gathered = values[rows.clamp(min=0)]  # [n, 8, C]
    return (w[..., None] * gathered).sum(1), w.sum(1)


def sparse_interp(positions: Tensor, values: Tensor, grid: SparseGrid) -> tuple[Tensor, Tensor]:
    r"""Trilinear interpolation of a sparse grid's values, absent voxels left out.

    Args:
        positions: ``[n, 3]`` world points (float32 or float64, as ``values``).
        values: ``[n_rows, C]`` one row per present voxel.
        grid: the index structure.

    Returns:
        ``sum [n, C]`` (:math:`\sum_i w_i p_i v_i`) and ``present [n]`` (:math:`\sum_i w_i p_i`),
        differentiable in ``values`` (the kernel's backward adds without atomics on the CPU).
    """
    if positions.dim() != 2 or positions.shape[1] != 3 or values.dim() != 2:
        raise ValueError(f"sparse_interp: positions must be [n, 3] and values [n_rows, C], got "
                         f"{tuple(positions.shape)} and {tuple(values.shape)}")
    if positions.dtype != values.dtype:
        raise ValueError(f"sparse_interp: positions are {positions.dtype} but values {values.dtype}")
    if _serves(positions, values, grid.aabbs, dtypes=(torch.float32, torch.float64)):
        return torch.ops.nerfgen.sparse_interp_fwd(positions.contiguous(), values.contiguous(), *grid.tensors())
    return sparse_interp_torch(positions, values, grid)


def sh_basis_torch(directions: Tensor, degree: int) -> Tensor:
    """``[n, (degree + 1)^2]`` real SH of unit ``directions [n, 3]`` (nerfgen.fields.SHEncoding's)."""
    from nerfgen.fields.encodings import SHEncoding

    return SHEncoding()(directions)[:, : (degree + 1) ** 2]


def shade_baked(sums: Tensor, present: Tensor, directions: Tensor, degree: int, empty_raw: float
                ) -> tuple[Tensor, Tensor]:
    """Density ``[n]`` and colour ``[n, 3]`` of interpolated rows (see the module), differentiable."""
    k = (degree + 1) ** 2
    seen = present > 0
    raw = (sums[:, 0] + (1 - present) * empty_raw).clamp(max=RAW_MAX)
    sigma = torch.where(seen, torch.exp(raw), torch.zeros_like(raw))
    coefs = sums[:, 1:].view(-1, 3, k) / torch.where(seen, present, torch.ones_like(present))[:, None, None]
    logits = (coefs * sh_basis_torch(directions, degree).to(sums.dtype)[:, None, :]).sum(-1)
    return sigma, torch.sigmoid(logits)


# --- marching -------------------------------------------------------------------------------------


def _check_rays(op: str, origins: Tensor, directions: Tensor, step_size: float, cone_angle: float) -> None:
    if origins.dim() != 2 or origins.shape[-1] != 3 or directions.shape != origins.shape:
        raise ValueError(f"{op}: origins and directions must be [n_rays, 3], got {tuple(origins.shape)} and "
                         f"{tuple(directions.shape)}")
    if not (0 < step_size < math.inf and 0 <= cone_angle < math.inf):
        raise ValueError(f"{op}: need a finite step_size > 0 and cone_angle >= 0, got {step_size}, {cone_angle}")


def occupied_cells_torch(positions: Tensor, grid: SparseGrid) -> tuple[Tensor, Tensor, Tensor]:
    """For float32 points ``[n, 3]``: inside the coarsest box, in a region with a block, and in an
    occupied cell (``[n]`` bool each), with the kernel's float32 expressions."""
    level, found = _levels(positions, grid.aabbs)
    box = grid.aabbs[level]
    res = grid.resolution
    scaled = (positions - box[:, :3]) / (box[:, 3:] - box[:, :3]) * res
    ijk = scaled.clamp(0, res - 1).long()
    B = grid.block_size
    blk = ijk // B
    block = grid.block_ids[level, blk[:, 0], blk[:, 1], blk[:, 2]].long()
    loc = ijk % B
    cell = _at_block(grid.cell_occupied, block, loc, False)
    has_block = found & (block >= 0)
    return found, has_block, has_block & cell


def baked_traverse_torch(origins: Tensor, directions: Tensor, grid: SparseGrid, near_plane: float, far_plane: float,
                         step_size: float, cone_angle: float = 0.0, jitter: Tensor | None = None) -> RaySamples:
    """The pure-torch twin of :func:`baked_traverse`: tests every step of every ray."""
    n_rays = origins.shape[0]
    t_min, t_max, hit = ray_aabb_intersect_torch(origins, directions, grid.aabbs[-1:], near_plane, far_plane)
    finite = torch.isfinite(origins).all(-1) & torch.isfinite(directions).all(-1)
    t_min, t_max, hit = t_min[:, 0], t_max[:, 0], hit[:, 0] & finite
    if jitter is not None:
        t_min = t_min + jitter * step_size
    counts = torch.where(hit, _steps_to(t_min, t_max, step_size, cone_angle), 0)
    ray_indices = torch.repeat_interleave(torch.arange(n_rays, device=origins.device), counts)
    first = torch.cumsum(counts, 0) - counts
    k = (torch.arange(ray_indices.shape[0], device=origins.device) - first[ray_indices]).to(t_min.dtype)
    t0 = t_min[ray_indices]
    t_starts = _t_of_step(t0, k, step_size, cone_angle)
    t_ends = torch.minimum(_t_of_step(t0, k + 1, step_size, cone_angle), t_max[ray_indices])
    mids = origins[ray_indices] + directions[ray_indices] * ((t_starts + t_ends) * 0.5)[:, None]
    keep = occupied_cells_torch(mids, grid)[2] & (t_ends > t_starts)
    return RaySamples(t_starts[keep], t_ends[keep], ray_indices[keep], n_rays)


def baked_traverse(origins: Tensor, directions: Tensor, grid: SparseGrid, near_plane: float, far_plane: float,
                   step_size: float, cone_angle: float = 0.0, jitter: Tensor | None = None,
                   accel: MarchAccel | None = None) -> RaySamples:
    """March rays through a sparse grid and keep the samples whose midpoints fall in occupied cells.

    Args:
        origins, directions: ``[n_rays, 3]`` rays (unit directions, so ``t`` is distance).
        grid: the sparse grid (its coarsest box bounds the march).
        near_plane, far_plane: limits on ``t``.
        step_size, cone_angle: the step rule of :func:`~nerfgen.ops.traverse_grids`.
        jitter: optional ``[n_rays]`` in [0, 1): shifts each ray's first sample (training).
        accel: ``march_accel(grid)`` when the caller keeps it (else computed for this call).

    Returns:
        :class:`RaySamples` sorted by ray.
    """
    _check_rays("baked_traverse", origins, directions, step_size, cone_angle)
    extra = () if jitter is None else (jitter,)
    if _serves(origins, directions, grid.aabbs, *extra):
        accel = accel or march_accel(grid)
        t_starts, t_ends, ray_indices = torch.ops.nerfgen.baked_traverse(
            origins.contiguous(), directions.contiguous(), *grid.tensors(), *accel.args(),
            None if jitter is None else jitter.contiguous(), near_plane, far_plane, step_size, cone_angle)
        return RaySamples(t_starts, t_ends, ray_indices, origins.shape[0])
    return baked_traverse_torch(origins, directions, grid, near_plane, far_plane, step_size, cone_angle, jitter)


# --- rendering ------------------------------------------------------------------------------------


@dataclass
class BakedRender:
    """Rays rendered through a baked grid.

    Attributes:
        color: ``[n_rays, 3]`` composited colour, no background.
        opacity: ``[n_rays]`` accumulated weight.
        depth: ``[n_rays]`` weighted sample distance (not divided by the opacity).
        shaded: ``[n_rays]`` samples shaded per ray (before early termination).
    """

    color: Tensor
    opacity: Tensor
    depth: Tensor
    shaded: Tensor


@dataclass(frozen=True)
class BakedMarchSettings:
    """How a baked grid is marched and shaded."""

    sh_degree: int
    empty_raw: float
    near_plane: float
    far_plane: float
    step_size: float
    cone_angle: float
    early_stop_eps: float


def half_rows(values: Tensor) -> Tensor:
    """``values [n_rows, C]`` in float16, each row padded to a multiple of 8 channels (zeros): a
    ``[n_rows, C]`` view of ``[n_rows, ceil(C / 8) 8]`` storage, which :func:`baked_render` reads
    in whole 16-byte vectors (and returns as it is when it already is one)."""
    if values.dim() != 2:
        raise ValueError(f"half_rows: values must be [n_rows, C], got {tuple(values.shape)}")
    n, c = values.shape
    padded = -(-c // 8) * 8
    if values.dtype == torch.float16 and values.stride(1) == 1 and values.stride(0) % 8 == 0 and values.stride(0) >= padded:
        return values
    storage = torch.zeros(n, padded, dtype=torch.float16, device=values.device)
    storage[:, :c] = values
    return storage[:, :c]


def baked_render_torch(origins: Tensor, directions: Tensor, grid: SparseGrid, values: Tensor,
                       s: BakedMarchSettings) -> BakedRender:
    """The pure-torch twin of :func:`baked_render` (float16 values converted to float32, exactly)."""
    values = values.float()
    samples = baked_traverse_torch(origins, directions, grid, s.near_plane, s.far_plane, s.step_size, s.cone_angle)
    ri = samples.ray_indices
    mids = (samples.t_starts + samples.t_ends) * 0.5
    sums, present = sparse_interp_torch(origins[ri] + directions[ri] * mids[:, None], values, grid)
    sigma, rgb = shade_baked(sums, present, directions[ri], s.sh_degree, s.empty_raw)
    out = volume_render_torch(samples.t_starts, samples.t_ends, sigma, rgb, ri, origins.shape[0], s.early_stop_eps)
    alive = out.transmittance >= s.early_stop_eps if s.early_stop_eps > 0 else torch.ones_like(present, dtype=torch.bool)
    shaded = torch.bincount(ri[(present > 0) & alive], minlength=origins.shape[0])
    return BakedRender(out.color, out.opacity, out.depth, shaded)


def baked_render(origins: Tensor, directions: Tensor, grid: SparseGrid, values: Tensor,
                 settings: BakedMarchSettings, accel: MarchAccel | None = None) -> BakedRender:
    """Render rays through a baked grid: march the occupied cells, shade (density and SH colour,
    see the module) and composite front to back until the transmittance drops below
    ``early_stop_eps``, in one pass (no gradients).

    Args:
        origins, directions: ``[n_rays, 3]`` float32 rays with unit directions.
        grid: the sparse grid.
        values: ``[n_rows, 1 + 3 (sh_degree + 1)^2]`` float32 or float16 rows (float16 best as
            :func:`half_rows` makes them; other float16 tensors are padded on each call).
        settings: SH degree, absent voxels' raw density, the march and early termination.
        accel: ``march_accel(grid)`` when the caller keeps it (else computed for this call).

    Returns:
        :class:`BakedRender`.
    """
    s = settings
    _check_rays("baked_render", origins, directions, s.step_size, s.cone_angle)
    if not 0 <= s.sh_degree <= MAX_SH_DEGREE or values.dim() != 2 or values.shape[1] != 1 + 3 * (s.sh_degree + 1) ** 2:
        raise ValueError(f"baked_render: values must be [n_rows, {1 + 3 * (s.sh_degree + 1) ** 2}] for SH degree "
                         f"{s.sh_degree} (at most {MAX_SH_DEGREE}), got {tuple(values.shape)}")
    if values.dtype not in (torch.float32, torch.float16):
        raise ValueError(f"baked_render: values must be float32 or float16, got {values.dtype}")
    if values.device == origins.device and _serves(origins, directions, grid.aabbs):
        rows = half_rows(values) if values.dtype == torch.float16 else values.contiguous()
        accel = accel or march_accel(grid)
        return BakedRender(*torch.ops.nerfgen.baked_render(
            origins.contiguous(), directions.contiguous(), *grid.tensors(), *accel.args(), rows, s.sh_degree,
            s.empty_raw, s.near_plane, s.far_plane, s.step_size, s.cone_angle, s.early_stop_eps))
    with torch.no_grad():
        return baked_render_torch(origins, directions, grid, values, s)
