"""The baked-field kernels (cuda/src/baked*) against their torch twins: sparse interpolation forward
and backward (gradcheck in float64), marching (the twin's samples, exactly with uniform steps) and
the fused render (to float rounding), plus their edge cases and the sources compiling on their own."""

from __future__ import annotations

import subprocess

import pytest
import torch

from nerfgen.ops.baked import (
    BakedMarchSettings,
    SparseGrid,
    baked_render,
    baked_render_torch,
    baked_traverse,
    baked_traverse_torch,
    half_rows,
    march_accel,
    pack_cell_bits,
    sparse_interp,
    sparse_interp_torch,
    unpack_cell_bits,
)
from tests.kernels import CXX, NVCC, REPO
from tests.test_march_kernel import assert_same_samples, rays


def sparse_grid(levels: int, blocks: int, block_size: int, fill: float, seed: int,
                ranked: bool = False) -> tuple[SparseGrid, int]:
    """A random sparse grid (a share ``fill`` of blocks, voxels and cells present) over boxes nested
    as the march tests' cascades, its rows in any order (``ranked``: in voxel order, as a bake
    writes them); returns it and its number of rows."""
    g = torch.Generator().manual_seed(seed)
    box = torch.tensor([-1.0, -0.8, -1.2, 1.0, 1.2, 0.8])
    center, half = (box[:3] + box[3:]) / 2, (box[3:] - box[:3]) / 2
    aabbs = torch.stack([torch.cat([center - half * 2**lvl, center + half * 2**lvl]) for lvl in range(levels)])
    used = torch.rand(levels, blocks, blocks, blocks, generator=g) < fill
    block_ids = torch.full(used.shape, -1, dtype=torch.int32)
    block_ids[used] = torch.arange(int(used.sum()), dtype=torch.int32)
    n_blocks = int(used.sum())
    present = torch.rand(n_blocks, block_size, block_size, block_size, generator=g) < max(fill, 0.5)
    voxel_rows = torch.full(present.shape, -1, dtype=torch.int32)
    perm = torch.randperm(int(present.sum()), generator=g).to(torch.int32)  # rows in any order
    voxel_rows[present] = perm.sort().values if ranked else perm
    occupied = torch.rand(present.shape, generator=g) < max(fill, 0.5)
    return SparseGrid(block_ids, voxel_rows, occupied, aabbs), int(present.sum())


def values_for(n_rows: int, degree: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n_rows, 1 + 3 * (degree + 1) ** 2, generator=g, dtype=torch.float64)
    v[:, 0] = v[:, 0] * 2 + 1  # raw densities around e
    return v.to(dtype)


def points(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Points in and around the coarsest boxes of the test grids, some exactly on voxel centres."""
    g = torch.Generator().manual_seed(seed)
    p = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 5 - 2.5).to(dtype)
    return torch.cat([p, torch.tensor([[0.0, 0.2, -0.2], [-1.0, -0.8, -1.2], [1.0, 1.2, 0.8]], dtype=dtype)])


GRIDS = [(1, 4, 4, 0.5), (2, 2, 8, 0.3), (3, 4, 2, 0.8), (1, 2, 4, 0.0), (2, 3, 3, 1.0)]
"""(levels, blocks per axis, block size, fill) of the grids the kernels are compared on."""


@pytest.mark.parametrize("levels,blocks,block_size,fill", GRIDS)
def test_interp_matches_twin_forward_and_backward(kernels, levels, blocks, block_size, fill):
    grid, n_rows = sparse_grid(levels, blocks, block_size, fill, seed=blocks * 10 + block_size)
    values = values_for(max(n_rows, 1), 2, seed=1).requires_grad_()
    pos = points(3000, seed=2)
    got_sum, got_present = sparse_interp(pos, values, grid)
    ref_sum, ref_present = sparse_interp_torch(pos, values, grid)
    torch.testing.assert_close(got_sum, ref_sum, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_present, ref_present, rtol=1e-6, atol=1e-6)
    cot = torch.randn_like(got_sum)
    (got_grad,) = torch.autograd.grad(got_sum, values, cot)
    (ref_grad,) = torch.autograd.grad(ref_sum, values, cot)
    torch.testing.assert_close(got_grad, ref_grad, rtol=1e-5, atol=1e-5)


def test_interp_gradcheck_float64(kernels):
    grid, n_rows = sparse_grid(2, 2, 4, 0.6, seed=3)
    values = values_for(n_rows, 1, seed=4, dtype=torch.float64).requires_grad_()
    pos = points(40, seed=5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: sparse_interp(pos, v, grid)[0], (values,))
    got = sparse_interp(pos, values, grid)
    ref = sparse_interp_torch(pos, values, grid)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_interp_reproduces_voxel_values_at_their_centres(kernels):
    grid, n_rows = sparse_grid(1, 2, 4, 1.0, seed=6)
    grid.voxel_rows[:] = torch.arange(grid.voxel_rows.numel(), dtype=torch.int32).view_as(grid.voxel_rows)
    grid.block_ids[:] = torch.arange(8, dtype=torch.int32).view(1, 2, 2, 2)
    values = values_for(grid.voxel_rows.numel(), 0, seed=7)
    box, res = grid.aabbs[0], grid.resolution
    ijk = torch.tensor([[1, 2, 3], [7, 0, 5], [4, 4, 4]])
    centres = box[:3] + (ijk.float() + 0.5) / res * (box[3:] - box[:3])
    total, present = sparse_interp(centres, values, grid)
    B = grid.block_size
    rows = grid.voxel_rows[grid.block_ids[0, ijk[:, 0] // B, ijk[:, 1] // B, ijk[:, 2] // B].long(),
                           ijk[:, 0] % B, ijk[:, 1] % B, ijk[:, 2] % B].long()
    torch.testing.assert_close(total, values[rows], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(present, torch.ones(3), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("levels,blocks,block_size,fill", GRIDS)
@pytest.mark.parametrize("cone,jitter", [(0.0, False), (1 / 64, True)])
def test_traverse_keeps_the_twins_samples(kernels, levels, blocks, block_size, fill, cone, jitter):
    grid, _ = sparse_grid(levels, blocks, block_size, fill, seed=levels + blocks)
    o, d = rays(200, seed=blocks, inside=fill > 0.9)
    j = torch.rand(o.shape[0], generator=torch.Generator().manual_seed(9)) if jitter else None
    args = (o, d, grid, 0.05, 20.0, 0.013, cone, j)
    got, ref = baked_traverse(*args), baked_traverse_torch(*args)
    assert got.t_starts.dtype == torch.float32 and got.ray_indices.dtype == torch.long
    assert_same_samples(got, ref, exact=cone == 0)


@pytest.mark.parametrize("cone", [0.0, 1 / 64])
def test_blocks_in_a_corner_keep_the_twins_samples_and_render(kernels, cone):
    """Blocks in one corner of each level (the CPU march starts and ends rays at the box around
    every level's blocks): the twin's samples and render still."""
    grid, n_rows = sparse_grid(2, 8, 4, 1.0, seed=5)
    block_ids = torch.full_like(grid.block_ids, -1)
    block_ids[0, 5:7, 1:3, 4:6] = grid.block_ids[0, 5:7, 1:3, 4:6]  # a 2^3 group of the finest level's blocks
    block_ids[1, 0, 7, 0] = grid.block_ids[1, 0, 7, 0]  # and one in a corner of the coarse level
    grid = SparseGrid(block_ids, grid.voxel_rows, grid.cell_occupied, grid.aabbs)
    o, d = rays(400, seed=11)
    args = (o, d, grid, 0.05, 20.0, 0.013, cone, None)
    got, ref = baked_traverse(*args), baked_traverse_torch(*args)
    assert len(ref) > 0
    assert_same_samples(got, ref, exact=cone == 0)
    values = values_for(n_rows, 1, seed=4)
    settings = BakedMarchSettings(1, -4.0, 0.0, 1e10, 0.013, cone, 1e-3)
    out, twin = baked_render(o, d, grid, values, settings), baked_render_torch(o, d, grid, values, settings)
    torch.testing.assert_close(out.color, twin.color, rtol=1e-4, atol=1e-5)
    if cone == 0:
        assert torch.equal(out.shaded, twin.shaded)


@pytest.mark.parametrize("ranked", [False, True])
@pytest.mark.parametrize("grid_case,degree", zip(GRIDS, [0, 2, 3, 2, 1]))
def test_render_matches_twin(kernels, grid_case, degree, ranked):
    levels, blocks, block_size, fill = grid_case
    grid, n_rows = sparse_grid(levels, blocks, block_size, fill, seed=3 * levels + block_size, ranked=ranked)
    values = values_for(max(n_rows, 1), degree, seed=degree)
    o, d = rays(300, seed=levels)
    renders = {}
    for eps in (0.0, 1e-2):
        settings = BakedMarchSettings(degree, -4.0, 0.0, 1e10, 0.02, 0.0, eps)
        got = renders[eps] = baked_render(o, d, grid, values, settings)
        ref = baked_render_torch(o, d, grid, values, settings)
        for name in ("color", "opacity", "depth"):
            torch.testing.assert_close(getattr(got, name), getattr(ref, name), rtol=1e-4, atol=1e-5, msg=name)
        assert torch.equal(got.shaded, ref.shaded)
    # what termination leaves out is behind a transmittance below eps
    cut, full = renders[1e-2], renders[0.0]
    assert bool((cut.shaded <= full.shaded).all())
    assert float((cut.color - full.color).abs().max()) <= 1e-2 + 1e-5
    assert float((cut.opacity - full.opacity).abs().max()) <= 1e-2 + 1e-5


@pytest.mark.parametrize("grid_case,degree", zip(GRIDS[:3], [0, 2, 3]))
def test_render_of_float16_rows_matches_twin_and_float32(kernels, grid_case, degree):
    """Float16 rows (padded to vectors of 8, read with F16C where the CPU has it): the twin's
    render, and exactly the float32 render of the same values (the conversion is exact)."""
    levels, blocks, block_size, fill = grid_case
    grid, n_rows = sparse_grid(levels, blocks, block_size, fill, seed=5 * levels + block_size)
    values = values_for(max(n_rows, 1), degree, seed=degree + 20)
    halves = half_rows(values.half())
    assert halves.dtype == torch.float16 and halves.stride(0) % 8 == 0 and torch.equal(halves.float(), values.half().float())
    assert half_rows(halves) is halves
    o, d = rays(300, seed=levels + 7)
    settings = BakedMarchSettings(degree, -4.0, 0.0, 1e10, 0.02, 0.0, 1e-2)
    got = baked_render(o, d, grid, halves, settings)
    ref = baked_render_torch(o, d, grid, halves, settings)
    as_float = baked_render(o, d, grid, halves.float(), settings)
    for name in ("color", "opacity", "depth"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), rtol=1e-4, atol=1e-5, msg=name)
        assert torch.equal(getattr(got, name), getattr(as_float, name)), name
    assert torch.equal(got.shaded, ref.shaded) and bool((got.shaded > 0).any())
    unpadded = baked_render(o, d, grid, values.half(), settings)  # padded on the call
    assert torch.equal(unpadded.color, got.color)


def test_half_conversion_is_exact_for_every_bit_pattern(tmp_path):
    """baked_render.h's portable float16 -> float32 (the CUDA kernel's and CPUs' without F16C),
    compiled without -march, against torch's conversion of all 65536 bit patterns."""
    source = tmp_path / "halves.cpp"
    source.write_text(
        '#include <cstdio>\n#include "nerfgen/baked_render.h"\n'
        "int main() { for (unsigned b = 0; b < 65536; ++b) { float f = nerfgen::to_float(nerfgen::Half{"
        "static_cast<uint16_t>(b)}); std::fwrite(&f, sizeof f, 1, stdout); } }\n")
    exe = tmp_path / "halves"
    subprocess.run([CXX, "-std=c++17", "-O1", "-Wall", "-Werror", "-I", str(REPO / "cuda" / "include"), str(source),
                    "-o", str(exe)], check=True, timeout=120)
    got = torch.frombuffer(bytearray(subprocess.run([str(exe)], check=True, capture_output=True).stdout),
                           dtype=torch.int32)
    ref = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
    nan = torch.isnan(ref)
    assert got.shape == (65536,)
    assert torch.equal(got[~nan], ref[~nan].view(torch.int32))
    assert bool(torch.isnan(got.view(torch.float32)[nan]).all())


def test_render_edge_cases(kernels):
    grid, n_rows = sparse_grid(1, 2, 4, 1.0, seed=8)
    values = values_for(n_rows, 1, seed=8)
    settings = BakedMarchSettings(1, -4.0, 0.0, 1e10, 0.05, 0.0, 0.0)
    none = baked_render(torch.zeros(0, 3), torch.zeros(0, 3), grid, values, settings)
    assert none.color.shape == (0, 3) and none.shaded.shape == (0,)
    miss = baked_render(torch.tensor([[0.0, 5.0, -4.0]]), torch.tensor([[0.0, 0.0, 1.0]]), grid, values, settings)
    assert float(miss.opacity[0]) == 0.0 and int(miss.shaded[0]) == 0
    bad = baked_render(torch.tensor([[float("nan"), 0.0, -4.0]]), torch.tensor([[0.0, 0.0, 1.0]]), grid, values, settings)
    assert float(bad.opacity[0]) == 0.0
    with pytest.raises(ValueError, match="values must be"):
        baked_render(torch.zeros(1, 3), torch.ones(1, 3), grid, values[:, :5], settings)


def test_opcheck(kernels):
    grid, n_rows = sparse_grid(2, 2, 4, 0.6, seed=10)
    values = values_for(n_rows, 1, seed=11)
    o, d = rays(32, seed=12)
    ops = torch.ops.nerfgen
    accel = march_accel(grid).args()
    torch.library.opcheck(ops.sparse_interp_fwd.default, (points(50, seed=13), values.requires_grad_(), *grid.tensors()))
    torch.library.opcheck(ops.baked_traverse.default, (o, d, *grid.tensors(), *accel, None, 0.0, 1e10, 0.03, 0.0))
    torch.library.opcheck(ops.baked_render.default, (o, d, *grid.tensors(), *accel, values.detach(), 1, -4.0, 0.0,
                                                     1e10, 0.03, 0.0, 1e-3))


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, 8])
def test_cell_bits_hold_the_dense_occupancy(block_size):
    """cell_occupied bit-packed: cell c of a block is bit c & 7 of byte c >> 3, in rows of whole
    64-bit words (one 64-byte line a block at B = 8), the padding zero; unpacking gives the bools."""
    n, cells = 7, block_size**3
    occupied = torch.rand(n, block_size, block_size, block_size, generator=torch.Generator().manual_seed(cells)) < 0.4
    bits = pack_cell_bits(occupied)
    assert bits.dtype == torch.uint8 and bits.shape == (n, -(-cells // 64) * 8)
    every_bit = (bits[..., None].long() >> torch.arange(8)) & 1  # [n, W, 8]: bit c & 7 of byte c >> 3
    assert torch.equal(every_bit.view(n, -1)[:, :cells].bool(), occupied.view(n, -1))
    assert int(every_bit.view(n, -1)[:, cells:].sum()) == 0
    assert torch.equal(unpack_cell_bits(bits, block_size), occupied)
    assert pack_cell_bits(torch.zeros(0, block_size, block_size, block_size, dtype=torch.bool)).shape[0] == 0


@pytest.mark.parametrize("ranked", [False, True])
def test_marching_reads_the_bits_as_the_bools(kernels, ranked):
    """The kernels given the reused data (bit-packed cells, empty regions of blocks skipped whole,
    bounds, rows counted from bits where they run in voxel order) and given none of it (the bools,
    no regions, the whole box, voxel_rows) keep the same samples and pixels; the counted rows are
    voxel_rows'."""
    grid, n_rows = sparse_grid(2, 8, 4, 0.3, seed=21, ranked=ranked)
    values = values_for(n_rows, 2, seed=22)
    o, d = rays(300, seed=23)
    accel = march_accel(grid)
    assert accel.coarse is not None and accel.coarse.shape == (2, 2, 2, 2)
    assert (accel.present_bits is not None) == ranked and (accel.row_base is not None) == ranked
    if ranked:  # row of present voxel v: row_base of its word + present voxels below it in the word
        present = unpack_cell_bits(accel.present_bits.view(torch.uint8), 4).view(-1, 64)
        below = torch.cumsum(present.int(), -1) - present.int()
        counted = accel.row_base.view(-1, 1) + below  # [n_blocks, 64] (one word a block at B = 4)
        assert torch.equal(torch.where(present, counted, -1), grid.voxel_rows.view(-1, 64))
    ops = torch.ops.nerfgen
    none = (None,) * 5
    for cone in (0.0, 1 / 64):
        with_it = ops.baked_traverse(o, d, *grid.tensors(), *accel.args(), None, 0.05, 20.0, 0.013, cone)
        without = ops.baked_traverse(o, d, *grid.tensors(), *none, None, 0.05, 20.0, 0.013, cone)
        assert with_it[0].shape[0] > 0
        for a, b in zip(with_it, without):
            assert torch.equal(a, b)
        rendered = [ops.baked_render(o, d, *grid.tensors(), *extra, values, 2, -4.0, 0.0, 1e10, 0.013, cone, 1e-3)
                    for extra in (accel.args(), none)]
        assert bool((rendered[0][3] > 0).any())
        for a, b in zip(*rendered):
            assert torch.equal(a, b)
        twin = baked_render_torch(o, d, grid, values, BakedMarchSettings(2, -4.0, 0.0, 1e10, 0.013, cone, 1e-3))
        torch.testing.assert_close(rendered[0][0], twin.color, rtol=1e-4, atol=1e-5)
    for bad in ((accel.cell_bits[:1], None, None), (None, torch.zeros(grid.voxel_rows.shape[0], 1, dtype=torch.long),
                                                     None)):
        with pytest.raises(RuntimeError, match="bits must be|bits and row_base"):
            ops.baked_render(o, d, *grid.tensors(), *bad, None, None, values, 2, -4.0, 0.0, 1e10, 0.013, 0.0, 1e-3)


def test_cpu_source_compiles_without_torch():
    cmd = [CXX, "-std=c++17", "-O1", "-fopenmp", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "cuda" / "include"),
           "-c", str(REPO / "cuda" / "src" / "baked_cpu.cpp"), "-o", "/dev/null"]
    subprocess.run(cmd, check=True, timeout=120)


@pytest.mark.parametrize("arch", ["sm_75", "sm_90"])
def test_cuda_source_compiles_with_nvcc(arch):
    if NVCC is None:
        pytest.skip("nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    cmd = [NVCC, "-c", "-std=c++17", f"-arch={arch}", "-Xcompiler", "-Wall", "-Werror", "all-warnings",
           "-I", str(REPO / "cuda" / "include"), str(REPO / "cuda" / "src" / "baked.cu"), "-o", "/dev/null"]
    subprocess.run(cmd, check=True, timeout=300)
