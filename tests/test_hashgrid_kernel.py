"""The compiled hash-grid kernel (cuda/src/hashgrid*) against its pure-torch twin.

Forward and backward (random cotangents) over several shapes, gradcheck in float64, opcheck of
each registered op, boundary points, dispatch and fallback, and nvcc builds of the CUDA file.
The kernels are built on first use (~15-40 s) into the usual cache, reused by later runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from nerfgen.ops import _backend
from nerfgen.ops import hashgrid as hg
from nerfgen.ops.hashgrid import hash_grid_encode, hash_grid_encode_torch, level_resolutions, level_strides
from tests.kernels import CXX, NVCC, REPO

# float32 tolerances: outputs are sums of 8 products (<= 1e-6 apart); table gradients add up
# many points in a different order (collisions at T = 2^10); position gradients scale with
# the finest resolution (2048), so they are compared relative to their largest entry.
FWD_ATOL = 1e-5
TABLE_ATOL = 1e-4
POS_RTOL = 1e-5


def make_grid(n_levels: int, n_features: int, log2_table_size: int, dtype=torch.float32, seed: int = 0):
    """Table in [-1, 1], float32 resolutions 16..2048 and the matching strides."""
    res = level_resolutions(n_levels, 16, 2048)
    gen = torch.Generator().manual_seed(seed)
    table = torch.rand(n_levels << log2_table_size, n_features, generator=gen, dtype=dtype) * 2 - 1
    return table, torch.tensor(res, dtype=torch.float32), level_strides(res, log2_table_size)


def encode_and_grads(fn, positions, table, resolutions, strides, log2_table_size, cotangent):
    positions = positions.detach().clone().requires_grad_()
    table = table.detach().clone().requires_grad_()
    out = fn(positions, table, resolutions, strides, log2_table_size)
    grad_positions, grad_table = torch.autograd.grad(out, (positions, table), cotangent)
    return out.detach(), grad_positions, grad_table


def assert_matches_twin(positions, table, resolutions, strides, log2_table_size, seed=0):
    assert hg._kernel_serves(positions, table), "hash_grid_encode would not run the kernel here"
    n_out = resolutions.shape[0] * table.shape[1]
    gen = torch.Generator().manual_seed(seed + 1)
    cotangent = torch.randn(positions.shape[0], n_out, generator=gen, dtype=table.dtype)
    args = (positions, table, resolutions, strides, log2_table_size, cotangent)
    out, g_pos, g_table = encode_and_grads(hash_grid_encode, *args)
    ref, r_pos, r_table = encode_and_grads(hash_grid_encode_torch, *args)
    assert out.shape == ref.shape == (positions.shape[0], n_out)
    torch.testing.assert_close(out, ref, rtol=0, atol=FWD_ATOL)
    torch.testing.assert_close(g_table, r_table, rtol=1e-5, atol=TABLE_ATOL)
    pos_scale = max(1.0, r_pos.abs().max().item()) if r_pos.numel() else 1.0
    torch.testing.assert_close(g_pos, r_pos, rtol=POS_RTOL, atol=POS_RTOL * pos_scale)
    for t in (out, g_pos, g_table):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("n_points", [0, 1, 7, 4096])
@pytest.mark.parametrize(
    ("n_levels", "n_features", "log2_table_size"),
    [(1, 1, 10), (4, 2, 10), (16, 2, 19), (16, 4, 10), (4, 3, 19)],  # F = 3: runtime-width path
)
def test_kernel_matches_twin(kernels, n_points, n_levels, n_features, log2_table_size):
    table, resolutions, strides = make_grid(n_levels, n_features, log2_table_size)
    positions = torch.rand(n_points, 3, generator=torch.Generator().manual_seed(n_points))
    assert_matches_twin(positions, table, resolutions, strides, log2_table_size)


def test_atomic_and_level_paths_match_twin(kernels):
    """1 level with 2 threads takes the atomic-add path, 16 levels the level-owned path."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for n_levels in (1, 16):
            table, resolutions, strides = make_grid(n_levels, 2, 10)
            positions = torch.rand(8192, 3, generator=torch.Generator().manual_seed(3))
            assert_matches_twin(positions, table, resolutions, strides, 10)
    finally:
        torch.set_num_threads(threads)


def test_same_result_on_one_and_two_threads(kernels):
    table, resolutions, strides = make_grid(16, 2, 12)
    positions = torch.rand(5000, 3, generator=torch.Generator().manual_seed(4))
    cotangent = torch.randn(5000, 32, generator=torch.Generator().manual_seed(5))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(encode_and_grads(hash_grid_encode, positions, table, resolutions, strides, 12, cotangent))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_boundary_points_are_finite_and_match(kernels):
    table, resolutions, strides = make_grid(16, 2, 19)
    corners = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=torch.float32)
    positions = torch.cat([corners, torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.25]])])
    assert_matches_twin(positions, table, resolutions, strides, 19)


def test_gradcheck_float64(kernels):
    table, resolutions, strides = make_grid(2, 2, 4, dtype=torch.float64)  # T = 16: collisions
    resolutions = torch.tensor([5.0, 9.0])  # coarse, so finite differences stay inside one cell
    strides = level_strides([5, 9], 4)
    gen = torch.Generator().manual_seed(6)
    positions = torch.rand(64, 3, generator=gen, dtype=torch.float64)
    frac = (positions[:, None, :] * resolutions[None, :, None].double()).frac()
    positions = positions[((frac > 0.01) & (frac < 0.99)).all(-1).all(-1)][:6]
    assert positions.shape[0] == 6 and hg._kernel_serves(positions, table)
    positions.requires_grad_()
    table.requires_grad_()
    fn = lambda p, t: hash_grid_encode(p, t, resolutions, strides, 4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (positions, table), eps=1e-6, atol=1e-6)


def test_opcheck_each_op(kernels):
    table, resolutions, strides = make_grid(4, 2, 10)
    positions = torch.rand(300, 3, generator=torch.Generator().manual_seed(7))
    grad_out = torch.randn(300, 8, generator=torch.Generator().manual_seed(8))
    ops = torch.ops.nerfgen
    cases = [
        (ops.hash_grid_fwd.default, (positions.requires_grad_(), table.requires_grad_(), resolutions, strides, 10)),
        (ops.hash_grid_bwd.default, (grad_out, positions.detach(), resolutions, strides, 10)),
        (ops.hash_grid_bwd_positions.default, (grad_out, positions.detach(), table.detach(), resolutions, strides, 10)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_invalid_arguments_raise(kernels):
    table, resolutions, strides = make_grid(4, 2, 10)
    with pytest.raises(ValueError, match="positions must be"):
        hash_grid_encode(torch.rand(5, 2), table, resolutions, strides, 10)
    with pytest.raises(ValueError, match="table must be"):
        hash_grid_encode(torch.rand(5, 3), table[:-1], resolutions, strides, 10)
    with pytest.raises(RuntimeError, match="positions are"):  # the op checks too, for direct callers
        torch.ops.nerfgen.hash_grid_fwd(torch.rand(5, 3, dtype=torch.float64), table, resolutions, strides, 10)


def test_build_failure_warns_then_raises_when_forced(kernels, monkeypatch, tmp_path):
    """A compiler that fails: auto mode warns and runs the twins, cpp mode raises with the log."""
    monkeypatch.setenv("CXX", "false")
    monkeypatch.setenv("NERFGEN_CACHE", str(tmp_path))
    for mode in ("auto", "cpp"):
        monkeypatch.setenv("NERFGEN_BACKEND", mode)
        monkeypatch.setattr(_backend, "_state", None)
        if mode == "auto":
            with pytest.warns(RuntimeWarning, match="unavailable"):
                assert _backend.get_backend_name() == "torch"
        else:
            with pytest.raises(RuntimeError, match="NERFGEN_BACKEND=cpp.*\n.*(Error building|nerfgen_cpu)"):
                _backend.get_backend_name()


def test_import_never_compiles_and_torch_mode_skips_the_build(tmp_path):
    script = (
        "import nerfgen, nerfgen.ops, nerfgen.fields.encodings\n"
        "from nerfgen.ops import _backend\n"
        "assert _backend._state is None, 'importing nerfgen touched the kernels'\n"
        "assert _backend.get_backend_name() == 'torch'\n"
        "import torch\n"
        "from nerfgen.fields.encodings import HashEncoding\n"
        "assert HashEncoding(n_levels=2, log2_table_size=8)(torch.rand(4, 3)).shape == (4, 4)\n"
    )
    env = {**os.environ, "NERFGEN_BACKEND": "torch", "NERFGEN_CACHE": str(tmp_path), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=REPO, timeout=120)
    assert not any(tmp_path.iterdir()), "NERFGEN_BACKEND=torch built something"


def test_cpu_sources_compile_without_torch():
    """The kernel core and CPU launchers are torch-free C++17 (no torch include path given)."""
    if shutil.which(CXX) is None:
        pytest.skip(f"no C++ compiler ({CXX!r} not on PATH)")
    cmd = [CXX, "-std=c++17", "-O1", "-fopenmp", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "cuda" / "include"),
           "-c", str(REPO / "cuda" / "src" / "hashgrid_cpu.cpp"), "-o", os.devnull]
    subprocess.run(cmd, check=True, timeout=120)


@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_90"])
def test_cuda_source_compiles_with_nvcc(arch):
    if NVCC is None:
        pytest.skip("nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    cmd = [NVCC, "-c", "-std=c++17", f"-arch={arch}", "-Xcompiler", "-Wall", "-Werror", "all-warnings",
           "-I", str(REPO / "cuda" / "include"), str(REPO / "cuda" / "src" / "hashgrid.cu"), "-o", os.devnull]
    subprocess.run(cmd, check=True, timeout=300)
