"""The CUDA kernels (cuda/src/*.cu) on a GPU: each op against its torch twin run on the same GPU
and against the CPU kernel, forward and backward, gradcheck in float64, opcheck on CUDA tensors
(the baked-field ops against the CPU kernels, whose own tests compare them with the twins).

Skipped without a CUDA device (the .cu files are still compiled by the nvcc tests of the other
kernel test files). Tolerances are the CPU kernel tests' (see their docstrings): the CUDA build
is compiled with ``--fmad=false`` so uniform marching keeps exactly the twin's float32 samples;
the hash-grid table gradient adds with atomics in a run-dependent order.
"""

from __future__ import annotations

import pytest
import torch

from nerfgen.ops import (
    _backend,
    packed_info_from_indices,
    ray_aabb_intersect,
    ray_aabb_intersect_torch,
    traverse_grids,
    traverse_grids_torch,
    volume_render,
    volume_render_torch,
)
from nerfgen.ops.hashgrid import hash_grid_encode, hash_grid_encode_torch, level_strides
from tests.test_hashgrid_kernel import FWD_ATOL, POS_RTOL, TABLE_ATOL, encode_and_grads, make_grid
from nerfgen.ops.baked import BakedMarchSettings, baked_render, baked_traverse, sparse_interp
from tests.test_baked_kernel import GRIDS as BAKED_GRIDS
from tests.test_baked_kernel import points, sparse_grid, values_for
from tests.test_march_kernel import GRID_CASES, assert_march_properties, assert_same_samples, grid, rays
from tests.test_volrend_kernel import CASES, FIELDS, packed, render_and_grads

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def cuda_kernels() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the .cu files are compiled (nvcc tests) but not run here")
    if _backend.backend_mode() == "torch":
        pytest.skip("NERFGEN_BACKEND=torch forces the torch twins")
    assert _backend.backend_available(CUDA), f"the CUDA kernels did not build:\n{_backend.backend_error()}"


def on_gpu(*tensors):
    return tuple(None if t is None else t.to(CUDA) for t in tensors)


def assert_close_on(got, ref, **tol):
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), ref.cpu(), **tol)


# --- hash grid ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_points", [0, 1, 7, 65536])
@pytest.mark.parametrize(("n_levels", "n_features", "log2_table_size"), [(1, 1, 10), (16, 2, 19), (16, 4, 10), (4, 3, 19), (8, 8, 12)])
def test_hash_grid_matches_twin_and_cpu_kernel(cuda_kernels, n_points, n_levels, n_features, log2_table_size):
    table, resolutions, strides = make_grid(n_levels, n_features, log2_table_size)
    positions = torch.rand(n_points, 3, generator=torch.Generator().manual_seed(n_points))
    cot = torch.randn(n_points, n_levels * n_features, generator=torch.Generator().manual_seed(1))
    cpu_args = (positions, table, resolutions, strides, log2_table_size, cot)
    gpu_args = (*on_gpu(positions, table, resolutions, strides), log2_table_size, cot.to(CUDA))
    got = encode_and_grads(hash_grid_encode, *gpu_args)
    twin = encode_and_grads(hash_grid_encode_torch, *gpu_args)
    cpu = encode_and_grads(hash_grid_encode, *cpu_args)
    for ref in (twin, cpu):
        assert_close_on(got[0], ref[0], rtol=0, atol=FWD_ATOL)
        assert_close_on(got[2], ref[2], rtol=1e-5, atol=TABLE_ATOL)
        scale = max(1.0, ref[1].abs().max().item()) if ref[1].numel() else 1.0
        assert_close_on(got[1], ref[1], rtol=POS_RTOL, atol=POS_RTOL * scale)


def test_hash_grid_gradcheck_float64(cuda_kernels):
    table, _, _ = make_grid(2, 2, 4, dtype=torch.float64)
    resolutions, strides = torch.tensor([5.0, 9.0]), level_strides([5, 9], 4)
    positions = torch.rand(64, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    frac = (positions[:, None, :] * resolutions[None, :, None].double()).frac()
    positions = positions[((frac > 0.01) & (frac < 0.99)).all(-1).all(-1)][:6]
    positions, table, resolutions, strides = on_gpu(positions, table, resolutions, strides)
    fn = lambda p, t: hash_grid_encode(p, t, resolutions, strides, 4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (positions.requires_grad_(), table.requires_grad_()), eps=1e-6, atol=1e-6)


def test_hash_grid_opcheck(cuda_kernels):
    table, resolutions, strides = on_gpu(*make_grid(4, 2, 10))
    positions = torch.rand(300, 3, generator=torch.Generator().manual_seed(7)).to(CUDA)
    grad_out = torch.randn(300, 8, generator=torch.Generator().manual_seed(8)).to(CUDA)
    ops = torch.ops.nerfgen
    torch.library.opcheck(ops.hash_grid_fwd.default,
                          (positions.clone().requires_grad_(), table.clone().requires_grad_(), resolutions, strides, 10))
    torch.library.opcheck(ops.hash_grid_bwd.default, (grad_out, positions, resolutions, strides, 10))
    torch.library.opcheck(ops.hash_grid_bwd_positions.default, (grad_out, positions, table, resolutions, strides, 10))


# --- marching -------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels,res,density", GRID_CASES)
@pytest.mark.parametrize("cone", [0.0, 1 / 64])
@pytest.mark.parametrize("jitter", [False, True])
def test_march_matches_twin_and_cpu_kernel(cuda_kernels, levels, res, density, cone, jitter):
    binaries, aabbs = grid(levels, res, density, seed=levels * 100 + res)
    o, d = rays(300, seed=res, inside=density > 0.9)
    j = torch.rand(o.shape[0], generator=torch.Generator().manual_seed(9)) if jitter else None
    scalars = (0.05, 20.0, 0.013, cone)
    got = traverse_grids(*on_gpu(o, d, binaries, aabbs), *scalars, *on_gpu(j))
    assert got.t_starts.device.type == "cuda"
    got_cpu = type(got)(got.t_starts.cpu(), got.t_ends.cpu(), got.ray_indices.cpu(), got.n_rays)
    assert_same_samples(got_cpu, traverse_grids(o, d, binaries, aabbs, *scalars, j), exact=cone == 0)
    twin = traverse_grids_torch(*on_gpu(o, d, binaries, aabbs), *scalars, *on_gpu(j))
    twin_cpu = type(twin)(twin.t_starts.cpu(), twin.t_ends.cpu(), twin.ray_indices.cpu(), twin.n_rays)
    assert_same_samples(got_cpu, twin_cpu, exact=False)


def test_march_properties_and_edge_cases(cuda_kernels):
    binaries, aabbs = on_gpu(*grid(3, 32, 0.1, seed=5))
    o, d = on_gpu(*rays(20000, seed=6))
    s = traverse_grids(o, d, binaries, aabbs, 0.0, 1e10, step_size=0.005, cone_angle=1 / 256)
    assert len(s) > 10000
    assert_march_properties(s, o, d, binaries, aabbs)
    none = traverse_grids(*on_gpu(torch.zeros(0, 3), torch.zeros(0, 3)), binaries, aabbs, 0.0, 1e10, 0.02)
    assert len(none) == 0
    full, box = on_gpu(torch.ones(1, 16, 16, 16, dtype=torch.bool), torch.tensor([[-1.0, -1, -1, 1, 1, 1]]))
    one = traverse_grids(*on_gpu(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]])), full, box,
                         0.0, 1e10, 0.5)
    assert one.t_starts.tolist() == [2.0, 2.5, 3.0, 3.5] and one.t_ends.tolist() == [2.5, 3.0, 3.5, 4.0]


def test_intersect_matches_twin(cuda_kernels):
    o, d = rays(500, seed=3)
    boxes = torch.tensor([[-1.0, -1, -1, 1, 1, 1], [-0.5, 0, -0.2, 0.5, 0.3, 0.9], [2, 2, 2, 3, 3, 3]])
    for near, far in ((0.0, 1e10), (3.5, 4.5)):
        got = ray_aabb_intersect(*on_gpu(o, d, boxes), near, far)
        for a, b in zip(got, ray_aabb_intersect_torch(o, d, boxes, near, far)):
            assert a.device.type == "cuda" and torch.equal(a.cpu(), b)


def test_march_opcheck(cuda_kernels):
    binaries, aabbs = on_gpu(*grid(2, 16, 0.3, seed=4))
    o, d = on_gpu(*rays(64, seed=4))
    jitter = torch.rand(o.shape[0], generator=torch.Generator().manual_seed(1)).to(CUDA)
    ops = torch.ops.nerfgen
    torch.library.opcheck(ops.ray_aabb_intersect.default, (o, d, aabbs, 0.0, 1e10))
    for j in (None, jitter):
        torch.library.opcheck(ops.traverse_grids.default, (o, d, binaries, aabbs, j, 0.0, 1e10, 0.01, 0.004))


# --- compositing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("eps", [0.0, 1e-4, 0.05])
@pytest.mark.parametrize("channels", [3, 5])
def test_composite_matches_twin_and_cpu_kernel(cuda_kernels, case, eps, channels):
    counts = CASES[case]
    t0, t1, s, c, ri = packed(counts, channels, seed=len(counts))
    out, gs, gc = render_and_grads(volume_render, *on_gpu(t0, t1, s, c, ri), len(counts), eps, seed=1)
    assert out.color.device.type == "cuda"
    for fn, device in ((volume_render_torch, CUDA), (volume_render, torch.device("cpu"))):
        args = tuple(t.to(device) for t in (t0, t1, s, c, ri))
        ref, rs, rc = render_and_grads(fn, *args, len(counts), eps, seed=1)
        for f in FIELDS:
            assert_close_on(getattr(out, f), getattr(ref, f), rtol=1e-5, atol=1e-6, msg=f)
        assert_close_on(gs, rs, rtol=1e-4, atol=1e-5)
        assert_close_on(gc, rc, rtol=1e-5, atol=1e-6)


def test_composite_gradcheck_float64(cuda_kernels):
    t0, t1, s, c, ri = on_gpu(*packed([4, 0, 1, 6], channels=2, seed=4, dtype=torch.float64, sigma_scale=5.0))
    for eps in (0.0, 0.2):
        def fn(sig, col):
            out = volume_render(t0, t1, sig, col, ri, 4, eps)
            return tuple(getattr(out, f) for f in FIELDS)

        assert torch.autograd.gradcheck(fn, (s.clone().requires_grad_(), c.clone().requires_grad_()), eps=1e-7, atol=1e-6)


def test_composite_opcheck(cuda_kernels):
    t0, t1, s, c, ri = on_gpu(*packed([3, 0, 7, 1], seed=6))
    info = packed_info_from_indices(ri, 4)
    ops = torch.ops.nerfgen
    torch.library.opcheck(ops.composite_fwd.default, (t0, t1, s.clone().requires_grad_(), c.clone().requires_grad_(), info, 1e-3))
    out = ops.composite_fwd(t0, t1, s, c, info, 1e-3)
    g = torch.Generator().manual_seed(7)
    cots = [torch.randn(o.shape, generator=g).to(CUDA) for o in out]
    torch.library.opcheck(ops.composite_bwd.default, (*cots, t0, t1, s, c, info, out[3], out[4], 1e-3))


# --- baked fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("levels,blocks,block_size,fill", BAKED_GRIDS)
def test_baked_ops_match_the_cpu_kernels(cuda_kernels, levels, blocks, block_size, fill):
    grid, n_rows = sparse_grid(levels, blocks, block_size, fill, seed=blocks * 10 + block_size)
    values = values_for(max(n_rows, 1), 2, seed=1)
    gpu_grid, pos = grid.to(CUDA), points(3000, seed=2)
    cot = torch.randn(pos.shape[0], values.shape[1], generator=torch.Generator().manual_seed(3))
    v_gpu, v_cpu = values.to(CUDA).requires_grad_(), values.clone().requires_grad_()
    got, ref = sparse_interp(pos.to(CUDA), v_gpu, gpu_grid), sparse_interp(pos, v_cpu, grid)
    for a, b in zip(got, ref):
        assert_close_on(a, b, rtol=1e-5, atol=1e-6)
    (g_gpu,) = torch.autograd.grad(got[0], v_gpu, cot.to(CUDA))
    (g_cpu,) = torch.autograd.grad(ref[0], v_cpu, cot)
    assert_close_on(g_gpu, g_cpu, rtol=1e-4, atol=1e-5)
    o, d = rays(300, seed=levels)
    march = (0.0, 1e10, 0.02, 0.0)
    s_gpu = baked_traverse(*on_gpu(o, d), gpu_grid, *march)
    s_cpu = baked_traverse(o, d, grid, *march)
    assert_same_samples(type(s_gpu)(s_gpu.t_starts.cpu(), s_gpu.t_ends.cpu(), s_gpu.ray_indices.cpu(), s_gpu.n_rays),
                        s_cpu, exact=True)
    settings = BakedMarchSettings(2, -4.0, 0.0, 1e10, 0.02, 0.0, 1e-3)
    r_gpu = baked_render(*on_gpu(o, d, values), gpu_grid, settings)
    r_cpu = baked_render(o, d, grid, values, settings)
    for name in ("color", "opacity", "depth"):
        assert_close_on(getattr(r_gpu, name), getattr(r_cpu, name), rtol=1e-4, atol=1e-5)
