"""The compiled plane-encoding kernel (cuda/src/planes*) against its pure-torch twin, and the twin
against an independent reference (torch's ``grid_sample``).

Forward and backward (random cotangents, table and coordinates) over several shapes, gradcheck in
float64, opcheck of the registered ops, coordinates outside [0, 1] and NaN, the CUDA kernel on a
GPU (skipped without one), and builds of the sources: torch-free C++17 and nvcc.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch
import torch.nn.functional as F

from nerfgen.ops import planes as pl
from nerfgen.ops.planes import PAIRS_3D, PAIRS_4D, plane_encode, plane_encode_torch, plane_layout
from tests.kernels import CXX, NVCC, REPO

FWD_ATOL = 1e-5  # float32: products of up to 6 bilinear sums of values in [0.5, 1.5]
TABLE_ATOL = 1e-4  # many points add into one row in another order
COORD_RTOL = 1e-4  # coordinate gradients scale with the resolution

CASES = [  # (levels' resolutions, pairs, channels)
    ([(4, 5, 6, 3)], PAIRS_4D, 2),
    ([(8, 8, 8, 4), (16, 16, 16, 4)], PAIRS_4D, 16),
    ([(6, 7, 8)], PAIRS_3D, 3),  # runtime channel count
    ([(32, 32, 32, 9), (64, 64, 64, 9), (128, 128, 128, 9)], PAIRS_4D, 8),
]


def make(case, n_points: int, dtype=torch.float32, seed: int = 0):
    levels, pairs, channels = case
    layout = plane_layout(levels, pairs)
    gen = torch.Generator().manual_seed(seed)
    table = (torch.rand(layout.rows, channels, generator=gen, dtype=dtype) + 0.5)
    coords = torch.rand(n_points, len(levels[0]), generator=gen, dtype=dtype) * 1.2 - 0.1  # some outside [0, 1]
    return layout, table, coords


def encode_and_grads(fn, layout, table, coords, cotangent):
    table = table.detach().clone().requires_grad_()
    coords = coords.detach().clone().requires_grad_()
    out = fn(coords, table, layout.axes, layout.sizes, layout.offsets, layout.n_levels)
    grads = torch.autograd.grad(out, (coords, table), cotangent)
    return out.detach(), *grads


@pytest.mark.parametrize("n_points", [0, 1, 7, 9000])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_kernel_matches_twin(kernels, case, n_points):
    layout, table, coords = make(CASES[case], n_points)
    assert pl._kernel_serves(coords, table)
    cot = torch.randn(n_points, layout.n_levels * table.shape[1], generator=torch.Generator().manual_seed(1))
    out, g_coords, g_table = encode_and_grads(plane_encode, layout, table, coords, cot)
    ref, r_coords, r_table = encode_and_grads(plane_encode_torch, layout, table, coords, cot)
    torch.testing.assert_close(out, ref, rtol=0, atol=FWD_ATOL)
    torch.testing.assert_close(g_table, r_table, rtol=1e-5, atol=TABLE_ATOL)
    scale = max(1.0, r_coords.abs().max().item()) if r_coords.numel() else 1.0
    torch.testing.assert_close(g_coords, r_coords, rtol=COORD_RTOL, atol=COORD_RTOL * scale)
    outside = (coords < 0) | (coords > 1)
    assert (g_coords[outside] == 0).all(), "a clamped coordinate has no gradient"


SMALL_TWO_LEVELS = ([(3, 4, 5, 2), (5, 4, 3, 3)], PAIRS_4D, 2)
"""Few table entries (gradcheck perturbs each), two levels (their features multiply per level)."""


def test_gradcheck_float64(kernels):
    layout, table, coords = make(SMALL_TWO_LEVELS, 12, torch.float64)
    coords = coords.clamp(0.01, 0.99)  # away from the clamp's kinks

    def fn(c, t):
        return plane_encode(c, t, layout.axes, layout.sizes, layout.offsets, layout.n_levels)

    assert torch.autograd.gradcheck(fn, (coords.requires_grad_(), table.requires_grad_()))


def test_twin_gradcheck_float64():
    layout, table, coords = make(CASES[0], 10, torch.float64)
    coords = coords.clamp(0.01, 0.99)

    def fn(c, t):
        return plane_encode_torch(c, t, layout.axes, layout.sizes, layout.offsets, layout.n_levels)

    assert torch.autograd.gradcheck(fn, (coords.requires_grad_(), table.requires_grad_()))


def test_twin_matches_grid_sample():
    """Each plane's lookup is ``grid_sample`` with ``align_corners=True`` (K-Planes'), the level the product."""
    layout, table, coords = make(CASES[1], 500)
    coords = coords.clamp(0, 1)
    out = plane_encode_torch(coords, table, layout.axes, layout.sizes, layout.offsets, layout.n_levels)
    channels = table.shape[1]
    for level in range(layout.n_levels):
        ref = torch.ones(coords.shape[0], channels)
        for p in layout.planes_of(level):
            (a, b), (ru, rv), o = layout.axes[p].tolist(), layout.sizes[p].tolist(), int(layout.offsets[p])
            plane = table[o:o + ru * rv].view(rv, ru, channels).permute(2, 0, 1)[None]  # [1, C, H=v, W=u]
            grid = (coords[:, [a, b]] * 2 - 1)[None, None]  # x -> u (width), y -> v (height)
            ref = ref * F.grid_sample(plane, grid, mode="bilinear", align_corners=True)[0, :, 0].T
        torch.testing.assert_close(out[:, level * channels:(level + 1) * channels], ref, rtol=1e-5, atol=1e-5)


def test_nan_coordinates_read_inside_the_table(kernels):
    layout, table, coords = make(CASES[0], 5)
    coords[2, 1] = float("nan")
    out = plane_encode(coords, table, layout.axes, layout.sizes, layout.offsets, layout.n_levels)
    ref = plane_encode_torch(coords, table, layout.axes, layout.sizes, layout.offsets, layout.n_levels)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=0, atol=FWD_ATOL)


def test_opcheck(kernels):
    layout, table, coords = make(CASES[0], 33)
    args = (coords.clamp(0, 1), table.requires_grad_(), layout.axes, layout.sizes, layout.offsets, layout.n_levels)
    torch.library.opcheck(torch.ops.nerfgen.plane_fwd.default, args)
    grad = torch.randn(33, layout.n_levels * table.shape[1])
    torch.library.opcheck(torch.ops.nerfgen.plane_bwd.default,
                          (grad, args[0], table.detach(), *args[2:], True, True), test_utils=("test_schema", "test_faketensor"))


def test_wrapper_checks_shapes():
    layout, table, coords = make(CASES[0], 4)
    with pytest.raises(ValueError, match="coords must be"):
        plane_encode(coords[:, :1], table, layout.axes, layout.sizes, layout.offsets, layout.n_levels)
    with pytest.raises(ValueError, match="do not split"):
        plane_encode(coords, table, layout.axes, layout.sizes, layout.offsets, 4)
    with pytest.raises(ValueError, match="at least 2"):
        plane_layout([(1, 4, 4, 4)], PAIRS_4D)


def test_cuda_kernel_matches_twin():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: planes.cu is compiled (nvcc test) but not run here")
    cuda = torch.device("cuda")
    for case in CASES:
        layout, table, coords = make(case, 5000)
        cot = torch.randn(5000, layout.n_levels * table.shape[1])
        on = [t.to(cuda) for t in (layout.axes, layout.sizes, layout.offsets)]
        gpu_layout = pl.PlaneLayout(*on, layout.n_levels, layout.rows)
        got = encode_and_grads(plane_encode, gpu_layout, table.to(cuda), coords.to(cuda), cot.to(cuda))
        ref = encode_and_grads(plane_encode_torch, layout, table, coords, cot)
        for g, r, tol in zip(got, ref, (FWD_ATOL, COORD_RTOL * 100, TABLE_ATOL)):
            torch.testing.assert_close(g.cpu(), r, rtol=1e-4, atol=tol)


def test_cpu_source_compiles_without_torch():
    if shutil.which(CXX) is None:
        pytest.skip(f"no C++ compiler ({CXX!r} not on PATH)")
    cmd = [CXX, "-std=c++17", "-O1", "-fopenmp", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "cuda" / "include"),
           "-c", str(REPO / "cuda" / "src" / "planes_cpu.cpp"), "-o", os.devnull]
    subprocess.run(cmd, check=True, timeout=120)


@pytest.mark.parametrize("arch", ["sm_75"])  # the oldest nvcc 13 builds for
def test_cuda_source_compiles_with_nvcc(arch):
    if NVCC is None:
        pytest.skip("nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    cmd = [NVCC, "-c", "-std=c++17", f"-arch={arch}", "-Xcompiler", "-Wall", "-Werror", "all-warnings",
           "-I", str(REPO / "cuda" / "include"), str(REPO / "cuda" / "src" / "planes.cu"), "-o", os.devnull]
    subprocess.run(cmd, check=True, timeout=300)
